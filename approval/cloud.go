package approval

import (
	"context"
	"time"
)

// Cloud is what the engine needs from Tencent Cloud to check a new
// request.
type Cloud interface {
	// Describe looks instances up by ID (any number; the adapter batches).
	// missing lists the IDs that do not exist.
	Describe(ctx context.Context, region string, ids []string) (found []Instance, missing []string, err error)
}

// Rebooter is what the executor needs from Tencent Cloud. Its
// implementation may carry the work of many requests in shared calls; the
// outcome for each instance must not depend on which others shared them.
type Rebooter interface {
	// Look returns the instances among ids as they are now, by ID; IDs
	// that do not exist are absent. It is the one look before a reboot:
	// what it shows of each instance's latest operation goes with the
	// intent, and nobody looks again before the call.
	Look(ctx context.Context, region string, ids []string) (map[string]Instance, error)

	// Reboot reboots each target with the given stop type, at most 100 IDs
	// a call and 10 calls a second. A call that fails because of one
	// instance does not sink the others: the implementation isolates it
	// and reboots the rest. The result has one entry per target, unless
	// ctx ends first: then the targets without an outcome are left out
	// (and their reboot may or may not have been asked for).
	Reboot(ctx context.Context, region string, stop StopType, targets []RebootTarget) []RebootResult

	// Wait polls until every target is RUNNING again with its reboot
	// finished (SUCCESS), has failed (FAILED), or opts.Timeout has passed,
	// calling report with the targets each poll finds finished. It
	// returns when every target is reported or ctx ends (then with ctx's
	// error).
	Wait(ctx context.Context, region string, targets []WaitTarget, opts WaitOptions, report func([]WaitResult)) error
}

// RebootTarget is one instance to reboot, with what was stored about it
// before the call.
type RebootTarget struct {
	InstanceID string
	// PriorOpRequestID is the instance's LatestOperationRequestId stored
	// with the intent: an answer that is lost is settled against it.
	PriorOpRequestID string
}

// RebootResult is the outcome of asking for one instance's reboot.
type RebootResult struct {
	InstanceID string
	RequestID  string // of the call that accepted or refused it
	Err        *CloudError
}

// CloudError is an error from Tencent Cloud in a form people and the audit
// log can use.
type CloudError struct {
	Code        string // Tencent's code, e.g. UnsupportedOperation.InstanceStateStopped
	Message     string // Tencent's message
	RequestID   string
	Explanation string // plain words for a Slack user
	Transient   bool   // retrying later may succeed
}

func (e *CloudError) Error() string {
	s := e.Code
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += " (RequestId " + e.RequestID + ")"
	}
	return s
}

// WaitTarget is one instance whose reboot is being waited for.
type WaitTarget struct {
	InstanceID string
	// RequestID, when set, is the RebootInstances call whose completion
	// counts; the instance's LatestOperationRequestId must equal it.
	RequestID string
	// NotRequestID, when set instead, is the operation from before the
	// reboot: any RebootInstances operation with another RequestId counts.
	// Used after a restart, when the call's RequestId was not recorded.
	NotRequestID string
	// Since is when the reboot was asked for; durations count from it.
	Since time.Time
}

// WaitOptions bound a Wait.
type WaitOptions struct {
	// Timeout is how long each target may take, counted from its Since.
	Timeout      time.Duration
	PollInterval time.Duration
	// Now is the caller's reading of its own clock when it calls Wait,
	// when the targets' Since values come from that clock. The waiter
	// then counts each timeout by how long ago Since was on the caller's
	// clock, not by comparing clocks that may differ (an engine driven by
	// a test clock, a cloud adapter on the system one). Zero: Since is on
	// the waiter's clock.
	Now time.Time
}

// WaitResult is how one instance's reboot ended.
type WaitResult struct {
	InstanceID string
	OK         bool
	Duration   time.Duration // from Since to when it was seen finished
	State      string        // instance state when last seen
	// Err explains a failure: the operation's error, or a timeout
	// (Code "Timeout").
	Err *CloudError
}
