package cloud

import (
	"context"
	"fmt"
	"strings"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/approval"
)

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
	r := &rebooter{c: c, stop: stop, results: make(map[string]approval.RebootResult, len(ids))}
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

// rebooter carries one Reboot's state across its batches.
type rebooter struct {
	c       *CVM
	cl      *cvm.Client
	stop    approval.StopType
	results map[string]approval.RebootResult

	// Per batch: the instances as seen before the first call, and whether
	// they were looked up again after a refusal.
	before    map[string]approval.Instance
	refreshed bool
}

func (r *rebooter) all(ids []string, ce *approval.CloudError) []approval.RebootResult {
	out := make([]approval.RebootResult, len(ids))
	for i, id := range ids {
		out[i] = approval.RebootResult{InstanceID: id, RequestID: ce.RequestID, Err: ce}
	}
	return out
}

func (r *rebooter) accept(ids []string, requestID string) {
	for _, id := range ids {
		r.results[id] = approval.RebootResult{InstanceID: id, RequestID: requestID}
	}
}

func (r *rebooter) refuse(ids []string, ce *approval.CloudError) {
	for _, id := range ids {
		r.results[id] = approval.RebootResult{InstanceID: id, RequestID: ce.RequestID, Err: ce}
	}
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
		r.refuse(ids, ce)
		return
	}
	r.before, r.refreshed = before, false
	r.process(ctx, ids)
}

// outcome is how one RebootInstances call ended.
type outcome struct {
	accepted  bool
	requestID string               // of the accepting call
	err       *approval.CloudError // why it was refused
	settled   bool                 // the outcome was settled (accepted or given up) by a look-up
}

// process reboots ids, isolating the instances that make the call fail.
func (r *rebooter) process(ctx context.Context, ids []string) {
	if len(ids) == 0 {
		return
	}
	out := r.send(ctx, ids)
	if out.accepted || out.settled {
		return
	}
	r.refused(ctx, ids, out.err)
}

// refused handles a call for ids that Tencent turned down with ce.
func (r *rebooter) refused(ctx context.Context, ids []string, ce *approval.CloudError) {
	if len(ids) == 1 || !isolatable(ce.Code) || ctx.Err() != nil {
		r.refuse(ids, ce)
		return
	}
	if bad := r.blame(ctx, ids, ce); len(bad) > 0 {
		r.refuse(bad, ce)
		r.process(ctx, without(ids, bad))
		return
	}
	// Nothing explains the refusal: split the batch and try the halves.
	half := len(ids) / 2
	a, b := ids[:half], ids[half:]
	outA := r.send(ctx, a)
	outB := r.send(ctx, b)
	if ambiguous(ce.Code) && refusedAs(outA, ce.Code) && refusedAs(outB, ce.Code) {
		// Both halves refused alike: the refusal concerns them all.
		r.refuse(a, outA.err)
		r.refuse(b, outB.err)
		return
	}
	for _, h := range []struct {
		ids []string
		out outcome
	}{{a, outA}, {b, outB}} {
		if !h.out.accepted && !h.out.settled {
			r.refused(ctx, h.ids, h.out.err)
		}
	}
}

func refusedAs(o outcome, code string) bool {
	return !o.accepted && !o.settled && o.err != nil && o.err.Code == code
}

// blame returns the instances among ids that explain ce: those its message
// names, else those whose state, existence or form matches the code, using
// the states seen before the first call and, once per batch, a fresh
// look-up.
func (r *rebooter) blame(ctx context.Context, ids []string, ce *approval.CloudError) []string {
	var named []string
	for _, id := range ids {
		if strings.Contains(ce.Message, id) {
			named = append(named, id)
		}
	}
	if len(named) > 0 && len(named) < len(ids) {
		return named
	}
	if bad := suspects(ids, ce.Code, r.before); len(bad) > 0 {
		return bad
	}
	if r.refreshed {
		return nil
	}
	r.refreshed = true
	fresh, err := r.c.describe(ctx, r.cl, validIDs(ids))
	if err != nil {
		return nil
	}
	for id, in := range fresh {
		r.before[id] = keepOperation(r.before[id], in)
	}
	for _, id := range ids {
		if _, ok := fresh[id]; !ok {
			delete(r.before, id)
		}
	}
	return suspects(ids, ce.Code, r.before)
}

// keepOperation returns the fresh view of an instance but keeps the latest
// operation recorded before the first call, which the unknown-outcome check
// compares against.
func keepOperation(old, fresh approval.Instance) approval.Instance {
	if old.ID == "" {
		return fresh
	}
	fresh.LatestOperation = old.LatestOperation
	fresh.LatestOperationState = old.LatestOperationState
	fresh.LatestOperationRequestID = old.LatestOperationRequestID
	fresh.LatestOperationError = old.LatestOperationError
	return fresh
}

// suspects picks the instances that a code points at, given what is known
// of them, or nil when it cannot tell.
func suspects(ids []string, code string, seen map[string]approval.Instance) []string {
	match := func(bad func(id string, in approval.Instance, ok bool) bool) []string {
		var out []string
		for _, id := range ids {
			in, ok := seen[id]
			if bad(id, in, ok) {
				out = append(out, id)
			}
		}
		return out
	}
	var bad []string
	switch {
	case code == "InvalidInstanceId.Malformed" || code == "InvalidParameterValue.InstanceIdMalformed":
		bad = match(func(id string, _ approval.Instance, _ bool) bool { return !approval.ValidInstanceID(id) })
	case code == "InvalidInstanceId.NotFound":
		bad = match(func(_ string, _ approval.Instance, ok bool) bool { return !ok })
	case strings.HasPrefix(code, instanceStatePrefix):
		want := stateName(strings.TrimPrefix(code, instanceStatePrefix))
		bad = match(func(_ string, in approval.Instance, ok bool) bool { return ok && in.State == want })
	case code == "OperationDenied.InstanceOperationInProgress" || code == "MutexOperation.TaskRunning":
		bad = match(func(_ string, in approval.Instance, ok bool) bool {
			return ok && (in.State != approval.InstanceRunning || in.LatestOperationState == approval.OpOperating)
		})
	}
	if len(bad) > 0 {
		return bad
	}
	// Anything that cannot be rebooted explains any refusal.
	return match(func(id string, in approval.Instance, ok bool) bool {
		return !approval.ValidInstanceID(id) || !ok || in.State != approval.InstanceRunning
	})
}

// stateName turns the CamelCase end of an InstanceState code into the
// API's state name: EnterRescueMode → ENTER_RESCUE_MODE.
func stateName(camel string) string {
	var b strings.Builder
	for i, r := range camel {
		if r >= 'A' && r <= 'Z' && i > 0 {
			b.WriteByte('_')
		}
		b.WriteString(strings.ToUpper(string(r)))
	}
	return b.String()
}

// send makes one RebootInstances call for ids, with retries. A transient
// failure that may have happened after Tencent acted is followed by a
// look-up before any retry.
func (r *rebooter) send(ctx context.Context, ids []string) outcome {
	var settled outcome
	requestID, ce, wasSettled := r.c.call(ctx, ActionReboot, r.c.cfg.Limiter, func(actx context.Context) (string, error) {
		req := cvm.NewRebootInstancesRequest()
		req.InstanceIds = common.StringPtrs(ids)
		req.StopType = common.StringPtr(string(r.stop))
		resp, err := r.cl.RebootInstancesWithContext(actx, req)
		if err != nil {
			return "", err
		}
		if resp.Response == nil {
			return "", fmt.Errorf("RebootInstances answered without a Response")
		}
		return deref(resp.Response.RequestId), nil
	}, func(ctx context.Context, ce *approval.CloudError, err error) bool {
		if refusedBeforeActing(ce.Code) || notSent(err) {
			return false
		}
		settled = r.checkUnknown(ctx, ids, ce)
		return settled.settled
	})
	switch {
	case wasSettled:
		return settled
	case ce != nil:
		return outcome{err: ce}
	}
	r.accept(ids, requestID)
	return outcome{accepted: true, requestID: requestID}
}

// checkUnknown looks at ids after a call whose outcome is unknown. If any
// of them shows a RebootInstances operation newer than the one recorded
// before the first call, or is REBOOTING, the call was carried out: the
// batch is all or nothing, so every instance in it counts as rebooted (by
// the RequestId observed) and none is called again. If none does, the call
// may be retried. If the look-up fails, the instances are reported with
// CodeOutcomeUnknown and not retried.
func (r *rebooter) checkUnknown(ctx context.Context, ids []string, cause *approval.CloudError) outcome {
	now, ce := r.c.describe(ctx, r.cl, validIDs(ids))
	if ce != nil {
		unknown := r.c.clientError(CodeOutcomeUnknown, fmt.Sprintf("RebootInstances failed with %s and the look-up afterwards with %s", cause.Code, ce.Code))
		r.c.log.Error("reboot outcome unknown; not retrying", "instances", ids, "code", cause.Code, "lookup_code", ce.Code)
		r.refuse(ids, unknown)
		return outcome{err: unknown, settled: true}
	}
	var taken []string
	requestID := ""
	for _, id := range ids {
		in, ok := now[id]
		if ok && rebootedSince(r.before[id], in) {
			taken = append(taken, id)
			if requestID == "" {
				requestID = in.LatestOperationRequestID
			}
		}
	}
	if len(taken) == 0 {
		return outcome{}
	}
	r.c.log.Warn("reboot call went through despite the error", "instances", ids, "code", cause.Code, "request_id", requestID)
	for _, id := range ids {
		rid := requestID
		if in, ok := now[id]; ok && rebootedSince(r.before[id], in) && in.LatestOperationRequestID != "" {
			rid = in.LatestOperationRequestID
		}
		r.results[id] = approval.RebootResult{InstanceID: id, RequestID: rid}
	}
	return outcome{accepted: true, requestID: requestID, settled: true}
}

// rebootedSince reports whether an instance shows a reboot that was not
// there before: a RebootInstances operation with a new RequestId (in any
// state: a failed reboot was still carried out), or the REBOOTING state.
func rebootedSince(before, now approval.Instance) bool {
	if now.State == approval.InstanceRebooting {
		return true
	}
	return now.LatestOperation == approval.OpReboot &&
		now.LatestOperationRequestID != "" &&
		now.LatestOperationRequestID != before.LatestOperationRequestID
}

func validIDs(ids []string) []string {
	var out []string
	for _, id := range ids {
		if approval.ValidInstanceID(id) {
			out = append(out, id)
		}
	}
	return out
}

// without returns ids minus drop, in order.
func without(ids, drop []string) []string {
	gone := make(map[string]bool, len(drop))
	for _, id := range drop {
		gone[id] = true
	}
	var out []string
	for _, id := range ids {
		if !gone[id] {
			out = append(out, id)
		}
	}
	return out
}
