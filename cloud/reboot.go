package cloud

import (
	"context"
	"fmt"
	"strings"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/approval"
)

// rebooter carries one RebootInstances call's state: the instances as seen
// before it, its pacing, and each instance's outcome as it is settled.
type rebooter struct {
	c       *CVM
	cl      *cvm.Client
	stop    approval.StopType
	pace    pacer // paces the RebootInstances attempts
	results map[string]approval.RebootResult

	// The instances as seen before the call, and whether they were looked
	// up again after a refusal.
	before    map[string]approval.Instance
	refreshed bool
}

func (r *rebooter) accept(ids []string, requestID string) {
	for _, id := range ids {
		r.results[id] = approval.RebootResult{InstanceID: id, RequestID: requestID}
	}
}

// failWith gives ids the outcome ce: Tencent refused them.
func (r *rebooter) failWith(ids []string, ce *approval.CloudError) {
	for _, id := range ids {
		r.results[id] = approval.RebootResult{InstanceID: id, RequestID: ce.RequestID, Err: ce}
	}
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
		r.failWith(ids, ce)
		return
	}
	if bad := r.blame(ctx, ids, ce); len(bad) > 0 {
		r.failWith(bad, ce)
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
		r.failWith(a, outA.err)
		r.failWith(b, outB.err)
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
	requestID, ce, wasSettled := r.c.call(ctx, ActionReboot, r.pace, func(actx context.Context) (string, error) {
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
		r.failWith(ids, unknown)
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
