package cloud

import (
	"context"
	"fmt"

	"rebootbot/approval"
)

// The bot's executions reboot through a Dispatcher. Reboot is the direct
// path the isolation tests drive: one caller's instances, looked up first,
// in calls of at most 100 without sharing.

// Reboot reboots ids with the given stop type, in calls of at most 100 IDs
// paced by the shared limiter, and returns one result per distinct ID in
// the order given.
//
// Before the first call of each batch it records every instance's
// LatestOperationRequestId. When a call fails because of some instances
// (their state, their ID, an operation in progress) it finds them — from
// the error message, the recorded states or a fresh look-up, and by
// bisection as a last resort — reports them with the refusing call's code
// and RequestId, and reboots the rest. A call whose outcome is unknown (a
// timeout after sending) is not repeated for instances that show a new
// RebootInstances operation or are REBOOTING: no instance is rebooted
// twice.
//
// err is set only when nothing could be tried at all (bad credentials, a
// cancelled context, Tencent refusing every attempt); every result then
// carries the same error.
func (c *CVM) Reboot(ctx context.Context, region string, ids []string, stop approval.StopType) ([]approval.RebootResult, error) {
	region = c.region(region)
	ids = unique(ids)
	if len(ids) == 0 {
		return nil, nil
	}
	r := &rebooter{c: c, stop: stop, pace: c.cfg.Limiter, results: make(map[string]approval.RebootResult, len(ids))}
	if !stop.Valid() {
		ce := c.clientError(CodeInvalidRequest, fmt.Sprintf("stop type %q is not SOFT, HARD or SOFT_FIRST", printable(string(stop))))
		return r.all(ids, ce), asError(ce, nil)
	}
	cl, ce := c.client(ctx, region)
	if ce != nil {
		return r.all(ids, ce), asError(ce, ctx.Err())
	}
	r.cl = cl
	for _, batch := range chunks(ids, MaxIDsPerCall) {
		r.batch(ctx, batch)
	}
	out := make([]approval.RebootResult, len(ids))
	for i, id := range ids {
		out[i] = r.results[id]
	}
	if ce := sameFailure(out); ce != nil && (!isolatable(ce.Code) || ambiguous(ce.Code)) {
		return out, asError(ce, ctx.Err())
	}
	return out, nil
}

// sameFailure returns the error every result carries, or nil when some
// instance was accepted or the errors differ.
func sameFailure(results []approval.RebootResult) *approval.CloudError {
	var first *approval.CloudError
	for _, res := range results {
		if res.Err == nil {
			return nil
		}
		if first == nil {
			first = res.Err
		} else if res.Err.Code != first.Code {
			return nil
		}
	}
	return first
}

func (r *rebooter) all(ids []string, ce *approval.CloudError) []approval.RebootResult {
	out := make([]approval.RebootResult, len(ids))
	for i, id := range ids {
		out[i] = approval.RebootResult{InstanceID: id, RequestID: ce.RequestID, Err: ce}
	}
	return out
}

// batch reboots at most 100 IDs.
func (r *rebooter) batch(ctx context.Context, ids []string) {
	var valid []string
	for _, id := range ids {
		if approval.ValidInstanceID(id) {
			valid = append(valid, id)
		}
	}
	before, ce := r.c.describe(ctx, r.cl, valid)
	if ce != nil {
		// Without the operations as they were, an unclear answer could not
		// be told from a reboot; do not call at all.
		r.failWith(ids, ce)
		return
	}
	r.before, r.refreshed = before, false
	r.process(ctx, ids)
}
