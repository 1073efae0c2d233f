package approval

import (
	"context"
	"slices"
	"time"
)

// noticeTimeout bounds one notice (a card post or update, a report),
// the notifier's own retries included; what is still owed then is asked
// for again by the next sweep.
const noticeTimeout = 2 * time.Minute

// Kinds of background job, at most one of each per request at a time.
const (
	jobCard    = "card"    // bring the card up to date
	jobPost    = "post"    // post a card that was never stored
	jobReports = "reports" // post the thread messages owed
)

// runJob runs fn for request id in the background unless the same kind of
// job already runs for it; then that one runs once more when it ends, so a
// change that arrives meanwhile is never missed. Jobs only talk to Slack
// from what is stored, so running one again is always safe. At most
// NoticeJobs run fn at once (see jobTurn); the others wait in a queue,
// and none leaves it while commands and clicks keep coming (see lull and
// laterQueue).
func (e *Engine) runJob(kind, id string, fn func(ctx context.Context, id string)) {
	key := kind + " " + id
	e.mu.Lock()
	if e.running[key] {
		e.rerun[key] = true
		e.mu.Unlock()
		return
	}
	e.running[key] = true
	e.mu.Unlock()
	e.queueJob(key, id, fn)
}

// queueJob queues job key, marked running, to run fn for request id; it
// queues it again when it was asked for while it ran.
func (e *Engine) queueJob(key, id string, fn func(ctx context.Context, id string)) {
	done := func() {
		e.mu.Lock()
		delete(e.running, key)
		delete(e.rerun, key)
		e.mu.Unlock()
	}
	var run func(ctx context.Context, turn *jobTurn)
	run = func(ctx context.Context, turn *jobTurn) {
		fn(context.WithValue(ctx, jobTurnKey{}, turn), id)
		turn.give()
		e.mu.Lock()
		again := e.rerun[key] && ctx.Err() == nil
		delete(e.rerun, key)
		e.mu.Unlock()
		switch {
		case !again:
			done()
		case e.jobs.add(run, done):
		case turn.take(ctx):
			// The engine is closing and takes no new work; this job is
			// under way, so it runs once more here, as it was asked to.
			run(ctx, turn)
		default:
			done()
		}
	}
	if e.passive || !e.jobs.add(run, done) {
		done()
	}
}

// holdJob marks a job of kind for request id as running in the caller's
// own goroutine (so that no background one starts beside it) and returns
// its release, which starts the background job if it was asked for
// meanwhile. ok is false when one already runs.
func (e *Engine) holdJob(kind, id string, fn func(ctx context.Context, id string)) (release func(), ok bool) {
	key := kind + " " + id
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[key] {
		return nil, false
	}
	e.running[key] = true
	return func() {
		e.mu.Lock()
		again := e.rerun[key]
		delete(e.running, key)
		delete(e.rerun, key)
		e.mu.Unlock()
		if again {
			e.runJob(kind, id, fn)
		}
	}, true
}

// refreshCard brings request id's card up to date in the background.
func (e *Engine) refreshCard(id string) { e.runJob(jobCard, id, e.updateCard) }

// ensureCard posts request id's card in the background when none is stored.
func (e *Engine) ensureCard(id string) { e.runJob(jobPost, id, e.postMissingCard) }

// kickReports posts request id's owed thread messages in the background.
func (e *Engine) kickReports(id string) { e.runJob(jobReports, id, e.postReports) }

// updateCard renders the stored request on its card. The card of an
// ended request is then marked current in the store, when no newer change
// was saved meanwhile; that of a request still under way is remembered
// as shown (see shownCards).
func (e *Engine) updateCard(ctx context.Context, id string) {
	r, err := e.store.Get(ctx, id)
	if err != nil || r.Card.TS == "" || r.CardCurrent || r.NoticesLost || e.shown.shows(id, r.Version) {
		return
	}
	err = e.notice(ctx, r, "update card", func(ctx context.Context) error { return e.notify.UpdateCard(ctx, r) })
	if err != nil {
		return
	}
	if !r.State.Terminal() {
		e.shown.set(id, r.Version)
		return
	}
	e.shown.forget(id)
	_, _, _, err = e.store.Update(ctx, id, "", func(s *Request) (Change, error) {
		if s.Version != r.Version || s.CardCurrent {
			return Change{}, nil
		}
		s.CardCurrent = true
		return Change{Save: true}, nil
	})
	if err != nil {
		e.log.Error("mark card current", "request", id, "err", err)
	}
}

// postMissingCard posts the card of a stored request that has none (its
// first post failed, or its answer was lost to a crash). A request
// decided meanwhile gets a card showing its outcome: whoever saw the
// command in the channel learns what became of it. If Slack does not
// take it, the card stays owed and the next sweep tries again. A card
// that Create posted but could not store is stored, not posted again.
func (e *Engine) postMissingCard(ctx context.Context, id string) {
	r, err := e.store.Get(ctx, id)
	if err != nil {
		return
	}
	if r.Card.TS != "" || r.Settled() {
		e.placed.forget(id)
		return
	}
	if card, ok := e.placed.get(id); ok {
		if _, err := e.storeCard(ctx, r, card, func(*Request) bool { return false }); err != nil {
			e.log.Warn("store where the card is; still owed", "request", id, "err", err)
			return
		}
		e.placed.forget(id)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, noticeTimeout)
	defer cancel()
	if _, err := e.repostCard(ctx, r); err != nil {
		e.log.Warn("post card; still owed", "request", id, "err", err)
	}
}

// report posts one message in the request's thread.
func (e *Engine) report(ctx context.Context, r *Request, rep Report) error {
	if r.Card.TS == "" {
		return Errorf(Unavailable, "%s has no card yet to report in", r.ID)
	}
	return e.notice(ctx, r, "report "+string(rep.Kind), func(ctx context.Context) error { return e.notify.Report(ctx, r, rep) })
}

// MaxInstanceReports is the largest request whose thread gets a message
// per instance; a larger one gets its start, a message per wave when it
// rolls in waves, and its outcome, each naming the failures, so that a
// fleet does not flood the channel.
const MaxInstanceReports = 10

// reportsPerMark is how many instance reports are marked posted in one
// write, rather than rewriting the request once per report. A crash between a post and its mark posts it again,
// unless the bot can read the thread (see "Posting twice" in the README).
const reportsPerMark = 10

// postReports posts, in order, the thread messages request id owes: the
// start of execution, each instance's result (for requests of at most
// MaxInstanceReports instances), then the summary once every result is
// posted. Each is marked posted soon after Slack took it (the instance
// reports up to reportsPerMark at a time, the last ones with the summary
// when it follows them), so a restart posts only what is still owed.
// Execution never waits for this: a slow or failing Slack delays the
// messages, not the reboots.
func (e *Engine) postReports(ctx context.Context, id string) {
	r, err := e.store.Get(ctx, id)
	if err != nil || r.Card.TS == "" || r.StartedAt.IsZero() || r.NoticesLost {
		return
	}
	// startOwed is set when the start was posted after the execution
	// ended: the mark rides the write marking the reports that follow,
	// or is stored on its own when none does.
	var startOwed bool
	mark := func(fn func(r *Request)) bool {
		r, _, _, err = e.store.Update(ctx, id, "", func(r *Request) (Change, error) {
			if startOwed {
				markStarted(r, e.now())
			}
			fn(r)
			return Change{Save: true}, nil
		})
		if err != nil {
			e.log.Error("mark report posted", "request", id, "err", err)
		} else {
			startOwed = false
		}
		return err == nil
	}
	defer func() {
		if startOwed {
			mark(func(*Request) {})
		}
	}()
	if !r.StartAnnounced {
		if e.report(ctx, r, Report{Kind: ReportStarted}) != nil {
			return
		}
		if r.State.Terminal() {
			// No execution write is left to carry the mark; the
			// reports that follow at once are marked anyway.
			startOwed = true
		} else {
			r = nil // not held while the mark is awaited, nor the job's turn
			var stored bool
			if !offTurn(ctx, func() { stored = e.awaitStartMark(ctx, id) }) || !stored {
				return
			}
			// Results may have been stored meanwhile.
			if r, err = e.store.Get(ctx, id); err != nil {
				return
			}
		}
	}
	var posted []string
	markPosted := func() bool {
		if len(posted) == 0 {
			return true
		}
		ids := posted
		posted = nil
		return mark(func(r *Request) { r.markReported(ids) })
	}
	perInstance := len(r.Runs) <= MaxInstanceReports
	for i := range r.Runs {
		run := r.Runs[i]
		if !perInstance || !run.State.Done() || run.Reported {
			continue
		}
		if e.report(ctx, r, Report{Kind: ReportInstance, Run: &run}) != nil {
			markPosted()
			return
		}
		posted = append(posted, run.InstanceID)
		if len(posted) == reportsPerMark && !markPosted() {
			return
		}
	}
	if !perInstance && r.Plan != nil {
		if !markPosted() {
			return
		}
		for k := r.WavesReported + 1; k <= r.wavesFinished(); k++ {
			if e.report(ctx, r, Report{Kind: ReportWave, Wave: k}) != nil || !mark(func(r *Request) { r.WavesReported = max(r.WavesReported, k) }) {
				return
			}
		}
	}
	if !r.State.Terminal() || r.EndAnnounced {
		markPosted()
		return
	}
	for _, run := range r.Runs {
		if perInstance && run.State.Done() && !run.Reported && !slices.Contains(posted, run.InstanceID) {
			markPosted()
			return
		}
	}
	// The summary follows the last results at once: one write marks them
	// all posted.
	if e.report(ctx, r, Report{Kind: ReportFinished}) != nil {
		markPosted()
		return
	}
	ids := posted
	mark(func(r *Request) {
		r.markReported(ids)
		r.EndAnnounced = true
	})
}

// startMarkWait is how long the reports job waits for an execution's
// write to store the mark of a posted start before it stores it itself.
const startMarkWait = 5 * time.Second

// awaitStartMark has the mark that request id's start was posted stored:
// by the execution's next write (see startMarks), or here when the
// execution ends first or none comes in time. It reports whether the
// mark is stored.
func (e *Engine) awaitStartMark(ctx context.Context, id string) bool {
	mark := e.starts.posted(id)
	select {
	case <-mark.stored:
		return true
	case <-mark.ended:
	case <-e.clock.After(startMarkWait):
	case <-e.starts.closed:
	case <-ctx.Done():
	}
	e.starts.drop(id)
	select {
	case <-mark.stored: // stored meanwhile
		return true
	default:
	}
	// Stopping, the engine still stores the mark, so that a restart does
	// not post the start again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, _, _, err := e.store.Update(ctx, id, "", func(r *Request) (Change, error) {
		markStarted(r, e.now())
		return Change{Save: true}, nil
	})
	if err != nil {
		e.log.Error("mark start posted", "request", id, "err", err)
	}
	return err == nil
}

// notice sends one notice about r through fn, bounded by noticeTimeout.
// An error leaves the notice owed; a Gone error means it never can be
// delivered, and then nothing more is owed to Slack for r.
func (e *Engine) notice(ctx context.Context, r *Request, what string, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, noticeTimeout)
	defer cancel()
	err := fn(ctx)
	switch {
	case err == nil:
		return nil
	case ErrorKind(err) == Gone:
		e.noticesLost(ctx, r.ID, what, err)
	default:
		e.log.Warn(what+" failed; still owed", "request", r.ID, "err", err)
	}
	return err
}

// noticesLost records that Slack will never take request id's card or
// thread messages again, so that nothing more is owed to them, and audits
// it once.
func (e *Engine) noticesLost(ctx context.Context, id, what string, cause error) {
	e.log.Warn(what+": Slack will not take it, ever; nothing more is owed to Slack", "request", id, "err", cause)
	var events []Event
	_, _, _, err := e.store.Update(ctx, id, "", func(r *Request) (Change, error) {
		events = nil
		if r.NoticesLost {
			return Change{}, nil
		}
		r.NoticesLost = true
		ev := Event{RequestID: r.ID, Type: EventNoticesLost, Actor: ActorBot, Instances: r.InstanceIDs(),
			Details: Details{Channel: r.Card.Channel, Note: what + ": " + ErrorMessage(cause)}}
		if r.State.Terminal() {
			ev.Details.Outcome = string(r.State)
		}
		events = []Event{ev}
		return Change{Save: true, Events: events}, nil
	})
	if err != nil {
		e.log.Error("record lost notices", "request", id, "err", err)
		return
	}
	e.observe(events)
}
