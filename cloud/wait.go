package cloud

import (
	"context"
	"fmt"
	"time"

	"rebootbot/approval"
)

// Wait polls DescribeInstances (at most 100 IDs a call) every
// opts.PollInterval until each target is RUNNING with its reboot finished
// (SUCCESS), its reboot FAILED, or opts.Timeout has passed since its Since
// (or since Wait began, when Since is zero). It calls report once for each
// target, from Wait's goroutine, as soon as the target's outcome is known.
// Failed look-ups are logged and retried at the next poll; a timeout then
// mentions the last error. Wait returns nil when every target is reported,
// or ctx's error when ctx ends first.
func (c *CVM) Wait(ctx context.Context, region string, targets []approval.WaitTarget, opts approval.WaitOptions, report func(approval.WaitResult)) error {
	region = c.region(region)
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultWaitTimeout
	}
	if report == nil {
		report = func(approval.WaitResult) {}
	}
	clock := c.cfg.Clock
	start := clock.Now()

	pending := make(map[string]*waiting, len(targets))
	var order []string
	for _, t := range targets {
		if _, dup := pending[t.InstanceID]; dup || t.InstanceID == "" {
			continue
		}
		w := &waiting{target: t, since: t.Since}
		if w.since.IsZero() {
			w.since = start
		}
		w.deadline = w.since.Add(opts.Timeout)
		if w.deadline.Before(start) {
			// Always look at least once before calling it a timeout.
			w.deadline = start
		}
		pending[t.InstanceID] = w
		order = append(order, t.InstanceID)
	}

	for {
		var ids []string
		for _, id := range order {
			if _, ok := pending[id]; ok {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		seen, lookErr := c.poll(ctx, region, ids)
		if err := ctx.Err(); err != nil {
			return err
		}
		now := clock.Now()
		for _, id := range ids {
			w := pending[id]
			if lookErr != nil {
				w.lastErr = lookErr
			}
			res, done := w.judge(seen, lookErr == nil, now)
			if !done && !now.Before(w.deadline) {
				res, done = w.timeout(now), true
			}
			if done {
				delete(pending, id)
				report(res)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		// Sleep until the next poll, or the next deadline if that is sooner,
		// so that a timeout is declared right after a last look.
		next := now.Add(opts.PollInterval)
		for _, w := range pending {
			if w.deadline.Before(next) {
				next = w.deadline
			}
		}
		if d := next.Sub(now); d > 0 {
			select {
			case <-clock.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// poll looks the instances up; a failure is returned as a CloudError for
// the timeout message, not as a reason to stop.
func (c *CVM) poll(ctx context.Context, region string, ids []string) (map[string]approval.Instance, *approval.CloudError) {
	cl, ce := c.client(ctx, region)
	if ce != nil {
		return nil, ce
	}
	seen, ce := c.describe(ctx, cl, validIDs(ids))
	if ce != nil {
		c.log.Warn("checking on rebooting instances failed; will look again", "instances", len(ids), "code", ce.Code, "request_id", ce.RequestID)
		return nil, ce
	}
	return seen, nil
}

// waiting is one target whose outcome is not yet known.
type waiting struct {
	target   approval.WaitTarget
	since    time.Time
	deadline time.Time
	last     approval.Instance // as last seen
	looked   bool              // seen at least once
	lastErr  *approval.CloudError
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
		return approval.WaitResult{InstanceID: id, Duration: now.Sub(w.since), State: w.last.State, Err: ce}, true
	}
	w.last, w.looked, w.lastErr = in, true, nil
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
		why = fmt.Sprintf("Gave up after %s: the instance was last seen %s", waited, describeState(w.last, w.ours(w.last)))
		if w.lastErr != nil {
			why += fmt.Sprintf("; the last check failed (%s)", w.lastErr.Code)
		}
		why += "."
	}
	ce := newCloudError(CodeTimeout, fmt.Sprintf("waited %s", waited), w.target.RequestID)
	ce.Explanation = why
	return approval.WaitResult{InstanceID: w.target.InstanceID, Duration: now.Sub(w.since), State: w.last.State, Err: ce}
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
