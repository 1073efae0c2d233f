package cloud

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"rebootbot/approval"
)

// Dispatcher carries every RebootInstances call, every look-up right before
// one, and every wait poll of one account (one CVM adapter), with a lane
// per region. Executions hand it work; it decides how the work rides the
// API:
//
//   - Reboots with the same stop type from any number of requests share
//     calls of up to 100 IDs. There is no gathering delay: an idle lane
//     sends the first intent immediately. The 10 calls a second are spent
//     evenly, a call that is not full at most every RebootInterval, so
//     that intents arriving after a call wait for the next one, at most
//     100 ms later, and fill it; a full call goes as soon as the budget
//     allows.
//   - Look-ups likewise share DescribeInstances calls of up to 100 IDs.
//   - Every instance waiting in a region is polled in the same rounds, in
//     calls of up to 100 IDs, whoever asked for its reboot.
//
// A call that Tencent refuses because of some of its instances is split by
// the adapter's isolation (the message, the known states, one fresh look,
// bisection), so one request's bad instance costs the others at most the
// extra calls isolation needs, and each instance's outcome depends only on
// itself, never on who shared its call. All calls keep to the adapter's
// limiters. A Dispatcher is safe for concurrent use.
type Dispatcher struct {
	cvm *CVM

	mu    sync.Mutex
	lanes map[string]*lane
}

var (
	_ approval.Rebooter = (*Dispatcher)(nil)
	_ approval.Cloud    = (*Dispatcher)(nil)
)

// LookInterval spaces the partial look-up calls (a new request's check,
// the look before a reboot) of a region: one at most every 100 ms, a
// quarter of the DescribeInstances budget, so that wait polls always find
// room and look-ups that arrive together share a call instead of spending
// the budget one ID at a time. Spaced rather than bunched, a look-up waits
// at most one interval for its call. Full calls (100 IDs) are not spaced.
const LookInterval = 100 * time.Millisecond

// RebootInterval spaces a region's RebootInstances calls that are not
// full: the 10 calls a second, one every 100 ms. Spent as they come, the
// budget would go on the first ten intents of a burst, a few IDs a call,
// and the rest would wait a second for the next call; spaced, every
// intent waits at most one interval, and the calls are fuller.
const RebootInterval = time.Second / RebootCallsPerSecond

// NewDispatcher returns the dispatcher for c's account.
func NewDispatcher(c *CVM) *Dispatcher {
	return &Dispatcher{cvm: c, lanes: map[string]*lane{}}
}

// lane returns region's lane, creating it on first use.
func (d *Dispatcher) lane(region string) *lane {
	region = d.cvm.region(region)
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.lanes[region]
	if !ok {
		l = &lane{cvm: d.cvm, region: region, kick: make(chan struct{}, 1),
			rebootSpacer: newSpacer(RebootInterval, d.cvm.cfg.Clock),
			lookLimiter:  newSpacer(LookInterval, d.cvm.cfg.Clock)}
		d.lanes[region] = l
	}
	return l
}

// lane is one region's queues. Each queue has at most one goroutine
// draining it, started when work arrives and gone when the queue is
// empty, so an idle dispatcher holds no goroutines.
type lane struct {
	cvm    *CVM
	region string

	mu           sync.Mutex
	intents      []*intent // reboots waiting for a call, oldest first
	sending      bool      // a goroutine drains intents
	rebootSpacer *Limiter  // spaces the reboot calls that are not full
	looks        []*look   // look-ups waiting for a call, oldest first
	looking      bool      // a goroutine drains looks
	lookLimiter  *Limiter  // look-ups' share of the describe budget
	watches      []*watch  // waits with instances still pending
	polling      bool      // a goroutine polls the watches
	kick         chan struct{}
	nextPollDue  time.Time
}

// intent is one instance to reboot, and where its outcome goes.
type intent struct {
	ctx    context.Context
	target approval.RebootTarget
	stop   approval.StopType
	result chan approval.RebootResult // buffered, 1
}

// Reboot reboots each target with stop and returns one result per target,
// in order. The targets ride calls shared with other requests of the
// region. Each target's PriorOpRequestID is trusted as the instance's
// latest operation before the call: an unclear answer is settled by
// comparing against it, without another look-up first. When ctx ends
// before every outcome is known, Reboot returns early; targets without an
// outcome are left out, and their calls may still be made.
func (d *Dispatcher) Reboot(ctx context.Context, region string, stop approval.StopType, targets []approval.RebootTarget) []approval.RebootResult {
	if len(targets) == 0 {
		return nil
	}
	if !stop.Valid() {
		ce := d.cvm.clientError(CodeInvalidRequest, fmt.Sprintf("stop type %q is not SOFT, HARD or SOFT_FIRST", printable(string(stop))))
		return failAll(targets, ce)
	}
	l := d.lane(region)
	if _, ce := d.cvm.client(ctx, l.region); ce != nil {
		return failAll(targets, ce)
	}
	waiting := make([]*intent, len(targets))
	for i, t := range targets {
		waiting[i] = &intent{ctx: ctx, target: t, stop: stop, result: make(chan approval.RebootResult, 1)}
	}
	l.mu.Lock()
	l.intents = append(l.intents, waiting...)
	if !l.sending {
		l.sending = true
		go l.send()
	}
	l.mu.Unlock()
	out := make([]approval.RebootResult, 0, len(targets))
	for _, in := range waiting {
		select {
		case res := <-in.result:
			out = append(out, res)
		case <-ctx.Done():
			return out
		}
	}
	return out
}

func failAll(targets []approval.RebootTarget, ce *approval.CloudError) []approval.RebootResult {
	out := make([]approval.RebootResult, len(targets))
	for i, t := range targets {
		out[i] = approval.RebootResult{InstanceID: t.InstanceID, RequestID: ce.RequestID, Err: ce}
	}
	return out
}

// send drains the lane's intents: it waits for the reboot limiter (and,
// unless a full call is queued, for the spacing), then takes up to 100
// queued intents of one stop type into a call, and again, until the queue
// is empty. The call itself runs beside the loop, so that the next one
// can start as soon as the budget allows.
func (l *lane) send() {
	lim := l.cvm.cfg.Limiter
	for {
		l.mu.Lock()
		if len(l.intents) == 0 {
			l.sending = false
			l.mu.Unlock()
			return
		}
		full := l.queuedIntentIDs() >= MaxIDsPerCall
		l.mu.Unlock()
		if !full {
			if err := l.rebootSpacer.Wait(context.Background()); err != nil {
				continue
			}
		}
		// The slot is taken before the batch is: whatever arrives while
		// the budget is spent rides this call.
		done, err := lim.Start(context.Background())
		if err != nil {
			continue
		}
		batch := l.takeIntents()
		if len(batch) == 0 {
			done()
			continue
		}
		go func() {
			p := &prepaid{lim: lim, done: done}
			defer p.settle()
			l.call(batch, p)
		}()
	}
}

// nextCall shows visit each live queued intent, oldest first, and whether
// it rides the next call: the oldest live intent's stop type, up to
// MaxIDsPerCall distinct IDs. It returns how many IDs that call carries.
// Intents whose caller has gone are skipped. l.mu is held.
func (l *lane) nextCall(visit func(in *intent, rides bool)) int {
	var stop approval.StopType
	ids := map[string]bool{}
	for _, in := range l.intents {
		if in.ctx.Err() != nil {
			continue
		}
		if len(ids) == 0 {
			stop = in.stop
		}
		id := in.target.InstanceID
		rides := in.stop == stop && (len(ids) < MaxIDsPerCall || ids[id])
		if rides {
			ids[id] = true
		}
		visit(in, rides)
	}
	return len(ids)
}

// queuedIntentIDs counts the distinct IDs the next call would carry. l.mu
// is held.
func (l *lane) queuedIntentIDs() int {
	return l.nextCall(func(*intent, bool) {})
}

// takeIntents removes the intents of the next call from the queue (see
// nextCall). Intents whose caller has gone are dropped: their request
// reconciles them on its next run.
func (l *lane) takeIntents() []*intent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var batch []*intent
	rest := l.intents[:0] // written behind the reading, in place
	l.nextCall(func(in *intent, rides bool) {
		if rides {
			batch = append(batch, in)
		} else {
			rest = append(rest, in)
		}
	})
	clear(l.intents[len(rest):])
	l.intents = rest
	return batch
}

// call makes one RebootInstances call for batch, isolating the instances
// that make it fail, and hands each intent its outcome.
func (l *lane) call(batch []*intent, pace pacer) {
	ctx := context.Background()
	cl, ce := l.cvm.client(ctx, l.region)
	if ce != nil {
		for _, in := range batch {
			in.result <- approval.RebootResult{InstanceID: in.target.InstanceID, RequestID: ce.RequestID, Err: ce}
		}
		return
	}
	r := &rebooter{c: l.cvm, cl: cl, stop: batch[0].stop, pace: pace,
		results: make(map[string]approval.RebootResult, len(batch)),
		before:  make(map[string]approval.Instance, len(batch))}
	var ids []string
	for _, in := range batch {
		id := in.target.InstanceID
		if _, dup := r.before[id]; !dup {
			ids = append(ids, id)
		}
		// The target was RUNNING when its intent was stored; its latest
		// operation then is what an unclear answer is judged against.
		r.before[id] = approval.Instance{ID: id, State: approval.InstanceRunning, LatestOperationRequestID: in.target.PriorOpRequestID}
	}
	r.process(ctx, ids)
	for _, in := range batch {
		res, ok := r.results[in.target.InstanceID]
		if !ok {
			ce := l.cvm.clientError(CodeOutcomeUnknown, "the reboot call ended without an answer for this instance")
			res = approval.RebootResult{InstanceID: in.target.InstanceID, Err: ce}
		}
		in.result <- res
	}
}

// pacer lets a call's attempts start within the API's rate: Start
// returns once an attempt may go, and the attempt calls done when its
// answer is in (see Limiter).
type pacer interface {
	Start(ctx context.Context) (done func(), err error)
}

// prepaid is a pacer whose first slot was taken before the call was
// assembled; later attempts (retries, isolation's split calls) wait for
// the limiter like any other call.
type prepaid struct {
	lim  *Limiter
	done func() // the first slot's; nil once handed out
}

func (p *prepaid) Start(ctx context.Context) (func(), error) {
	if done := p.done; done != nil {
		p.done = nil
		if err := ctx.Err(); err != nil {
			done()
			return nil, err
		}
		return done, nil
	}
	return p.lim.Start(ctx)
}

// settle gives the first slot back if the call ended before using it
// (its client could not be made): no call went out with it.
func (p *prepaid) settle() {
	if p.done != nil {
		p.done()
		p.done = nil
	}
}

// look is one caller's share of a coalesced DescribeInstances call.
type look struct {
	ctx    context.Context
	ids    []string
	seen   map[string]approval.Instance
	err    *approval.CloudError
	result chan struct{} // closed when seen or err is set
}

// Look returns the instances among ids as DescribeInstances shows them
// now; IDs that do not exist are absent from the map. The look-ups of all
// requests of a region share calls of up to 100 IDs.
func (d *Dispatcher) Look(ctx context.Context, region string, ids []string) (map[string]approval.Instance, error) {
	l := d.lane(region)
	ids = validIDs(unique(ids))
	if len(ids) == 0 {
		return map[string]approval.Instance{}, nil
	}
	if _, ce := d.cvm.client(ctx, l.region); ce != nil {
		return nil, asError(ce, ctx.Err())
	}
	parts := chunks(ids, MaxIDsPerCall)
	looks := make([]*look, len(parts))
	l.mu.Lock()
	for i, p := range parts {
		looks[i] = &look{ctx: ctx, ids: p, result: make(chan struct{})}
	}
	l.looks = append(l.looks, looks...)
	if !l.looking {
		l.looking = true
		go l.describe()
	}
	l.mu.Unlock()
	seen := make(map[string]approval.Instance, len(ids))
	for _, lk := range looks {
		select {
		case <-lk.result:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if lk.err != nil {
			return nil, asError(lk.err, ctx.Err())
		}
		for id, in := range lk.seen {
			seen[id] = in
		}
	}
	return seen, nil
}

// Describe looks instances up by ID through the region's shared look-up
// calls: found in the order asked, missing the IDs that do not exist (or
// are not well-formed instance IDs).
func (d *Dispatcher) Describe(ctx context.Context, region string, ids []string) ([]approval.Instance, []string, error) {
	ids = unique(ids)
	seen, err := d.Look(ctx, region, ids)
	if err != nil {
		return nil, nil, err
	}
	found, missing := splitFound(ids, seen)
	return found, missing, nil
}

// describe drains the lane's look-ups the way send drains its intents,
// within the look-ups' share of the budget.
func (l *lane) describe() {
	lim := l.cvm.cfg.DescribeLimiter
	for {
		l.mu.Lock()
		if len(l.looks) == 0 {
			l.looking = false
			l.mu.Unlock()
			return
		}
		// A call that is full already gains nothing from waiting for
		// others to join it; only partial calls are spaced.
		full := l.queuedLookIDs() >= MaxIDsPerCall
		l.mu.Unlock()
		if !full {
			if err := l.lookLimiter.Wait(context.Background()); err != nil {
				continue
			}
		}
		done, err := lim.Start(context.Background())
		if err != nil {
			continue
		}
		batch, ids := l.takeLooks()
		if len(batch) == 0 {
			done()
			continue
		}
		go func() {
			p := &prepaid{lim: lim, done: done}
			defer p.settle()
			l.answer(batch, ids, p)
		}()
	}
}

// queuedLookIDs counts the IDs of the queued look-ups, up to one call's
// worth. l.mu is held.
func (l *lane) queuedLookIDs() int {
	n := 0
	for _, lk := range l.looks {
		if n += len(lk.ids); n >= MaxIDsPerCall {
			break
		}
	}
	return n
}

// takeLooks removes whole look-ups, oldest first, while their IDs fit in
// one call.
func (l *lane) takeLooks() ([]*look, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var batch []*look
	var ids []string
	set := map[string]bool{}
	rest := l.looks[:0]
	for _, lk := range l.looks {
		if lk.ctx.Err() != nil {
			lk.err = l.cvm.cloudError(lk.ctx.Err())
			close(lk.result)
			continue
		}
		fresh := 0
		for _, id := range lk.ids {
			if !set[id] {
				fresh++
			}
		}
		if len(ids)+fresh > MaxIDsPerCall {
			rest = append(rest, lk)
			continue
		}
		for _, id := range lk.ids {
			if !set[id] {
				set[id] = true
				ids = append(ids, id)
			}
		}
		batch = append(batch, lk)
	}
	clear(l.looks[len(rest):])
	l.looks = rest
	return batch, ids
}

// answer makes one DescribeInstances call for ids and gives each look-up
// its part.
func (l *lane) answer(batch []*look, ids []string, pace pacer) {
	seen, ce := l.lookup(context.Background(), ids, pace)
	for _, lk := range batch {
		if ce != nil {
			lk.err = ce
		} else {
			lk.seen = make(map[string]approval.Instance, len(lk.ids))
			for _, id := range lk.ids {
				if in, ok := seen[id]; ok {
					lk.seen[id] = in
				}
			}
		}
		close(lk.result)
	}
}

// lookup describes at most 100 IDs in one call (with retries), pacing its
// attempts with pace.
func (l *lane) lookup(ctx context.Context, ids []string, pace pacer) (map[string]approval.Instance, *approval.CloudError) {
	cl, ce := l.cvm.client(ctx, l.region)
	if ce != nil {
		return nil, ce
	}
	return l.cvm.describeBatch(ctx, cl, ids, pace)
}

// watch is one Wait call's instances.
type watch struct {
	ctx      context.Context
	interval time.Duration
	pending  map[string]*waiting

	mu    sync.Mutex
	done  []approval.WaitResult // found by the poller, not yet reported
	ready chan struct{}         // signalled when done grows; buffered, 1
}

// Wait waits until every target is RUNNING with its reboot finished
// (SUCCESS), its reboot FAILED, or a look begun once opts.Timeout has
// passed since its Since (or since Wait began, when Since is zero) finds
// it still not back, and calls report, from Wait's
// own goroutine, with the targets whose outcome each poll round found.
// The targets join the region's shared poll rounds, one every
// opts.PollInterval (the shortest asked for, when waits differ). Failed
// look-ups are logged and retried at the next round; a timeout then
// mentions the last error. Wait returns nil when every target is
// reported, or ctx's error when ctx ends first.
func (d *Dispatcher) Wait(ctx context.Context, region string, targets []approval.WaitTarget, opts approval.WaitOptions, report func([]approval.WaitResult)) error {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultWaitTimeout
	}
	if report == nil {
		report = func([]approval.WaitResult) {}
	}
	l := d.lane(region)
	start := d.cvm.cfg.Clock.Now()
	w := &watch{ctx: ctx, interval: opts.PollInterval, pending: map[string]*waiting{}, ready: make(chan struct{}, 1)}
	for _, t := range targets {
		if _, dup := w.pending[t.InstanceID]; dup || t.InstanceID == "" {
			continue
		}
		wt := &waiting{target: t, since: t.Since}
		switch {
		case wt.since.IsZero():
			wt.since = start
		case !opts.Now.IsZero():
			// Since is on the caller's clock: keep how long ago it was.
			wt.since = start.Add(t.Since.Sub(opts.Now))
		}
		wt.deadline = wt.since.Add(opts.Timeout)
		if wt.deadline.Before(start) {
			// Always look at least once before calling it a timeout.
			wt.deadline = start
		}
		w.pending[t.InstanceID] = wt
	}
	left := len(w.pending)
	if left == 0 {
		return nil
	}
	l.mu.Lock()
	l.watches = append(l.watches, w)
	switch {
	case !l.polling:
		l.polling = true
		l.nextPollDue = start // an idle lane looks at once
		go l.poll()
	case w.earliest().Before(l.nextPollDue):
		l.wake() // the poller sleeps past this watch's first deadline
	}
	l.mu.Unlock()
	defer l.forget(w)
	for left > 0 {
		select {
		case <-w.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
		got := w.done
		w.done = nil
		w.mu.Unlock()
		if len(got) > 0 {
			left -= len(got)
			report(got)
		}
	}
	return nil
}

// earliest returns the earliest deadline among w's pending instances.
func (w *watch) earliest() time.Time {
	var first time.Time
	for _, wt := range w.pending {
		if first.IsZero() || wt.deadline.Before(first) {
			first = wt.deadline
		}
	}
	return first
}

// wake tells the poller that the watches changed.
func (l *lane) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// forget removes w from the lane's watches.
func (l *lane) forget(w *watch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := slices.Index(l.watches, w); i >= 0 {
		l.watches = slices.Delete(l.watches, i, i+1)
	}
}

// poll runs the lane's poll rounds while any watch has pending instances:
// each round describes every pending instance of the region, in calls of
// up to 100 IDs, and hands each watch the outcomes it found. Rounds come
// every poll interval, or sooner when a deadline falls before it, so that
// a timeout is declared right after a last look.
func (l *lane) poll() {
	clock := l.cvm.cfg.Clock
	for {
		l.mu.Lock()
		live := l.liveWatches()
		if len(live) == 0 {
			l.polling = false
			l.mu.Unlock()
			return
		}
		next := l.nextPollDue
		for _, w := range live {
			for _, wt := range w.pending {
				if wt.deadline.Before(next) {
					next = wt.deadline
				}
			}
		}
		l.mu.Unlock()
		if d := next.Sub(clock.Now()); d > 0 {
			select {
			case <-clock.After(d):
			case <-l.kick:
				continue // a new watch brought an earlier deadline
			}
		}
		l.round(live)
		l.mu.Lock()
		interval := live[0].interval
		for _, w := range l.liveWatches() {
			interval = min(interval, w.interval)
		}
		l.nextPollDue = clock.Now().Add(interval)
		l.mu.Unlock()
	}
}

// liveWatches returns the watches whose caller still waits. l.mu is held.
func (l *lane) liveWatches() []*watch {
	var live []*watch
	for _, w := range l.watches {
		if w.ctx.Err() == nil && len(w.pending) > 0 {
			live = append(live, w)
		}
	}
	return live
}

// round looks at every pending instance of watches once and judges them.
// Only the poller touches a watch's pending map.
func (l *lane) round(watches []*watch) {
	var ids []string
	seen := map[string]bool{}
	for _, w := range watches {
		for id := range w.pending {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	found := make(map[string]approval.Instance, len(ids))
	failed := map[string]*approval.CloudError{}
	// lookedAt is when each instance's look-up began. Under load a look-up
	// can wait for its turn past a deadline; what it shows was true when
	// it began, so only a look begun at or after the deadline may end
	// the wait with a timeout.
	lookedAt := make(map[string]time.Time, len(ids))
	clock := l.cvm.cfg.Clock
	lim := l.cvm.cfg.DescribeLimiter
	for _, batch := range chunks(validIDs(ids), MaxIDsPerCall) {
		began := clock.Now()
		for _, id := range batch {
			lookedAt[id] = began
		}
		got, ce := l.lookup(context.Background(), batch, lim)
		if ce != nil {
			l.cvm.log.Warn("checking on rebooting instances failed; will look again", "instances", len(batch), "code", ce.Code, "request_id", ce.RequestID)
			for _, id := range batch {
				failed[id] = ce
			}
			continue
		}
		for id, in := range got {
			// What a poll judges by is the state and the latest
			// operation; the rest need not stay in memory with the
			// waiting instance until it is done.
			in.Tags, in.PrivateIPs, in.PublicIPs = nil, nil, nil
			found[id] = in
		}
	}
	now := clock.Now()
	for _, w := range watches {
		var done []approval.WaitResult
		for id, wt := range w.pending {
			ce, lookFailed := failed[id]
			if lookFailed {
				wt.lastErr = ce
			}
			// A finished reboot counts whenever it is seen; the timeout
			// decides only for an instance still not back at a look
			// begun after its deadline. One begun before it is followed
			// at once by another, as the deadline has passed.
			res, ok := wt.judge(found, !lookFailed, now)
			if at, looked := lookedAt[id]; !ok && looked && !at.Before(wt.deadline) {
				res, ok = wt.timeout(now), true
			}
			if ok {
				delete(w.pending, id)
				done = append(done, res)
			}
		}
		if len(done) == 0 {
			continue
		}
		slices.SortFunc(done, func(a, b approval.WaitResult) int { return strings.Compare(a.InstanceID, b.InstanceID) })
		w.mu.Lock()
		w.done = append(w.done, done...)
		w.mu.Unlock()
		select {
		case w.ready <- struct{}{}:
		default:
		}
	}
}
