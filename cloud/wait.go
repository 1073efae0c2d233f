package cloud

import (
	"fmt"
	"time"
	strs "unique"

	"rebootbot/approval"
)

// waiting is one target whose outcome is not yet known. A region may
// wait on ten thousand instances at once, so it keeps of the last look
// only what a timeout's explanation needs.
type waiting struct {
	target   approval.WaitTarget
	since    time.Time
	deadline time.Time
	last     sighting // as last seen
	looked   bool     // seen at least once
	lastErr  *approval.CloudError
}

// sighting is an instance's state and latest operation as one look saw
// them. The values repeat across instances (one RequestId for up to a
// hundred of them, a handful of states), so each is kept once.
type sighting struct {
	state, op, opState, opRequestID string
}

func sightingOf(in approval.Instance) sighting {
	return sighting{intern(in.State), intern(in.LatestOperation), intern(in.LatestOperationState), intern(in.LatestOperationRequestID)}
}

// intern returns the one copy of s kept for every equal string.
func intern(s string) string { return strs.Make(s).Value() }

// instance returns the sighting as an instance, for describing it.
func (s sighting) instance() approval.Instance {
	return approval.Instance{State: s.state, LatestOperation: s.op, LatestOperationState: s.opState, LatestOperationRequestID: s.opRequestID}
}

// judge decides from one look-up whether the target is done.
func (w *waiting) judge(seen map[string]approval.Instance, ok bool, now time.Time) (approval.WaitResult, bool) {
	id := w.target.InstanceID
	if !ok {
		return approval.WaitResult{}, false
	}
	in, found := seen[id]
	if !found {
		ce := newCloudError("InvalidInstanceId.NotFound", "the instance disappeared while rebooting", "")
		ce.Explanation = "The instance no longer exists; it was probably terminated while rebooting."
		return approval.WaitResult{InstanceID: id, Duration: now.Sub(w.since), State: w.last.state, Err: ce}, true
	}
	w.last, w.looked, w.lastErr = sightingOf(in), true, nil
	if !w.ours(in) {
		return approval.WaitResult{}, false
	}
	switch in.LatestOperationState {
	case approval.OpFailed:
		msg := in.LatestOperationError
		ce := newCloudError(CodeRebootFailed, msg, in.LatestOperationRequestID)
		if msg != "" {
			ce.Explanation = "Tencent Cloud reported that the reboot failed: " + printable(msg)
		} else {
			ce.Explanation = "Tencent Cloud reported that the reboot failed, without giving a reason."
		}
		return approval.WaitResult{InstanceID: id, Duration: now.Sub(w.since), State: in.State, Err: ce}, true
	case approval.OpSuccess:
		if in.State == approval.InstanceRunning {
			return approval.WaitResult{InstanceID: id, OK: true, Duration: now.Sub(w.since), State: in.State}, true
		}
	}
	return approval.WaitResult{}, false
}

// ours reports whether the instance's latest operation is the reboot being
// waited for.
func (w *waiting) ours(in approval.Instance) bool {
	if in.LatestOperation != approval.OpReboot {
		return false
	}
	switch {
	case w.target.RequestID != "":
		return in.LatestOperationRequestID == w.target.RequestID
	case w.target.NotRequestID != "":
		return in.LatestOperationRequestID != w.target.NotRequestID
	}
	return true
}

// timeout is the result for a target whose time ran out.
func (w *waiting) timeout(now time.Time) approval.WaitResult {
	waited := now.Sub(w.since).Round(time.Second)
	if waited <= 0 {
		waited = now.Sub(w.since)
	}
	var why string
	switch {
	case !w.looked && w.lastErr != nil:
		why = fmt.Sprintf("Gave up after %s: the instance could not be checked (%s)", waited, w.lastErr.Explanation)
	case !w.looked:
		why = fmt.Sprintf("Gave up after %s without being able to check the instance.", waited)
	default:
		why = fmt.Sprintf("Gave up after %s: the instance was last seen %s", waited, describeState(w.last.instance(), w.ours(w.last.instance())))
		if w.lastErr != nil {
			why += fmt.Sprintf("; the last check failed (%s)", w.lastErr.Code)
		}
		why += "."
	}
	ce := newCloudError(CodeTimeout, fmt.Sprintf("waited %s", waited), w.target.RequestID)
	ce.Explanation = why
	return approval.WaitResult{InstanceID: w.target.InstanceID, Duration: now.Sub(w.since), State: w.last.state, Err: ce}
}

// describeState puts an instance's state and latest operation in words.
func describeState(in approval.Instance, ours bool) string {
	s := printable(in.State)
	if s == "" {
		s = "in an unknown state"
	}
	switch {
	case ours:
		return fmt.Sprintf("%s with the reboot %s", s, printable(in.LatestOperationState))
	case in.LatestOperation != "":
		return fmt.Sprintf("%s, with the reboot not started (latest operation %s %s)", s, printable(in.LatestOperation), printable(in.LatestOperationState))
	}
	return s + ", with the reboot not started"
}
