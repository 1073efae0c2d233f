package approval

import "context"

// RejectCommand records a request that was turned away before the engine
// could check it, such as a /reboot command the grammar does not accept: a rejected
// audit event, and cause remembered as the answer to in.Key. It returns
// cause, or the first answer when the key was seen before. in.Reason may
// hold the raw text of the command.
func (e *Engine) RejectCommand(ctx context.Context, in CreateInput, cause error) error {
	return e.reject(ctx, in, cause)
}
