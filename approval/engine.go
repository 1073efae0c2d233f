package approval

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"

	"rebootbot/internal/background"
)

// Config is what an Engine is built from.
type Config struct {
	Store    Store
	Cloud    Cloud    // checks new requests
	Rebooter Rebooter // carries approved ones out
	Notifier Notifier
	Groups   Groups
	Policy   *Policy
	Clock    Clock        // nil: SystemClock
	Logger   *slog.Logger // nil: discard
	// PollInterval is how often a running reboot is checked; RebootTimeout
	// how long an instance may take to be RUNNING again.
	PollInterval, RebootTimeout time.Duration
	// Observer, when set, is called after each audit event is stored.
	Observer func(*Event)
	// Finder selects instances by tag, name, address or zone; nil means
	// Cloud when it can, else requests must name IDs.
	Finder Finder
	// Passive engines answer commands and clicks but do no background
	// work: no executions, expiry, card or thread updates. What they owe
	// stays in the store for the one engine, among replicas sharing a
	// store, that does that work (see Wake). Start on a passive engine
	// resumes nothing.
	Passive bool
	// Shared says that engines in other processes create requests in the
	// same store (replicas). A request's card is then left to the engine
	// that created it for firstCardWait and a little more, counted from
	// when this engine first sees the request without a card, since that
	// engine may still be posting it; in one process the creating call
	// holds the card's job instead.
	Shared bool
}

// Engine decides reboot requests: it validates and stores them, collects
// approvals, hands approved ones to its Executor exactly once, expires
// them, keeps their cards and threads current, and resumes whatever was
// left open after a restart. Its methods are safe for concurrent use.
type Engine struct {
	store    Store
	cloud    Cloud
	finder   Finder
	notify   Notifier
	groups   Groups
	policy   atomic.Pointer[Policy] // the policy in force; swapped whole by SetPolicy
	clock    Clock
	log      *slog.Logger
	observer func(*Event)
	passive  bool
	shared   bool
	exec     *Executor
	creating singleflight.Group // Create calls in flight, by delivery key
	// sightings counts a shared engine's wait for a creator's card.
	sightings cardSightings
	// shown remembers the cards updated without a mark in the store.
	shown shownCards
	// placed remembers the cards Create posted but could not store where
	// they are, for the post job to store rather than post again.
	placed byRequest[Card]
	// starts carries the marks of posted starts into executions' writes.
	starts *startMarks
	// posting is held for reading by each Create from its store write
	// until it holds its card's post job, and for writing by a sweep while
	// it reads the open requests: a sweep never sees a new request in that
	// gap and posts a card that Create is about to post.
	posting sync.RWMutex

	// Jobs (card updates, reports, the expiry loop) are background work
	// of their own, apart from the executor's, so that Close can let
	// executions finish while it stops jobs sooner: jobs keep everything
	// they owe in the store, executions may be mid-call.
	background *background.Group
	kick       chan struct{} // wakes the expiry loop
	closing    chan struct{} // closed when Close begins
	// noticeSlots holds a token for each card or thread job talking to
	// Slack (see NoticeJobs).
	noticeSlots chan struct{}
	// lull is when the commands and clicks being handled let card and
	// thread jobs take their turns.
	lull *lull
	// jobs holds the card and thread jobs waiting for the lull and a
	// turn; answers, the answers to commands and clicks (AfterLull).
	jobs, answers *laterQueue

	mu      sync.Mutex
	closed  bool            // no new sweeps
	running map[string]bool // running jobs by kind and request
	rerun   map[string]bool // jobs asked for again while running
}

// Result is the answer to an approval, denial or cancellation.
type Result struct {
	Request  *Request
	Message  string // a sentence for the person who acted
	Replayed bool   // the delivery was seen before; nothing new happened
}

// CreateInput is a new request as the user asked for it.
type CreateInput struct {
	Key       string // delivery key (the command's trigger_id)
	Requester string
	Channel   string
	Reason    string
	Instances []string
	Selector  Selector // instances selected by what they are, added to Instances
	StopType  StopType // "" = SOFT
	Region    string   // "" = the policy's default
	Waves     WaveOptions
}

// MaxReasonLength bounds a reason, in characters.
const MaxReasonLength = 1000

// NewEngine returns an engine; call Start to resume open requests and run
// expiry.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Cloud == nil || cfg.Rebooter == nil || cfg.Notifier == nil || cfg.Policy == nil {
		return nil, errors.New("approval: engine needs a store, a cloud, a rebooter, a notifier and a policy")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("approval: policy: %w", err)
	}
	e := &Engine{
		store: cfg.Store, cloud: cfg.Cloud, finder: cfg.Finder, notify: cfg.Notifier, groups: cfg.Groups,
		clock: cfg.Clock, log: cfg.Logger, observer: cfg.Observer, passive: cfg.Passive, shared: cfg.Shared,
		kick:        make(chan struct{}, 1),
		closing:     make(chan struct{}),
		noticeSlots: make(chan struct{}, NoticeJobs),
		lull:        newLull(),
		background:  background.New(),
		running:     map[string]bool{},
		rerun:       map[string]bool{},
	}
	e.jobs = &laterQueue{lull: e.lull, slots: e.noticeSlots, spawn: e.spawnJob}
	e.answers = &laterQueue{lull: e.lull, slots: make(chan struct{}, AnswerJobs), spawn: e.background.Go}
	e.policy.Store(cfg.Policy)
	if e.clock == nil {
		e.clock = SystemClock{}
	}
	if f, ok := cfg.Cloud.(Finder); ok && e.finder == nil {
		e.finder = f
	}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	poll, timeout := cfg.PollInterval, cfg.RebootTimeout
	if poll <= 0 {
		poll = 5 * time.Second
	}
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	e.starts = newStartMarks()
	e.exec = newExecutor(e.store, cfg.Rebooter, e.clock, e.log, poll, timeout, e.followExecution, e.recheck, e.starts)
	return e, nil
}

// Policy returns the policy in force. It must not be changed.
func (e *Engine) Policy() *Policy { return e.policy.Load() }

// SetPolicy puts p in force, if it is valid, for every decision from now
// on: new requests, clicks on open ones, and executions that have not
// called the cloud yet. Pending requests are judged by it in the
// background, so that their cards show it. An invalid p changes nothing.
// p must not be changed afterwards.
func (e *Engine) SetPolicy(p *Policy) error {
	if p == nil {
		return errors.New("approval: no policy")
	}
	if err := p.Validate(); err != nil {
		return fmt.Errorf("approval: policy: %w", err)
	}
	e.policy.Store(p)
	e.spawnJob(e.rejudgePending)
	return nil
}

// Start resumes every request left open (posting missing cards, updating
// stale ones, finishing executions), judges the pending ones by the policy
// in force, and starts the expiry loop.
func (e *Engine) Start(ctx context.Context) error {
	if e.passive {
		return nil
	}
	open, err := e.store.Open(ctx)
	if err != nil {
		return fmt.Errorf("resume open requests: %w", err)
	}
	for _, r := range open {
		e.log.Info("resuming request", "request", r.ID, "state", r.State)
		e.resume(r)
	}
	e.spawnJob(e.rejudgePending) // the policy may have changed while the bot was down
	e.spawnJob(e.expiryLoop)
	return nil
}

// resume schedules whatever r still owes: its card, its execution, its
// card update and its thread messages. Each is guarded, so calling it
// again for the same request starts nothing twice. It returns when r's
// card falls due, when it is left to r's creator for now.
func (e *Engine) resume(r *Request) (cardDue time.Time) {
	if r.Card.TS == "" && !r.Settled() {
		if waiting, end := e.creatorPosting(r); waiting {
			cardDue = end
		} else {
			e.ensureCard(r.ID)
		}
	} else {
		e.sightings.forget(r.ID)
	}
	if r.State == Approved || r.State == Executing {
		e.execute(r.ID)
	}
	if r.Halt != nil {
		// A stop taken by another process sharing the store (a replica
		// that is not the leader) cannot wake this process's execution
		// directly; an execution pausing between waves would sleep out
		// the pause before reading it. The sweep that finds the stop
		// wakes it instead.
		e.exec.Wake(r.ID)
	}
	if r.Card.TS != "" && !r.CardCurrent && !e.shown.shows(r.ID, r.Version) {
		e.refreshCard(r.ID)
	}
	if !r.StartedAt.IsZero() {
		e.kickReports(r.ID)
	}
	return cardDue
}

// creatorPosting reports whether r's card may still be on its way from
// another process's engine, which created r, and if so when this engine
// stops waiting for it: firstCardWait and creatorGrace after this engine
// first saw r without a card.
func (e *Engine) creatorPosting(r *Request) (bool, time.Time) {
	if !e.shared {
		return false, time.Time{}
	}
	now := e.now()
	end := e.sightings.graceEnd(r.ID, now)
	return now.Before(end), end
}

// jobGrace is how long Close lets card updates and reports go on once the
// executions have drained; whatever is left is posted by the next start.
const jobGrace = 5 * time.Second

// Close stops starting executions and waits for the running ones until
// ctx ends, then gives card updates and reports a short grace, then
// cancels everything left; the store keeps what is owed and a later Start
// resumes it.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if !e.closed {
		close(e.closing)
	}
	e.closed = true
	e.mu.Unlock()
	e.stopIdle()
	err := e.exec.Close(ctx)
	e.starts.close() // no execution write will store a mark now
	grace, cancel := context.WithTimeout(ctx, jobGrace)
	defer cancel()
	e.background.Close(grace)
	return err
}

// spawnJob runs a job in the background unless the engine has stopped
// them or is passive. Jobs may start while executions drain, so that a
// request that finishes during shutdown still gets its card updated.
func (e *Engine) spawnJob(fn func(ctx context.Context)) bool {
	if e.passive {
		return false
	}
	return e.background.Go(fn)
}

// execute starts request id's execution unless the engine is passive.
func (e *Engine) execute(id string) {
	if !e.passive {
		e.exec.Start(id)
	}
}

// Wake has the engine look at every open request now rather than at its
// next sweep, and start whatever each owes. Another process sharing the
// store (a passive replica that took an approval) stores work that this
// engine would otherwise only find at the sweep after.
func (e *Engine) Wake() {
	if e.passive || e.isClosed() {
		return
	}
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// stopIdle wakes the expiry loop so that it sees the engine closing.
func (e *Engine) stopIdle() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// observe reports stored events to the observer.
func (e *Engine) observe(events []Event) {
	if e.observer == nil {
		return
	}
	for i := range events {
		e.observer(&events[i])
	}
}

// followExecution lets the card and the thread catch up with what an
// execution stored.
func (e *Engine) followExecution(r *Request, events []Event) {
	e.observe(events)
	if !r.CardCurrent {
		e.refreshCard(r.ID)
	}
	if !r.StartedAt.IsZero() && (len(events) > 0 || !r.StartAnnounced) {
		e.kickReports(r.ID) // a result or the outcome may now be owed to the thread
	}
}

func (e *Engine) now() time.Time { return e.clock.Now().UTC() }

// Create validates a new request, looks its instances up, stores it and
// posts its card. Every refusal is audited as a rejected event and returned
// as an *Error. The same delivery key again returns the first answer;
// concurrent Creates with one key run once and share its answer.
func (e *Engine) Create(ctx context.Context, in CreateInput) (*Request, error) {
	defer e.lull.begin()()
	if in.Key == "" {
		return e.createLogged(ctx, in)
	}
	v, err, _ := e.creating.Do(in.Key, func() (any, error) {
		reply, seen, err := e.store.Reply(ctx, in.Key)
		switch {
		case err != nil:
			return nil, err
		case !seen:
			return e.createLogged(ctx, in)
		case reply.Kind != "":
			return nil, reply.Err()
		}
		return e.store.Get(ctx, reply.RequestID)
	})
	r, _ := v.(*Request)
	return r, err
}

// createLogged is create with its internal errors logged.
func (e *Engine) createLogged(ctx context.Context, in CreateInput) (*Request, error) {
	r, err := e.create(ctx, in)
	if err != nil && ErrorKind(err) == Internal {
		e.log.Error("create request", "requester", in.Requester, "err", err)
	}
	return r, err
}

func (e *Engine) create(ctx context.Context, in CreateInput) (*Request, error) {
	r, err := e.check(ctx, in)
	if err != nil {
		return nil, e.reject(ctx, in, err)
	}
	requested := Event{
		Type: EventRequested, Actor: r.Requester, Instances: r.InstanceIDs(),
		Details: Details{Reason: r.Reason, StopType: r.StopType, Region: r.Region, Channel: r.Channel, Required: r.Required,
			Selector: r.Selector, Fingerprint: r.Fingerprint, Note: unselectedNote(r.Unselected)},
	}
	if r.Plan != nil {
		requested.Details.Plan = planText(r.Plan)
	}
	// The delivery key is stored with the request, in one transaction, so a
	// command redelivered after a crash finds its request.
	e.posting.RLock()
	if err := e.store.Create(ctx, r, in.Key, Reply{Message: "Request created."}, []Event{requested}); err != nil {
		e.posting.RUnlock()
		var held *HeldError
		if errors.As(err, &held) {
			return nil, e.reject(ctx, in, Errorf(Conflict, "%s already has an open request, %s; it can be part of only one at a time.", held.Instance, held.RequestID))
		}
		e.lookAfterUnconfirmed(err)
		return nil, err
	}
	requested.RequestID = r.ID
	e.observe([]Event{requested})
	// Post the card here, holding the post job so that a sweep that sees
	// the new request without a card does not post a second one.
	release, ok := e.holdJob(jobPost, r.ID, e.postMissingCard)
	e.posting.RUnlock()
	e.stopIdle() // the expiry loop may need to wake earlier
	if !ok {
		return r, nil // a sweep got there first and posts it
	}
	defer release()
	return e.postCard(ctx, r)
}

// firstCardWait bounds how long Create waits for Slack to take a new
// request's card before answering that it will follow.
const firstCardWait = 5 * time.Second

// check validates in against the policy and the cloud and returns the
// request to store.
func (e *Engine) check(ctx context.Context, in CreateInput) (*Request, error) {
	p := e.policy.Load()
	if !ValidUserID(in.Requester) {
		return nil, Errorf(Invalid, "The request has no valid Slack user.")
	}
	if in.Channel == "" {
		return nil, Errorf(Invalid, "The request has no channel.")
	}
	if err := p.MayRequest(ctx, e.groups, in.Requester, in.Channel); err != nil {
		return nil, err
	}
	ids, err := normaliseIDs(in.Instances, !in.Selector.Empty())
	if err != nil {
		return nil, err
	}
	if len(ids) > p.MaxInstances {
		return nil, Errorf(Invalid, "A request may name at most %d instances; this one names %d.", p.MaxInstances, len(ids))
	}
	reason := strings.TrimSpace(in.Reason)
	switch {
	case reason == "":
		return nil, Errorf(Invalid, "A reason is required: say why the instances need a reboot.")
	case utf8.RuneCountInString(reason) > MaxReasonLength:
		return nil, Errorf(Invalid, "The reason is too long (at most %d characters).", MaxReasonLength)
	case !utf8.ValidString(reason):
		return nil, Errorf(Invalid, "The reason is not valid text.")
	}
	stop := in.StopType
	if stop == "" {
		stop = Soft
	}
	if !stop.Valid() {
		return nil, Errorf(Invalid, "%q is not a stop type (SOFT, HARD or SOFT_FIRST).", stop)
	}
	region, err := p.RegionFor(in.Region)
	if err != nil {
		return nil, err
	}
	var instances []Instance
	if len(ids) > 0 {
		found, missing, err := e.cloud.Describe(ctx, region, ids)
		if err != nil {
			return nil, cloudUnavailable("look the instances up", err)
		}
		if instances, err = preflight(ids, found, missing, region); err != nil {
			return nil, err
		}
	}
	if err := in.Waves.check(); err != nil {
		return nil, err
	}
	sel, err := e.selectFleet(ctx, p, region, in.Selector, instances)
	if err != nil {
		return nil, err
	}
	instances = sel.instances
	var plan *Plan
	if in.Waves.Rolling() {
		plan = newPlan(instances, in.Waves)
	}
	if err := p.checkPlan(len(instances), plan); err != nil {
		return nil, err
	}
	req, err := p.Require(instances, stop)
	if err != nil {
		return nil, err
	}
	now := e.now()
	return &Request{
		Requester: in.Requester, Channel: in.Channel, Reason: reason, StopType: stop, Region: region,
		Instances: instances, Selector: in.Selector.Words(), Unselected: sel.unselected, Fingerprint: Fingerprint(InstanceIDs(instances)),
		Required: req.Required, ApproverGroups: req.ApproverGroups, Plan: plan,
		SelfApproval: p.AllowSelfApproval, State: Pending,
		CreatedAt: now, ExpiresAt: now.Add(p.RequestTTL),
	}, nil
}

// normaliseIDs checks instance IDs and drops duplicates, keeping order.
// None is an error unless selected says a selector picks instances too.
func normaliseIDs(in []string, selected bool) ([]string, error) {
	if len(in) == 0 && !selected {
		return nil, Errorf(Invalid, "Name at least one instance (ins- followed by 8 lowercase letters or digits), or select some with tag:, name:, ip: or zone:.")
	}
	var bad []string
	seen := map[string]bool{}
	var ids []string
	for _, id := range in {
		if !ValidInstanceID(id) {
			bad = append(bad, fmt.Sprintf("%q", id))
			continue
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(bad) > 0 {
		return nil, Errorf(Invalid, "Not an instance ID: %s (expected ins- followed by 8 lowercase letters or digits).", strings.Join(bad, ", "))
	}
	return ids, nil
}

// preflight orders the described instances like ids and refuses unknown
// and non-RUNNING ones, naming each.
func preflight(ids []string, found []Instance, missing []string, region string) ([]Instance, error) {
	byID := make(map[string]Instance, len(found))
	for _, in := range found {
		byID[in.ID] = in
	}
	var problems []string
	for _, id := range missing {
		problems = append(problems, fmt.Sprintf("%s does not exist in %s", id, region))
	}
	instances := make([]Instance, 0, len(ids))
	for _, id := range ids {
		in, ok := byID[id]
		if !ok {
			if !slices.Contains(missing, id) {
				problems = append(problems, fmt.Sprintf("%s does not exist in %s", id, region))
			}
			continue
		}
		if in.State != InstanceRunning {
			problems = append(problems, fmt.Sprintf("%s is %s", id, in.State))
		}
		instances = append(instances, in)
	}
	if len(problems) > 0 {
		return nil, Errorf(Invalid, "Nothing was requested: %s. Only existing RUNNING instances can be rebooted.", strings.Join(problems, "; "))
	}
	return instances, nil
}

// reject audits a refused request and remembers the answer for its key.
func (e *Engine) reject(ctx context.Context, in CreateInput, cause error) error {
	var ids []string
	for _, id := range in.Instances {
		if len(id) <= 40 && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
		if len(ids) == MaxInstancesPerRequest {
			break
		}
	}
	kind := ErrorKind(cause)
	msg := ErrorMessage(cause)
	actor := in.Requester
	if !ValidUserID(actor) {
		actor = "unknown"
	}
	ev := Event{Type: EventRejected, Actor: actor, Instances: ids,
		Details: Details{Reason: truncate(in.Reason, MaxReasonLength), StopType: in.StopType, Region: in.Region, Channel: in.Channel, Note: msg,
			Selector: in.Selector.Words()}}
	if ce := (*CloudError)(nil); errors.As(cause, &ce) {
		ev.Details.ErrorCode, ev.Details.CloudRequestID = ce.Code, ce.RequestID
	}
	reply, replayed, err := e.store.Record(ctx, in.Key, Reply{Kind: kind, Message: msg}, []Event{ev})
	if err != nil {
		e.log.Error("audit rejected request", "err", err)
		return cause
	}
	if replayed {
		return reply.Err()
	}
	e.observe([]Event{ev})
	return cause
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// cloudUnavailable wraps a cloud failure in a sentence for the user.
func cloudUnavailable(doing string, err error) error {
	var ce *CloudError
	if errors.As(err, &ce) {
		kind := Unavailable
		if !ce.Transient {
			kind = Forbidden
		}
		msg := fmt.Sprintf("Tencent Cloud refused to %s: %s (%s", doing, ce.Explanation, ce.Code)
		if ce.RequestID != "" {
			msg += ", RequestId " + ce.RequestID
		}
		return &Error{Kind: kind, Message: msg + ").", Err: err}
	}
	return &Error{Kind: Unavailable, Message: fmt.Sprintf("Tencent Cloud could not be reached to %s; try again in a moment.", doing), Err: err}
}

// postCard posts the card of r, created just now, and stores where it is.
// The requester hears back once the card is up or firstCardWait has
// passed. A channel the bot cannot post in rejects r; another failure (or
// a card still on its way) leaves the card to the background retry
// (repostCard) and still returns r.
func (e *Engine) postCard(ctx context.Context, r *Request) (*Request, error) {
	callCtx, cancel := context.WithTimeout(ctx, firstCardWait)
	defer cancel()
	card, err := e.notify.PostCard(callCtx, r)
	if err != nil {
		if cardRefused(err) {
			return nil, e.giveUpCard(ctx, r, err)
		}
		e.log.Warn("post card; will retry", "request", r.ID, "err", err)
		e.ensureCard(r.ID)
		return r, nil
	}
	// A fresh card shows r; a change stored since (an approval that came
	// while the card was being posted) is still owed.
	saved, err := e.storeCard(ctx, r, card, func(stored *Request) bool { return stored.Version == r.Version })
	if err != nil {
		// r is stored and its card is in the channel; only where the
		// card is could not be stored. The requester is told so, and the
		// post job stores the card's place later (see postMissingCard).
		e.log.Warn("store where the card is; will retry", "request", r.ID, "err", err)
		if !e.passive {
			e.placed.set(r.ID, card)
			e.ensureCard(r.ID)
		}
		shown := r.Clone()
		shown.Card = card
		return shown, nil
	}
	return saved, nil
}

// repostCard is the background retry of a stored request's card: it
// returns the error of a failed post for the caller to retry. The card is
// updated once more after it is stored, because the notifier may have
// found a card posted before a crash rather than posted r afresh.
func (e *Engine) repostCard(ctx context.Context, r *Request) (*Request, error) {
	card, err := e.notify.PostCard(ctx, r)
	if err != nil {
		if cardRefused(err) {
			return nil, e.giveUpCard(ctx, r, err)
		}
		return nil, err
	}
	return e.storeCard(ctx, r, card, func(*Request) bool { return false })
}

// cardRefused reports whether Slack will never take the card (a channel
// the bot cannot post in, or one that is gone).
func cardRefused(err error) bool {
	kind := ErrorKind(err)
	return kind == Forbidden || kind == Gone
}

// giveUpCard ends what a card that Slack will never take leaves behind: a
// pending request is rejected, a later one gives up on its card.
func (e *Engine) giveUpCard(ctx context.Context, r *Request, cause error) error {
	if r.State == Pending {
		return e.rejectPosted(ctx, r, cause)
	}
	return e.abandonCard(ctx, r, cause)
}

// storeCard stores where r's card is, unless another was stored first;
// shows reports whether the card, as posted, shows the stored request.
func (e *Engine) storeCard(ctx context.Context, r *Request, card Card, shows func(stored *Request) bool) (*Request, error) {
	saved, _, _, err := e.store.Update(ctx, r.ID, "", func(s *Request) (Change, error) {
		if s.Card.TS != "" {
			return Change{}, nil
		}
		s.Card = card
		s.CardCurrent = shows(s)
		return Change{Save: true}, nil
	})
	if err != nil {
		return nil, err
	}
	if !saved.CardCurrent {
		e.refreshCard(saved.ID)
	}
	if !saved.StartedAt.IsZero() {
		e.kickReports(saved.ID) // reports waited for the card's thread
	}
	return saved, nil
}

// abandonCard gives up on the card of a request that is past pending when
// Slack refuses its channel: nothing more can be shown, so nothing is owed.
func (e *Engine) abandonCard(ctx context.Context, r *Request, cause error) error {
	e.log.Warn("card cannot be posted; giving up on it", "request", r.ID, "err", cause)
	_, _, _, err := e.store.Update(ctx, r.ID, "", func(s *Request) (Change, error) {
		if s.Card.TS != "" {
			return Change{}, nil
		}
		s.CardCurrent = true
		return Change{Save: true}, nil
	})
	if err != nil {
		e.log.Error("abandon card", "request", r.ID, "err", err)
	}
	return cause
}

// rejectPosted ends a stored request whose card cannot be posted.
func (e *Engine) rejectPosted(ctx context.Context, r *Request, cause error) error {
	msg := ErrorMessage(cause)
	var events []Event
	_, _, _, err := e.store.Update(ctx, r.ID, "", func(s *Request) (Change, error) {
		if err := s.transition(Rejected); err != nil {
			return Change{}, err
		}
		now := e.now()
		s.DecidedBy, s.DecidedAt, s.Note, s.CardCurrent = ActorBot, now, msg, true
		s.Version++
		events = []Event{{RequestID: s.ID, Type: EventRejected, Actor: ActorBot, Instances: s.InstanceIDs(),
			Details: Details{Channel: s.Channel, Note: msg, Outcome: string(Rejected)}}}
		return Change{Save: true, Events: events}, nil
	})
	if err != nil {
		e.log.Error("reject request", "request", r.ID, "err", err)
	} else {
		e.observe(events)
	}
	return cause
}

// pause waits d of real time (Slack's and the cloud's, not the domain
// clock) and reports whether ctx is still live.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff is the wait before retry attempt n of a cloud call.
func backoff(n int) time.Duration {
	d := 500 * time.Millisecond << min(n, 5)
	return min(d, 15*time.Second)
}

// Approve records user's approval of request id, clicked on the card at
// from. The click is judged by the policy in force: who may approve, how
// many approvals are needed, whether the requester's own counts, and
// whether a deny rule now protects an instance (then the request ends,
// denied by the bot). When the approvals that count reach what is needed,
// the request moves to EXECUTING in the same transaction (so it can start
// only once) and the reboot begins in the background.
func (e *Engine) Approve(ctx context.Context, key, id, user string, from Card) (Result, error) {
	return e.decide(ctx, key, id, user, "approve", &from, func(r *Request, v *verdict, now time.Time) (Change, []Event, string, error) {
		switch {
		case !v.eligible[user]:
			return decline(r, user, Forbidden, fmt.Sprintf("You are not one of the approvers of %s.", r.ID))
		case len(v.denied) > 0:
			return denyByPolicy(r, user, v, now)
		case user == r.Requester && !v.self:
			return decline(r, user, Forbidden, fmt.Sprintf("You asked for %s, so you can't approve it; someone else has to.", r.ID))
		case r.HasApproved(user) && len(r.Counted()) < r.Required:
			return decline(r, user, Conflict, fmt.Sprintf("You have already approved %s.", r.ID))
		}
		// An approver who approved before may click again when a policy
		// change lowered what the request needs: the approvals that count
		// are then enough, and the click starts the reboot.
		again := r.HasApproved(user)
		var events []Event
		if !again {
			r.Approvals = append(r.Approvals, Approval{User: user, At: now})
			events = append(events, Event{RequestID: r.ID, Type: EventApproved, Actor: user, Instances: r.InstanceIDs(),
				Details: Details{Approvals: approvers(r), Required: r.Required, Note: lapsedNote(r)}})
		}
		counted := len(r.Counted())
		msg := fmt.Sprintf("You approved %s (%d of %d approvals).", r.ID, counted, r.Required)
		if counted >= r.Required {
			if err := r.transition(Approved); err != nil {
				return Change{}, nil, "", err
			}
			if err := r.transition(Executing); err != nil {
				return Change{}, nil, "", err
			}
			r.DecidedBy, r.DecidedAt, r.StartedAt = user, now, now
			r.Runs = make([]Run, len(r.Instances))
			for i, in := range r.Instances {
				r.Runs[i] = Run{InstanceID: in.ID}
			}
			events = append(events, Event{RequestID: r.ID, Type: EventExecuting, Actor: ActorBot, Instances: r.InstanceIDs(),
				Details: Details{Approvals: approvers(r), Required: r.Required, StopType: r.StopType, Region: r.Region}})
			msg = fmt.Sprintf("You approved %s; that was the last approval needed, so the reboot starts now.", r.ID)
			if again {
				msg = fmt.Sprintf("The approvals %s needs under the policy in force are in, so the reboot starts now.", r.ID)
			}
		}
		return Change{Save: true}, events, msg, nil
	})
}

// denyByPolicy ends a pending request that a deny rule of the policy in
// force now protects: the bot denies it, saying why, and the approval
// that brought it up is refused.
func denyByPolicy(r *Request, user string, v *verdict, now time.Time) (Change, []Event, string, error) {
	note := deniedByPolicy(v.denied)
	if err := r.transition(Denied); err != nil {
		return Change{}, nil, "", err
	}
	r.DecidedBy, r.DecidedAt, r.Note = ActorBot, now, note
	events := []Event{
		{RequestID: r.ID, Type: EventApprovalRefused, Actor: user, Instances: r.InstanceIDs(), Details: Details{Note: "approve: " + note}},
		{RequestID: r.ID, Type: EventDenied, Actor: ActorBot, Instances: r.InstanceIDs(),
			Details: Details{Approvals: approvers(r), Required: r.Required, Outcome: string(Denied), Note: note}},
	}
	return Change{Save: true}, events, fmt.Sprintf("%s is denied: %s", r.ID, note), nil
}

// Deny ends request id as denied by someone the policy in force lets
// approve it, clicked on the card at from.
func (e *Engine) Deny(ctx context.Context, key, id, user string, from Card) (Result, error) {
	return e.decide(ctx, key, id, user, "deny", &from, func(r *Request, v *verdict, now time.Time) (Change, []Event, string, error) {
		if !v.eligible[user] {
			return decline(r, user, Forbidden, fmt.Sprintf("Only an approver of %s can deny it.", r.ID))
		}
		if err := r.transition(Denied); err != nil {
			return Change{}, nil, "", err
		}
		r.DecidedBy, r.DecidedAt = user, now
		ev := Event{RequestID: r.ID, Type: EventDenied, Actor: user, Instances: r.InstanceIDs(), Details: Details{Outcome: string(Denied)}}
		return Change{Save: true}, []Event{ev}, fmt.Sprintf("You denied %s.", r.ID), nil
	})
}

// Cancel ends request id at its requester's wish.
func (e *Engine) Cancel(ctx context.Context, key, id, user string) (Result, error) {
	return e.decide(ctx, key, id, user, "cancel", nil, func(r *Request, _ *verdict, now time.Time) (Change, []Event, string, error) {
		if user != r.Requester {
			return decline(r, user, Forbidden, fmt.Sprintf("Only the person who asked for %s can cancel it.", r.ID))
		}
		if err := r.transition(Cancelled); err != nil {
			return Change{}, nil, "", err
		}
		r.DecidedBy, r.DecidedAt = user, now
		ev := Event{RequestID: r.ID, Type: EventCancelled, Actor: user, Instances: r.InstanceIDs(), Details: Details{Outcome: string(Cancelled)}}
		return Change{Save: true}, []Event{ev}, fmt.Sprintf("You cancelled %s.", r.ID), nil
	})
}

// decline is the answer to an action that changes nothing: the person is
// told why, and the attempt is audited as approval_refused.
func decline(r *Request, user string, kind Kind, msg string) (Change, []Event, string, error) {
	ev := Event{RequestID: r.ID, Type: EventApprovalRefused, Actor: user, Instances: r.InstanceIDs(), Details: Details{Note: msg}}
	return Change{Reply: Reply{Kind: kind, Message: msg, RequestID: r.ID}}, []Event{ev}, msg, nil
}

// approvers returns the people whose approvals of r count.
func approvers(r *Request) []string {
	var users []string
	for _, a := range r.Counted() {
		users = append(users, a.User)
	}
	return users
}

// lapsedNote names the approvals of r that no longer count, for the audit.
func lapsedNote(r *Request) string {
	var users []string
	for _, a := range r.Approvals {
		if a.Lapsed {
			users = append(users, a.User)
		}
	}
	if len(users) == 0 {
		return ""
	}
	return "no longer counted under the policy in force: " + strings.Join(users, ", ")
}

// decideFunc applies one person's action to a pending request inside the
// store transaction. v is the policy's verdict on the request with the
// verdict applied (nil for a cancellation, which the policy does not
// judge).
type decideFunc func(r *Request, v *verdict, now time.Time) (Change, []Event, string, error)

// decide runs an approval, denial or cancellation: the shared checks
// (unknown request, a click from another request's card, already decided,
// expired), the judgement by the policy in force, the store transaction
// with the delivery key, the audit of refusals, and the follow-up work.
// from is the card a click came from; nil for a command.
func (e *Engine) decide(ctx context.Context, key, id, user, action string, from *Card, fn decideFunc) (Result, error) {
	defer e.lull.begin()()
	if !ValidUserID(user) {
		return Result{}, Errorf(Invalid, "The click came without a valid Slack user.")
	}
	if key != "" {
		if reply, seen, err := e.store.Reply(ctx, key); err != nil {
			return Result{}, err
		} else if seen {
			return replayed(ctx, e.store, reply)
		}
	}
	judged := action != "cancel"
	var v *verdict
	var events []Event
	var executing, saved bool
	decision := func(r *Request) (Change, error) {
		now := e.now()
		events, executing, saved = nil, false, false
		if from != nil && !r.cameFrom(*from) {
			msg := fmt.Sprintf("This is not the current card of %s, so nothing was done; `/reboot status %s` shows %s as it is now.", r.ID, r.ID, r.ID)
			events = []Event{{RequestID: r.ID, Type: EventApprovalRefused, Actor: user, Instances: r.InstanceIDs(),
				Details: Details{Channel: from.Channel, Note: fmt.Sprintf("%s: clicked on message %q, not on the request's card", action, truncate(from.TS, 40))}}}
			return Change{Events: events, Reply: Reply{Kind: Conflict, Message: msg, RequestID: r.ID}}, nil
		}
		if judged && (v == nil || !v.inForce(e)) {
			// The request appeared, or the policy changed, after the
			// click was judged.
			return Change{}, errStaleVerdict
		}
		if r.State == Pending && !now.Before(r.ExpiresAt) {
			// Expired before anyone noticed: record that, refuse the action.
			e.expire(r, now)
			saved = true
			msg := fmt.Sprintf("%s expired at %s; nothing was done.", r.ID, r.ExpiresAt.Format(time.RFC1123))
			events = []Event{expiredEvent(r), {RequestID: r.ID, Type: EventApprovalRefused, Actor: user, Instances: r.InstanceIDs(), Details: Details{Note: msg}}}
			return Change{Save: true, Events: events, Reply: Reply{Kind: Conflict, Message: msg, RequestID: r.ID}}, nil
		}
		if r.State != Pending {
			msg := fmt.Sprintf("%s is already %s; nothing was done.", r.ID, r.State.phrase())
			events = []Event{{RequestID: r.ID, Type: EventApprovalRefused, Actor: user, Instances: r.InstanceIDs(), Details: Details{Note: action + ": " + msg}}}
			return Change{Events: events, Reply: Reply{Kind: Conflict, Message: msg, RequestID: r.ID}}, nil
		}
		if v != nil {
			v.apply(r)
		}
		change, evs, msg, err := fn(r, v, now)
		if err != nil {
			return Change{}, err
		}
		events = evs
		change.Events = evs
		if change.Save {
			r.CardCurrent = false
			r.Version++
			change.Reply = Reply{Message: msg, RequestID: r.ID}
			executing, saved = r.State == Executing, true
		}
		return change, nil
	}
	var (
		r           *Request
		reply       Reply
		wasReplayed bool
		err         error
	)
	for attempt := 1; ; attempt++ {
		if judged {
			if v, err = e.judgeClick(ctx, id, user, action); err != nil {
				if ErrorKind(err) == Unavailable {
					return e.refuseUnchecked(ctx, key, id, user, action, err)
				}
				return Result{}, err
			}
		}
		r, reply, wasReplayed, err = e.store.Update(ctx, id, key, decision)
		if !errors.Is(err, errStaleVerdict) || attempt == maxJudgements {
			break
		}
	}
	if err != nil {
		if ErrorKind(err) == NotFound {
			return e.unknownRequest(ctx, key, id, user, action)
		}
		if errors.Is(err, errStaleVerdict) {
			return Result{}, Errorf(Unavailable, "%s changed while your click was checked; try again in a moment.", id)
		}
		e.lookAfterUnconfirmed(err)
		return Result{}, err
	}
	if wasReplayed {
		return replayed(ctx, e.store, reply)
	}
	e.observe(events)
	if saved {
		e.refreshCard(id)
	}
	if executing {
		e.execute(id)
	}
	if reply.Kind != "" {
		return Result{Request: r}, reply.Err()
	}
	return Result{Request: r, Message: reply.Message}, nil
}

// refuseUnchecked audits and refuses an approval or denial when the
// eligibility of the clicker, or of those who approved before, could not
// be confirmed (their user groups did not answer in time): nothing is
// counted on a guess.
func (e *Engine) refuseUnchecked(ctx context.Context, key, id, user, action string, cause error) (Result, error) {
	e.log.Warn("eligibility not confirmed; action refused", "request", id, "user", user, "action", action, "err", cause)
	msg := ErrorMessage(cause)
	ev := Event{RequestID: id, Type: EventApprovalRefused, Actor: user, Details: Details{Note: action + ": " + msg}}
	reply, seen, err := e.store.Record(ctx, key, Reply{Kind: Unavailable, Message: msg, RequestID: id}, []Event{ev})
	if err != nil {
		return Result{}, err
	}
	if seen {
		return replayed(ctx, e.store, reply)
	}
	e.observe([]Event{ev})
	return Result{}, reply.Err()
}

// judgeClick judges request id by the policy in force for a click by
// user; for an approval, everyone who approved it before is judged again
// too. It returns nil when the request cannot be read: the transaction
// then reports why.
func (e *Engine) judgeClick(ctx context.Context, id, user, action string) (*verdict, error) {
	p := e.policy.Load()
	r, err := e.store.Get(ctx, id)
	if err != nil {
		return nil, nil
	}
	var earlier []string
	if action == "approve" {
		earlier = approverIDs(r)
	}
	return judge(ctx, p, e.groups, r, user, earlier)
}

// unknownRequest audits an action on a request that does not exist.
func (e *Engine) unknownRequest(ctx context.Context, key, id, user, action string) (Result, error) {
	shown := id
	if _, ok := ParseRequestID(id); !ok {
		shown = "that request"
	}
	msg := fmt.Sprintf("There is no request %s; nothing was done.", shown)
	ev := Event{Type: EventApprovalRefused, Actor: user, Details: Details{Note: action + ": " + msg}}
	if shown != "that request" {
		ev.RequestID = id
	}
	reply, _, err := e.store.Record(ctx, key, Reply{Kind: NotFound, Message: msg}, []Event{ev})
	if err != nil {
		return Result{}, err
	}
	return Result{}, reply.Err()
}

// replayed answers a delivery seen before as it was answered then.
func replayed(ctx context.Context, s Store, reply Reply) (Result, error) {
	if reply.Kind != "" {
		return Result{Replayed: true}, reply.Err()
	}
	r, err := s.Get(ctx, reply.RequestID)
	if err != nil {
		r = nil
	}
	return Result{Request: r, Message: reply.Message, Replayed: true}, nil
}

// expire marks a pending request expired (inside a transaction).
func (e *Engine) expire(r *Request, now time.Time) {
	r.State = Expired
	r.DecidedBy, r.DecidedAt = ActorBot, now
	r.CardCurrent = false
	r.Version++
}

func expiredEvent(r *Request) Event {
	return Event{RequestID: r.ID, Type: EventExpired, Actor: ActorBot, Instances: r.InstanceIDs(),
		Details: Details{Approvals: approvers(r), Required: r.Required, Outcome: string(Expired)}}
}

// Get returns request id.
func (e *Engine) Get(ctx context.Context, id string) (*Request, error) {
	if _, ok := ParseRequestID(id); !ok {
		return nil, Errorf(Invalid, "%q is not a request ID (R- and a number).", truncate(id, 40))
	}
	return e.store.Get(ctx, strings.ToUpper(id))
}

// Pending returns the requests waiting for approval, oldest first.
func (e *Engine) Pending(ctx context.Context) ([]*Request, error) {
	open, err := e.store.Open(ctx)
	if err != nil {
		return nil, err
	}
	var pending []*Request
	for _, r := range open {
		if r.State == Pending {
			pending = append(pending, r)
		}
	}
	return pending, nil
}

// Audit returns the events matching q, newest first.
func (e *Engine) Audit(ctx context.Context, q AuditQuery) ([]Event, error) {
	var events []Event
	err := e.store.Audit(ctx, q, func(ev *Event) error {
		events = append(events, *ev)
		return nil
	})
	return events, err
}

// MayRequest reports whether user may file requests in channel.
func (e *Engine) MayRequest(ctx context.Context, user, channel string) error {
	return e.policy.Load().MayRequest(ctx, e.groups, user, channel)
}

// MayView reports whether user may look at requests and the audit log:
// everyone who may request or approve. The lists are checked as one, so
// that all their user groups are looked up at once, under one deadline.
func (e *Engine) MayView(ctx context.Context, user, channel string) error {
	p := e.policy.Load()
	requestHere := len(p.Channels) == 0 || slices.Contains(p.Channels, channel)
	if requestHere && len(p.Requesters) == 0 {
		return nil
	}
	var anyOf []string
	if requestHere {
		anyOf = append(anyOf, p.Requesters...)
	}
	anyOf = append(anyOf, p.Approvers...)
	for _, r := range p.Rules {
		anyOf = append(anyOf, r.Approvers...)
	}
	ok, err := member(ctx, e.groups, anyOf, user)
	if err != nil {
		return err
	}
	if !ok {
		return Errorf(Forbidden, "Only people who may request or approve reboots can look at requests and the audit log.")
	}
	return nil
}
