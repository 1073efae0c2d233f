package approval

import (
	"context"
	"fmt"
)

// Reply is the answer given to a delivery (a command or a click). It is
// remembered under the delivery's key so that the same delivery arriving
// again is answered the same way and acts once.
type Reply struct {
	// Kind is empty when the delivery succeeded, else the kind of the error
	// it was answered with.
	Kind      Kind   `json:"kind,omitempty"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// Err returns the reply as an error, or nil when it was a success.
func (r Reply) Err() error {
	if r.Kind == "" {
		return nil
	}
	return &Error{Kind: r.Kind, Message: r.Message}
}

// CreateReplayed is what a Store's Create returns for a delivery key it
// has remembered before: the earlier refusal, or a Conflict carrying the
// earlier answer, so that the same command never creates a second request.
func CreateReplayed(earlier Reply) error {
	if err := earlier.Err(); err != nil {
		return err
	}
	return &Error{Kind: Conflict, Message: earlier.Message}
}

// Change is what an Update function decided.
type Change struct {
	Save   bool    // store the request as fn left it
	Events []Event // appended to the audit log, in order
	Reply  Reply   // remembered under the delivery key
}

// HeldError reports that an instance already belongs to an open request.
type HeldError struct {
	Instance  string
	RequestID string
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s already has an open request, %s", e.Instance, e.RequestID)
}

// Store keeps requests and the audit log. Every method that changes state
// does so in one transaction together with its audit events: a state change
// without its event, or an event without its change, never exists.
type Store interface {
	// Create assigns r.ID (R-<n> from a sequence), claims r's instances,
	// stores r, appends events (their RequestID set to r.ID) and remembers
	// reply under key (when key is not empty), all in one transaction.
	// If an instance is held by another open request it returns a
	// *HeldError and stores nothing.
	Create(ctx context.Context, r *Request, key string, reply Reply, events []Event) error

	// Update runs fn on the stored request id inside one write transaction.
	// When fn returns nil, the request is saved if Change.Save (its
	// instances are released once it is terminal), Change.Events are
	// appended and Change.Reply is remembered under key. When fn returns an
	// error nothing is written and the error is returned. A request saved
	// in a terminal state releases its instances at once; it leaves the
	// open index once it is Settled. If key was
	// remembered before, fn is not called and the earlier reply is returned
	// with replayed true. A missing request is a NotFound *Error.
	//
	// Concurrent updates may share one transaction, so fn may be called
	// more than once (the shared transaction is rolled back and run again
	// when another update in it fails): it must set whatever it reports
	// to its caller afresh on each call. A store shared by replicas may
	// call fn first on an earlier version of the request, the one it
	// last wrote or read, and call it again on the current one when its
	// transaction finds the request changed: fn must hold up on any
	// version (a request approved but not yet executing has no runs).
	Update(ctx context.Context, id, key string, fn func(r *Request) (Change, error)) (r *Request, reply Reply, replayed bool, err error)

	// Record appends events that change no request (a rejected command, a
	// refused click) and remembers reply under key, in one transaction. If
	// key was remembered before it appends nothing and returns the earlier
	// reply with replayed true.
	Record(ctx context.Context, key string, reply Reply, events []Event) (Reply, bool, error)

	// Reply returns the reply remembered under key.
	Reply(ctx context.Context, key string) (Reply, bool, error)

	// Get returns request id, or a NotFound *Error.
	Get(ctx context.Context, id string) (*Request, error)

	// Open returns every request that is not Settled (not terminal, or
	// terminal with a card update or report still owed), oldest first.
	// Instances are held only by requests that are not terminal.
	Open(ctx context.Context) ([]*Request, error)

	// Audit calls fn for each event matching q, newest first unless
	// q.Oldest, stopping after q.Limit events (0: all) or when fn returns an
	// error, which Audit then returns.
	Audit(ctx context.Context, q AuditQuery, fn func(*Event) error) error

	// Verify checks the whole audit chain and returns the number of events
	// checked; a *VerifyError names the first bad record.
	Verify(ctx context.Context) (uint64, error)
}
