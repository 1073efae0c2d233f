package approval

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// maxCallRounds bounds how often one execution goes back to reconcile
// instances whose reboot call has no known outcome.
const maxCallRounds = 3

// startExecution runs request id's execution in the background unless one
// already runs in this process. The store's compare-and-set on EXECUTING
// guarantees a request starts once; this guard keeps the approval that
// started it and a restart's resume from running it side by side.
func (e *Engine) startExecution(id string) {
	e.mu.Lock()
	if e.executing[id] {
		e.mu.Unlock()
		return
	}
	e.executing[id] = true
	e.mu.Unlock()
	done := func() {
		e.mu.Lock()
		delete(e.executing, id)
		e.mu.Unlock()
	}
	if !e.spawnExec(func(ctx context.Context) {
		defer done()
		if err := e.execute(ctx, id); err != nil && ctx.Err() == nil {
			e.log.Error("execute request", "request", id, "err", err)
		}
	}) {
		done()
	}
}

// save changes request id in one transaction with the events fn returns.
// stale marks the card as owing an update: the change shows on the card.
func (e *Engine) save(ctx context.Context, id string, stale bool, fn func(r *Request) ([]Event, error)) (*Request, error) {
	var events []Event
	r, _, _, err := e.store.Update(ctx, id, "", func(r *Request) (Change, error) {
		var err error
		events, err = fn(r)
		if err != nil {
			return Change{}, err
		}
		if stale {
			r.CardCurrent = false
			r.Version++
		}
		return Change{Save: true, Events: events}, nil
	})
	if err != nil {
		return nil, err
	}
	e.observe(events)
	if stale {
		e.refreshCard(id)
	}
	if len(events) > 0 && !r.StartedAt.IsZero() {
		e.kickReports(id) // a result or the outcome may now be owed to the thread
	}
	return r, nil
}

// execute drives an approved request to its outcome: it re-checks the
// instances, stores the intent to reboot with each instance's latest
// operation, calls RebootInstances, waits for each instance, and finishes.
// Every step is stored before the next begins, so that after a crash it can
// be called again and neither repeats a reboot nor loses a result.
func (e *Engine) execute(ctx context.Context, id string) error {
	r, err := e.store.Get(ctx, id)
	if err != nil {
		return err
	}
	if r.State == Approved {
		if r, err = e.save(ctx, id, true, func(r *Request) ([]Event, error) {
			if err := r.transition(Executing); err != nil {
				return nil, err
			}
			if r.StartedAt.IsZero() {
				r.StartedAt = e.now()
			}
			r.Runs = make([]Run, len(r.Instances))
			for i, in := range r.Instances {
				r.Runs[i] = Run{InstanceID: in.ID}
			}
			return []Event{{RequestID: r.ID, Type: EventExecuting, Actor: ActorBot, Instances: r.InstanceIDs()}}, nil
		}); err != nil {
			return err
		}
	}
	if r.State != Executing {
		return nil
	}
	// Thread messages are posted by their own job, so that a slow Slack
	// delays the messages, never the reboots.
	e.kickReports(id)
	if err := e.callAll(ctx, r); err != nil {
		return err
	}
	if err := e.waitAll(ctx, id); err != nil {
		return err
	}
	_, err = e.finish(ctx, id)
	return err
}

// callAll reboots every instance of r that has not been called yet, in
// rounds: reconcile unknown outcomes, re-check states, store the intent,
// call.
func (e *Engine) callAll(ctx context.Context, r *Request) error {
	for round := 0; ; round++ {
		var err error
		if r, err = e.reconcile(ctx, r, round >= maxCallRounds); err != nil {
			return err
		}
		waiting := runsIn(r, RunWaiting)
		if len(waiting) == 0 {
			return nil
		}
		if r, err = e.intend(ctx, r, waiting); err != nil {
			return err
		}
		if r, err = e.call(ctx, r, runsIn(r, RunIntent)); err != nil {
			return err
		}
	}
}

// runsIn returns the IDs of r's instances whose run is in state s.
func runsIn(r *Request, s RunState) []string {
	var ids []string
	for _, run := range r.Runs {
		if run.State == s {
			ids = append(ids, run.InstanceID)
		}
	}
	return ids
}

// describe looks instances up, retrying until it works or ctx ends: while
// an execution cannot see the cloud it must not guess.
func (e *Engine) describe(ctx context.Context, region string, ids []string) (map[string]Instance, error) {
	for attempt := 0; ; attempt++ {
		found, _, err := e.cloud.Describe(ctx, region, ids)
		if err == nil {
			byID := make(map[string]Instance, len(found))
			for _, in := range found {
				byID[in.ID] = in
			}
			return byID, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		e.log.Warn("describe instances; retrying", "err", err)
		if !pause(ctx, min(e.poll, backoff(attempt))) {
			return nil, ctx.Err()
		}
	}
}

// reconcile settles instances whose intent was stored but whose call has no
// recorded outcome (a crash, a shutdown, a lost answer): an instance whose
// latest operation is now a reboot other than the one recorded with the
// intent, or that is rebooting, was rebooted by that call; the others go
// back to waiting, unless giveUp, when they are failed instead.
func (e *Engine) reconcile(ctx context.Context, r *Request, giveUp bool) (*Request, error) {
	intents := runsIn(r, RunIntent)
	if len(intents) == 0 {
		return r, nil
	}
	seen, err := e.describe(ctx, r.Region, intents)
	if err != nil {
		return nil, err
	}
	calledAt := time.Now().UTC()
	return e.save(ctx, r.ID, false, func(r *Request) ([]Event, error) {
		var events []Event
		byCall := map[string][]string{}
		for i := range r.Runs {
			run := &r.Runs[i]
			if run.State != RunIntent {
				continue
			}
			in, ok := seen[run.InstanceID]
			switch {
			case !ok:
				events = append(events, e.fail(r, run, "InstanceNotFound", "", "The instance no longer exists."))
			case rebootedSince(in, run.PriorOpRequestID):
				run.State, run.CalledAt = RunCalled, calledAt
				if in.LatestOperation == OpReboot {
					run.CallRequestID = in.LatestOperationRequestID
				}
				byCall[run.CallRequestID] = append(byCall[run.CallRequestID], run.InstanceID)
			case giveUp:
				events = append(events, e.fail(r, run, "RebootNotConfirmed", "",
					"The reboot call could not be confirmed after several tries, so it was not repeated."))
			default:
				run.State = RunWaiting
			}
		}
		for _, reqID := range sortedKeys(byCall) {
			events = append(events, Event{RequestID: r.ID, Type: EventRebootCalled, Actor: ActorBot, Instances: byCall[reqID],
				Details: Details{CloudRequestID: reqID, StopType: r.StopType, Note: "found rebooted by an earlier call whose answer was not recorded"}})
		}
		return events, nil
	})
}

// rebootedSince reports whether in shows a reboot newer than the operation
// prior.
func rebootedSince(in Instance, prior string) bool {
	if in.State == InstanceRebooting {
		return true
	}
	return in.LatestOperation == OpReboot && in.LatestOperationRequestID != "" && in.LatestOperationRequestID != prior
}

// fail marks run failed and returns its audit event.
func (e *Engine) fail(r *Request, run *Run, code, requestID, explanation string) Event {
	run.State = RunFailed
	run.ErrorCode, run.Explanation = code, explanation
	if requestID != "" {
		run.CallRequestID = requestID
	}
	return Event{RequestID: r.ID, Type: EventInstanceFailed, Actor: ActorBot, Instances: []string{run.InstanceID},
		Details: Details{ErrorCode: code, ErrorMessage: firstNonEmpty(run.ErrorMessage, explanation), CloudRequestID: requestID}}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// intend re-checks the waiting instances right before the call, fails
// those that left RUNNING or vanished, and stores the intent to reboot the
// rest together with each one's latest operation.
func (e *Engine) intend(ctx context.Context, r *Request, waiting []string) (*Request, error) {
	seen, err := e.describe(ctx, r.Region, waiting)
	if err != nil {
		return nil, err
	}
	r, err = e.save(ctx, r.ID, false, func(r *Request) ([]Event, error) {
		var events []Event
		var intended []string
		for i := range r.Runs {
			run := &r.Runs[i]
			if run.State != RunWaiting {
				continue
			}
			in, ok := seen[run.InstanceID]
			switch {
			case !ok:
				events = append(events, e.fail(r, run, "InstanceNotFound", "", "The instance no longer exists, so it was not rebooted."))
			case in.State != InstanceRunning:
				events = append(events, e.fail(r, run, "InstanceNotRunning", "",
					fmt.Sprintf("The instance was %s when its reboot was due; only RUNNING instances are rebooted, so it was left alone.", in.State)))
			default:
				run.State, run.PriorOpRequestID = RunIntent, in.LatestOperationRequestID
				intended = append(intended, run.InstanceID)
			}
		}
		if len(intended) > 0 {
			events = append(events, Event{RequestID: r.ID, Type: EventRebootIntent, Actor: ActorBot, Instances: intended,
				Details: Details{StopType: r.StopType, Region: r.Region}})
		}
		return events, nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// call asks the cloud to reboot ids and stores each instance's answer.
// Instances without an answer (the call was cut short) stay in intent for
// the next reconcile.
func (e *Engine) call(ctx context.Context, r *Request, ids []string) (*Request, error) {
	if len(ids) == 0 {
		return r, nil
	}
	results, _ := e.cloud.Reboot(ctx, r.Region, ids, r.StopType)
	if ctx.Err() != nil {
		// Shutting down: what happened is reconciled on the next start.
		return nil, ctx.Err()
	}
	calledAt := time.Now().UTC()
	byID := make(map[string]RebootResult, len(results))
	for _, res := range results {
		byID[res.InstanceID] = res
	}
	r, err := e.save(ctx, r.ID, false, func(r *Request) ([]Event, error) {
		var events []Event
		byCall := map[string][]string{}
		for i := range r.Runs {
			run := &r.Runs[i]
			res, ok := byID[run.InstanceID]
			if run.State != RunIntent || !ok {
				continue
			}
			if res.Err != nil {
				run.ErrorMessage = res.Err.Message
				events = append(events, e.fail(r, run, res.Err.Code, res.Err.RequestID, res.Err.Explanation))
				continue
			}
			run.State, run.CallRequestID, run.CalledAt = RunCalled, res.RequestID, calledAt
			byCall[res.RequestID] = append(byCall[res.RequestID], run.InstanceID)
		}
		for _, reqID := range sortedKeys(byCall) {
			events = append(events, Event{RequestID: r.ID, Type: EventRebootCalled, Actor: ActorBot, Instances: byCall[reqID],
				Details: Details{CloudRequestID: reqID, StopType: r.StopType, Region: r.Region}})
		}
		return events, nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// waitAll waits for every called instance of request id to finish its
// reboot, storing and reporting each result as it comes.
func (e *Engine) waitAll(ctx context.Context, id string) error {
	r, err := e.store.Get(ctx, id)
	if err != nil {
		return err
	}
	var targets []WaitTarget
	for _, run := range r.Runs {
		if run.State != RunCalled {
			continue
		}
		t := WaitTarget{InstanceID: run.InstanceID, RequestID: run.CallRequestID, Since: run.CalledAt}
		if t.RequestID == "" {
			t.NotRequestID = run.PriorOpRequestID
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return nil
	}
	// The timeout counts from each target's Since, so a request resumed
	// after a restart does not get a fresh one.
	var mu sync.Mutex // report may be called from several goroutines
	err = e.cloud.Wait(ctx, r.Region, targets, WaitOptions{Timeout: e.timeout, PollInterval: e.poll}, func(res WaitResult) {
		mu.Lock()
		defer mu.Unlock()
		e.record(ctx, id, res)
	})
	if err != nil {
		return err
	}
	// Anything Wait did not report counts as timed out.
	_, err = e.save(ctx, id, false, func(r *Request) ([]Event, error) {
		var events []Event
		for i := range r.Runs {
			if run := &r.Runs[i]; run.State == RunCalled {
				events = append(events, e.fail(r, run, "Timeout", run.CallRequestID, "No result came back before the reboot timeout."))
			}
		}
		return events, nil
	})
	return err
}

// record stores one instance's wait result; saving it kicks its report.
func (e *Engine) record(ctx context.Context, id string, res WaitResult) {
	_, err := e.save(ctx, id, false, func(r *Request) ([]Event, error) {
		run := r.Run(res.InstanceID)
		if run == nil || run.State != RunCalled {
			return nil, nil
		}
		run.Duration = res.Duration
		if res.OK {
			run.State = RunSucceeded
			return []Event{{RequestID: r.ID, Type: EventInstanceSucceeded, Actor: ActorBot, Instances: []string{run.InstanceID},
				Details: Details{CloudRequestID: run.CallRequestID, Duration: res.Duration.Round(time.Millisecond).String()}}}, nil
		}
		code, msg, expl := "Timeout", "", "The instance did not come back in time."
		if res.Err != nil {
			code, msg, expl = res.Err.Code, res.Err.Message, firstNonEmpty(res.Err.Explanation, res.Err.Message)
		}
		run.ErrorMessage = msg
		ev := e.fail(r, run, code, run.CallRequestID, expl)
		ev.Details.Duration = res.Duration.Round(time.Millisecond).String()
		return []Event{ev}, nil
	})
	if err != nil {
		e.log.Error("record instance result", "request", id, "instance", res.InstanceID, "err", err)
	}
}

// finish moves request id to its outcome once every instance is done.
func (e *Engine) finish(ctx context.Context, id string) (*Request, error) {
	return e.save(ctx, id, true, func(r *Request) ([]Event, error) {
		if r.State != Executing {
			return nil, nil
		}
		ok, failed := 0, 0
		for _, run := range r.Runs {
			switch run.State {
			case RunSucceeded:
				ok++
			case RunFailed:
				failed++
			default:
				return nil, Errorf(Internal, "%s: %s is still %q at the end of execution", r.ID, run.InstanceID, run.State)
			}
		}
		to := PartiallyFailed
		switch {
		case failed == 0:
			to = Succeeded
		case ok == 0:
			to = Failed
		}
		if err := r.transition(to); err != nil {
			return nil, err
		}
		r.FinishedAt = e.now()
		return []Event{{RequestID: r.ID, Type: EventCompleted, Actor: ActorBot, Instances: r.InstanceIDs(),
			Details: Details{Outcome: string(to), Note: fmt.Sprintf("%d of %d rebooted", ok, len(r.Runs))}}}, nil
	})
}
