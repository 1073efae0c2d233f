package approval

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"rebootbot/internal/background"
)

// maxCallRounds bounds how often one execution goes back to reconcile
// instances whose reboot call has no known outcome.
const maxCallRounds = 3

// Executor carries approved requests out: it stores each instance's intent
// to reboot with what the one look before the call showed, has the
// Rebooter reboot them, waits for each instance, and stores every result
// and the outcome. Every step is stored before the next begins, so that
// after a crash an execution can run again and neither repeats a reboot nor
// loses a result. The engine decides; the executor executes.
type Executor struct {
	store   Store
	cloud   Rebooter
	clock   Clock
	log     *slog.Logger
	poll    time.Duration
	timeout time.Duration
	// follow is told of every change an execution stored, so that the
	// card and the thread can catch up.
	follow func(r *Request, events []Event)
	// recheck is the engine's last word before an execution calls the
	// cloud for the first time: it returns the request as it may go on,
	// or ended.
	recheck func(ctx context.Context, r *Request) (*Request, error)
	// starts are the thread marks the execution's writes store.
	starts *startMarks

	background *background.Group // the running executions

	mu      sync.Mutex
	running map[string]bool          // requests with an execution in this process
	wake    map[string]chan struct{} // wakes a paused execution (see Wake)
	closing chan struct{}            // closed by Close: paused executions end
	close   sync.Once
}

func newExecutor(store Store, cloud Rebooter, clock Clock, log *slog.Logger, poll, timeout time.Duration,
	follow func(*Request, []Event), recheck func(context.Context, *Request) (*Request, error), starts *startMarks) *Executor {
	return &Executor{store: store, cloud: cloud, clock: clock, log: log, poll: poll, timeout: timeout, follow: follow, recheck: recheck, starts: starts,
		background: background.New(), running: map[string]bool{}, wake: map[string]chan struct{}{}, closing: make(chan struct{})}
}

// Start runs request id's execution in the background unless one already
// runs in this process or the executor is closed. The store's
// compare-and-set on EXECUTING guarantees a request starts once; this
// guard keeps the approval that started it and a restart's resume from
// running it side by side.
func (x *Executor) Start(id string) {
	x.mu.Lock()
	if x.running[id] {
		x.mu.Unlock()
		return
	}
	x.running[id] = true
	x.mu.Unlock()
	x.starts.begin(id)
	done := func() {
		x.starts.end(id)
		x.mu.Lock()
		delete(x.running, id)
		delete(x.wake, id)
		x.mu.Unlock()
	}
	started := x.background.Go(func(ctx context.Context) {
		defer done()
		if err := x.execute(ctx, id); err != nil && ctx.Err() == nil {
			x.log.Error("execute request", "request", id, "err", err)
		}
	})
	if !started {
		done()
	}
}

// Close starts no more executions and waits for the running ones until
// ctx ends; then it cancels them and returns ctx's error. An execution
// pausing between waves ends at once. What a cancelled
// execution leaves is in the store, and the next start resumes it.
func (x *Executor) Close(ctx context.Context) error {
	x.close.Do(func() { close(x.closing) })
	return x.background.Close(ctx)
}

func (x *Executor) now() time.Time { return x.clock.Now().UTC() }

// save changes request id in one transaction with the events fn returns,
// and with the mark that its start was posted when that is owed.
func (x *Executor) save(ctx context.Context, id string, fn func(r *Request) ([]Event, error)) (*Request, error) {
	var events []Event
	var marked func()
	r, _, _, err := x.store.Update(ctx, id, "", func(r *Request) (Change, error) {
		var err error
		marked = nil
		if events, err = fn(r); err != nil {
			return Change{}, err
		}
		marked = x.starts.apply(r, x.now())
		return Change{Save: true, Events: events}, nil
	})
	if err != nil {
		return nil, err
	}
	if marked != nil {
		marked()
	}
	x.follow(r, events)
	return r, nil
}

// saveShown is save for a change that shows on the card: the card then
// owes an update.
func (x *Executor) saveShown(ctx context.Context, id string, fn func(r *Request) ([]Event, error)) (*Request, error) {
	return x.save(ctx, id, func(r *Request) ([]Event, error) {
		events, err := fn(r)
		if err != nil {
			return nil, err
		}
		r.CardCurrent = false
		r.Version++
		return events, nil
	})
}

// execute drives an approved request to its outcome.
func (x *Executor) execute(ctx context.Context, id string) error {
	r, err := x.store.Get(ctx, id)
	if err != nil {
		return err
	}
	if r.State == Approved {
		if r, err = x.saveShown(ctx, id, func(r *Request) ([]Event, error) {
			if err := r.transition(Executing); err != nil {
				return nil, err
			}
			if r.StartedAt.IsZero() {
				r.StartedAt = x.now()
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
	if !anyCalled(r) {
		if r, err = x.recheck(ctx, r); err != nil || r.State != Executing {
			return err
		}
	}
	// Thread messages are posted by their own job, so that a slow Slack
	// delays the messages, never the reboots.
	x.follow(r, nil)
	return x.roll(ctx, id)
}

// roll runs request id's waves one after the other from where the store
// says it is: the wave started last, whether it finished, the pause's end
// and any stop. Each step is stored before it takes effect, so a restart
// goes on at the right wave and reboots no instance twice. A request
// without a plan is one wave, with no wave events.
func (x *Executor) roll(ctx context.Context, id string) error {
	for paused := false; ; {
		r, err := x.store.Get(ctx, id)
		if err != nil {
			return err
		}
		if r.State != Executing {
			if paused {
				// Ended during the pause by a stop, which may have been
				// taken by another process sharing the store.
				x.log.Info("execution ended during the pause between waves", "request", id, "state", r.State)
			}
			return nil
		}
		paused = false
		waves := r.waves()
		switch {
		case r.Plan == nil:
			if err := x.runWave(ctx, r, nil); err != nil {
				return err
			}
			_, err = x.finish(ctx, id)
			return err
		case r.Wave > 0 && !r.WaveFinished:
			if err := x.runWave(ctx, r, waves[r.Wave-1]); err != nil {
				return err
			}
			if _, err := x.saveShown(ctx, id, x.endWave); err != nil {
				return err
			}
		case r.Wave == len(waves):
			_, err = x.finish(ctx, id)
			return err
		case r.Halt == nil && x.now().Before(r.NextWaveAt):
			if err := x.sleepUntil(ctx, id, r.NextWaveAt); err != nil {
				return err
			}
			if x.isClosing() {
				// Paused: the next start reads the pause's end and waits
				// out the rest.
				return nil
			}
			paused = true
		default:
			if _, err := x.saveShown(ctx, id, x.startWave); err != nil {
				return err
			}
		}
	}
}

// runWave reboots the instances ids of r (all of them when ids is nil)
// and waits for them.
func (x *Executor) runWave(ctx context.Context, r *Request, ids []string) error {
	id := r.ID
	if err := x.callAll(ctx, r, ids); err != nil {
		return err
	}
	return x.waitAll(ctx, id)
}

// startWave starts r's next wave, or ends r as stopped when a stop came
// first.
func (x *Executor) startWave(r *Request) ([]Event, error) {
	if r.State != Executing || r.Wave > 0 && !r.WaveFinished {
		return nil, nil
	}
	if r.Halt != nil {
		return x.stopNow(r)
	}
	r.Wave++
	r.WaveFinished, r.NextWaveAt = false, time.Time{}
	return []Event{{RequestID: r.ID, Type: EventWaveStarted, Actor: ActorBot, Instances: r.waves()[r.Wave-1],
		Details: Details{Wave: r.Wave, Note: fmt.Sprintf("wave %d of %d", r.Wave, r.WaveCount())}}}, nil
}

// endWave records that r's running wave finished, then checks the failure
// budget and any stop: either ends r as stopped, or stores when the next
// wave may start.
func (x *Executor) endWave(r *Request) ([]Event, error) {
	if r.State != Executing || r.Wave == 0 || r.WaveFinished {
		return nil, nil
	}
	ok, failed := 0, 0
	for _, id := range r.waves()[r.Wave-1] {
		run := r.Run(id)
		if run == nil {
			continue
		}
		switch run.State {
		case RunSucceeded:
			ok++
		case RunFailed:
			failed++
		}
	}
	r.WaveFinished = true
	events := []Event{{RequestID: r.ID, Type: EventWaveFinished, Actor: ActorBot, Instances: r.waves()[r.Wave-1],
		Details: Details{Wave: r.Wave, Note: fmt.Sprintf("wave %d of %d: %d rebooted, %d failed", r.Wave, r.WaveCount(), ok, failed)}}}
	if r.Wave == r.WaveCount() {
		return events, nil
	}
	now := x.now()
	if why := r.overBudget(); why != "" && r.Halt == nil {
		r.Halt = &Halt{By: ActorBot, At: now, Reason: why}
		events = append(events, Event{RequestID: r.ID, Type: EventStopped, Actor: ActorBot, Instances: r.InstanceIDs(),
			Details: Details{Wave: r.Wave, Note: "failure budget exceeded: " + why}})
	}
	if r.Halt != nil {
		stop, err := x.stopNow(r)
		return append(events, stop...), err
	}
	r.NextWaveAt = now.Add(r.Plan.Pause)
	return events, nil
}

// stopNow ends r, between waves, as stopped.
func (x *Executor) stopNow(r *Request) ([]Event, error) {
	return stopRequest(r, x.now())
}

// stopRequest ends r as stopped at now: no wave is running, and the
// instances of the waves not started are reported not rebooted.
func stopRequest(r *Request, now time.Time) ([]Event, error) {
	if err := r.transition(Stopped); err != nil {
		return nil, err
	}
	r.FinishedAt, r.NextWaveAt = now, time.Time{}
	p := r.Progress()
	return []Event{{RequestID: r.ID, Type: EventCompleted, Actor: ActorBot, Instances: r.InstanceIDs(),
		Details: Details{Outcome: string(Stopped), Wave: r.Wave,
			Note: fmt.Sprintf("%s; %d of %d rebooted, %d failed, %d not rebooted", r.HaltText(), p.Rebooted, len(r.Instances), p.Failed, p.Waiting)}}}, nil
}

// sleepUntil waits on the clock until t, a wake-up for request id (a
// stop), the executor closing, or ctx's end.
func (x *Executor) sleepUntil(ctx context.Context, id string, t time.Time) error {
	d := t.Sub(x.now())
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-x.closing:
	case <-x.clock.After(d):
	case <-x.waker(id):
	}
	return nil
}

// waker returns the channel that wakes request id's execution from a
// pause.
func (x *Executor) waker(id string) chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	ch, ok := x.wake[id]
	if !ok {
		ch = make(chan struct{}, 1)
		x.wake[id] = ch
	}
	return ch
}

// Wake wakes request id's execution if it is pausing between waves, so
// that it reads the request again at once and sees a stop. A request with
// no execution in this process is left alone: an execution that starts
// later reads the request anyway, and no waker is kept for it.
func (x *Executor) Wake(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.running[id] {
		return
	}
	ch, ok := x.wake[id]
	if !ok {
		ch = make(chan struct{}, 1)
		x.wake[id] = ch
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (x *Executor) isClosing() bool {
	select {
	case <-x.closing:
		return true
	default:
		return false
	}
}

// anyCalled reports whether r's execution has gone past waiting for any
// instance: from then on it is finished, whatever the policy says now.
func anyCalled(r *Request) bool {
	for _, run := range r.Runs {
		if run.State != RunWaiting {
			return true
		}
	}
	return false
}

// callAll reboots every instance of r among ids (all when ids is nil)
// that has not been called yet, in rounds: reconcile unknown outcomes, look at the instances once, store
// the intent, call.
func (x *Executor) callAll(ctx context.Context, r *Request, ids []string) error {
	var wave map[string]bool
	if ids != nil {
		wave = make(map[string]bool, len(ids))
		for _, id := range ids {
			wave[id] = true
		}
	}
	for round := 0; ; round++ {
		var err error
		if r, err = x.reconcile(ctx, r, round >= maxCallRounds); err != nil {
			return err
		}
		waiting := runsIn(r, RunWaiting)
		if wave != nil {
			waiting = slices.DeleteFunc(waiting, func(id string) bool { return !wave[id] })
		}
		if len(waiting) == 0 {
			return nil
		}
		if r, err = x.intend(ctx, r, waiting); err != nil {
			return err
		}
		if r, err = x.call(ctx, r); err != nil {
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

// look looks instances up, retrying until it works or ctx ends: while an
// execution cannot see the cloud it must not guess.
func (x *Executor) look(ctx context.Context, region string, ids []string) (map[string]Instance, error) {
	for attempt := 0; ; attempt++ {
		seen, err := x.cloud.Look(ctx, region, ids)
		if err == nil {
			return seen, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		x.log.Warn("look instances up; retrying", "err", err)
		if !pause(ctx, min(x.poll, backoff(attempt))) {
			return nil, ctx.Err()
		}
	}
}

// reconcile settles instances whose intent was stored but whose call has no
// recorded outcome (a crash, a shutdown, a lost answer): an instance whose
// latest operation is now a reboot other than the one recorded with the
// intent, or that is rebooting, was rebooted by that call; the others go
// back to waiting, unless giveUp, when they are failed instead.
func (x *Executor) reconcile(ctx context.Context, r *Request, giveUp bool) (*Request, error) {
	intents := runsIn(r, RunIntent)
	if len(intents) == 0 {
		return r, nil
	}
	// r is not used past the look: while the cloud answers only its ID is
	// held, and the change is made on the request as stored.
	id := r.ID
	seen, err := x.look(ctx, r.Region, intents)
	if err != nil {
		return nil, err
	}
	calledAt := x.now()
	return x.save(ctx, id, func(r *Request) ([]Event, error) {
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
				events = append(events, fail(r, run, "InstanceNotFound", "", "The instance no longer exists."))
			case rebootedSince(in, run.PriorOpRequestID):
				run.State, run.CalledAt = RunCalled, calledAt
				if in.LatestOperation == OpReboot {
					run.CallRequestID = in.LatestOperationRequestID
				}
				byCall[run.CallRequestID] = append(byCall[run.CallRequestID], run.InstanceID)
			case giveUp:
				events = append(events, fail(r, run, "RebootNotConfirmed", "",
					"The reboot call could not be confirmed after several tries, so it was not repeated."))
			default:
				run.State = RunWaiting
			}
		}
		for _, reqID := range slices.Sorted(maps.Keys(byCall)) {
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
func fail(r *Request, run *Run, code, requestID, explanation string) Event {
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

// intend looks at the waiting instances right before the call, fails
// those that left RUNNING or vanished, and stores the intent to reboot the
// rest together with each one's latest operation. That look is the only
// one before the call: the Rebooter trusts what the intent recorded.
func (x *Executor) intend(ctx context.Context, r *Request, waiting []string) (*Request, error) {
	id := r.ID
	seen, err := x.look(ctx, r.Region, waiting)
	if err != nil {
		return nil, err
	}
	due := make(map[string]bool, len(waiting))
	for _, in := range waiting {
		due[in] = true
	}
	return x.save(ctx, id, func(r *Request) ([]Event, error) {
		var events []Event
		var intended []string
		for i := range r.Runs {
			run := &r.Runs[i]
			if run.State != RunWaiting || !due[run.InstanceID] {
				continue
			}
			in, ok := seen[run.InstanceID]
			switch {
			case !ok:
				events = append(events, fail(r, run, "InstanceNotFound", "", "The instance no longer exists, so it was not rebooted."))
			case in.State != InstanceRunning:
				events = append(events, fail(r, run, "InstanceNotRunning", "",
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
}

// call hands r's intents to the Rebooter and stores each instance's
// answer. Instances without an answer (the call was cut short) stay in
// intent for the next reconcile.
func (x *Executor) call(ctx context.Context, r *Request) (*Request, error) {
	var targets []RebootTarget
	for _, run := range r.Runs {
		if run.State == RunIntent {
			targets = append(targets, RebootTarget{InstanceID: run.InstanceID, PriorOpRequestID: run.PriorOpRequestID})
		}
	}
	if len(targets) == 0 {
		return r, nil
	}
	id := r.ID
	results := x.cloud.Reboot(ctx, r.Region, r.StopType, targets)
	if ctx.Err() != nil {
		// Shutting down: what happened is reconciled on the next start.
		return nil, ctx.Err()
	}
	// The reboot timeout counts from here, when the call has answered,
	// never from the intent or from when the wait begins.
	calledAt := x.now()
	byID := make(map[string]RebootResult, len(results))
	for _, res := range results {
		byID[res.InstanceID] = res
	}
	return x.save(ctx, id, func(r *Request) ([]Event, error) {
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
				events = append(events, fail(r, run, res.Err.Code, res.Err.RequestID, res.Err.Explanation))
				continue
			}
			run.State, run.CallRequestID, run.CalledAt = RunCalled, res.RequestID, calledAt
			byCall[res.RequestID] = append(byCall[res.RequestID], run.InstanceID)
		}
		for _, reqID := range slices.Sorted(maps.Keys(byCall)) {
			events = append(events, Event{RequestID: r.ID, Type: EventRebootCalled, Actor: ActorBot, Instances: byCall[reqID],
				Details: Details{CloudRequestID: reqID, StopType: r.StopType, Region: r.Region}})
		}
		return events, nil
	})
}

// waitAll waits for every called instance of request id to finish its
// reboot, storing each poll's results together and reporting them.
func (x *Executor) waitAll(ctx context.Context, id string) error {
	r, err := x.store.Get(ctx, id)
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
	// after a restart does not get a fresh one. Every result Wait reports
	// is kept here as well as stored: under load a store write can fail,
	// and a reboot Tencent reported finished must still end Succeeded, not
	// be taken for one that never came back.
	reported := make(map[string]WaitResult, len(targets))
	stored := make(map[string]bool, len(targets))
	err = x.cloud.Wait(ctx, r.Region, targets, WaitOptions{Timeout: x.timeout, PollInterval: x.poll, Now: x.now()}, func(res []WaitResult) {
		for _, wr := range res {
			reported[wr.InstanceID] = wr
		}
		if x.record(ctx, id, res) {
			for _, wr := range res {
				stored[wr.InstanceID] = true
			}
		}
	})
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(targets, func(t WaitTarget) bool { return !stored[t.InstanceID] }) {
		return nil // every result is stored
	}
	// What Wait reported but could not be stored is stored now; anything
	// it did not report counts as timed out. Should this write fail too,
	// the instances stay called and the next start waits for them again,
	// looking at each once before any timeout.
	_, err = x.save(ctx, id, func(r *Request) ([]Event, error) {
		var late []WaitResult
		var events []Event
		for i := range r.Runs {
			run := &r.Runs[i]
			if run.State != RunCalled {
				continue
			}
			if res, ok := reported[run.InstanceID]; ok {
				late = append(late, res)
				continue
			}
			events = append(events, fail(r, run, "Timeout", run.CallRequestID, "No result came back before the reboot timeout."))
		}
		return completeWith(r, append(applyResults(r, late), events...), x.now()), nil
	})
	return err
}

// record stores instances' wait results in one transaction; saving them
// kicks their reports. The write that stores the last result of a request
// without waves also ends the request (see completeWith). A failed write
// is logged and reported false: waitAll stores the results again once the
// wait is over.
func (x *Executor) record(ctx context.Context, id string, results []WaitResult) bool {
	_, err := x.save(ctx, id, func(r *Request) ([]Event, error) {
		return completeWith(r, applyResults(r, results), x.now()), nil
	})
	if err != nil {
		x.log.Error("record instance results; storing them when the wait ends", "request", id, "instances", len(results), "err", err)
	}
	return err == nil
}

// completeWith returns events, followed by the completion of r when r has
// no waves and every instance is done: the results and the outcome are
// then stored in one transaction rather than two. The outcome shows on the
// card.
func completeWith(r *Request, events []Event, now time.Time) []Event {
	if r.Plan != nil || r.State != Executing {
		return events
	}
	for _, run := range r.Runs {
		if !run.State.Done() {
			return events
		}
	}
	ev, err := complete(r, now)
	if err != nil {
		return events
	}
	r.CardCurrent = false
	r.Version++
	return append(events, ev)
}

// applyResults sets the outcome of r's called instances among results and
// returns their events; instances already settled are left as they are.
func applyResults(r *Request, results []WaitResult) []Event {
	var events []Event
	for _, res := range results {
		run := r.Run(res.InstanceID)
		if run == nil || run.State != RunCalled {
			continue
		}
		run.Duration = res.Duration
		if res.OK {
			run.State = RunSucceeded
			events = append(events, Event{RequestID: r.ID, Type: EventInstanceSucceeded, Actor: ActorBot, Instances: []string{run.InstanceID},
				Details: Details{CloudRequestID: run.CallRequestID, Duration: res.Duration.Round(time.Millisecond).String()}})
			continue
		}
		code, msg, expl := "Timeout", "", "The instance did not come back in time."
		if res.Err != nil {
			code, msg, expl = res.Err.Code, res.Err.Message, firstNonEmpty(res.Err.Explanation, res.Err.Message)
		}
		run.ErrorMessage = msg
		ev := fail(r, run, code, run.CallRequestID, expl)
		ev.Details.Duration = res.Duration.Round(time.Millisecond).String()
		events = append(events, ev)
	}
	return events
}

// finish moves request id to its outcome once every instance is done.
// A request whose last result already ended it (see completeWith) is
// returned as stored, without a write.
func (x *Executor) finish(ctx context.Context, id string) (*Request, error) {
	r, err := x.store.Get(ctx, id)
	if err != nil || r.State != Executing {
		return r, err
	}
	return x.saveShown(ctx, id, func(r *Request) ([]Event, error) {
		if r.State != Executing {
			return nil, nil
		}
		ev, err := complete(r, x.now())
		if err != nil {
			return nil, err
		}
		return []Event{ev}, nil
	})
}

// complete moves r, every instance of which is done, to its outcome and
// returns the completion event.
func complete(r *Request, now time.Time) (Event, error) {
	ok, failed := 0, 0
	for _, run := range r.Runs {
		switch run.State {
		case RunSucceeded:
			ok++
		case RunFailed:
			failed++
		default:
			return Event{}, Errorf(Internal, "%s: %s is still %q at the end of execution", r.ID, run.InstanceID, run.State)
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
		return Event{}, err
	}
	r.FinishedAt = now
	return Event{RequestID: r.ID, Type: EventCompleted, Actor: ActorBot, Instances: r.InstanceIDs(),
		Details: Details{Outcome: string(to), Note: fmt.Sprintf("%d of %d rebooted", ok, len(r.Runs))}}, nil
}
