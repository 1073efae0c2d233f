package bot

import (
	"context"

	"rebootbot/approval"
)

// Engine is what the Slack front end asks of the approval engine;
// *approval.Engine implements it.
type Engine interface {
	Create(ctx context.Context, in approval.CreateInput) (*approval.Request, error)
	RejectCommand(ctx context.Context, in approval.CreateInput, cause error) error
	// Approve and Deny act on request id for a click on the card at from.
	Approve(ctx context.Context, key, id, user string, from approval.Card) (approval.Result, error)
	Deny(ctx context.Context, key, id, user string, from approval.Card) (approval.Result, error)
	Cancel(ctx context.Context, key, id, user string) (approval.Result, error)
	// Stop stops a rolling request after its running wave, for a click on
	// the card at from, or for a command when from is nil.
	Stop(ctx context.Context, key, id, user string, from *approval.Card) (approval.Result, error)
	Get(ctx context.Context, id string) (*approval.Request, error)
	Pending(ctx context.Context) ([]*approval.Request, error)
	Audit(ctx context.Context, q approval.AuditQuery) ([]approval.Event, error)
	MayView(ctx context.Context, user, channel string) error
	MayRequest(ctx context.Context, user, channel string) error
	Policy() *approval.Policy
	// AfterLull runs fn in the background once the commands and clicks
	// being handled together let it (the engine's card and thread jobs
	// wait likewise), so that what is sent to Slack in the background
	// gives way to the answers Slack waits for; nothing waits
	// meanwhile. It reports false, and fn never runs, once the engine
	// takes no more work; fn's context may already have ended when it
	// runs.
	AfterLull(fn func(ctx context.Context)) bool
}

var _ Engine = (*approval.Engine)(nil)
