package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"rebootbot/approval"
	"rebootbot/etcdstore"
)

// campaignRetry is the wait before campaigning again after etcd could not
// be reached.
const campaignRetry = time.Second

// replica does the background work of one of several bots sharing an etcd
// store, while it leads. Every replica answers Slack through its own
// passive engine; the one elected leader also runs a full engine whose
// writes are fenced by its leadership. That engine starts as a restarted
// bot does (resuming every open request) and is woken whenever a request
// changes, so that an approval taken by another replica is executed at
// once. When the lead is lost the engine is stopped at once: what it was
// doing is in the store, and the next leader resumes it.
type replica struct {
	store     *etcdstore.Store
	leader    *etcdstore.Leader
	newEngine func(approval.Store, *approval.Policy) (*approval.Engine, error)
	poll      time.Duration // how often the leader sweeps even without news
	log       *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	policy *approval.Policy // the policy each new leading engine starts with
	engine *approval.Engine // while leading
}

// startReplica campaigns in the background until Close.
func startReplica(store *etcdstore.Store, leader *etcdstore.Leader, policy *approval.Policy, poll time.Duration, log *slog.Logger,
	newEngine func(approval.Store, *approval.Policy) (*approval.Engine, error)) *replica {
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{store: store, leader: leader, newEngine: newEngine, poll: poll, log: log, policy: policy,
		cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	return r
}

// run campaigns, leads until the lead is lost, and campaigns again, until
// ctx ends.
func (r *replica) run(ctx context.Context) {
	defer close(r.done)
	for ctx.Err() == nil {
		lost, err := r.leader.Campaign(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("campaign for the lead failed; trying again", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(campaignRetry):
			}
			continue
		}
		r.lead(ctx, lost)
		if ctx.Err() != nil {
			return
		}
		// A lead that ended on its own (its lease expired) leaves the
		// Leader holding a key that is gone; resigning clears it.
		rctx, cancel := context.WithTimeout(ctx, campaignRetry)
		r.leader.Resign(rctx)
		cancel()
	}
}

// lead runs the leading engine until the lead is lost or ctx ends; Close
// drains the engine in the second case.
func (r *replica) lead(ctx context.Context, lost <-chan struct{}) {
	took := time.Now()
	r.mu.Lock()
	policy := r.policy
	r.mu.Unlock()
	engine, err := r.newEngine(boundedStore{r.store.Fenced(r.leader), storeWorkTimeout, storeWorkTimeout}, policy)
	if err != nil {
		r.log.Error("leading engine", "err", err)
		return
	}
	if err := engine.Start(ctx); err != nil {
		r.log.Error("leading: resuming open requests failed; giving up the lead", "err", err)
		stopNow(engine)
		return
	}
	r.mu.Lock()
	r.engine = engine
	r.mu.Unlock()
	r.log.Info("leading: this replica now does the executions, expiry and card updates", "resumed_in", time.Since(took))

	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	changes := r.watch(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-lost:
			r.log.Warn("lost the lead: background work stopped; the next leader resumes it", "led_for", time.Since(took))
			r.mu.Lock()
			r.engine = nil
			r.mu.Unlock()
			stopNow(engine)
			return
		case _, ok := <-changes:
			if !ok {
				// Watches end when the member loses its leader;
				// the ticker sweeps until a new one is set up.
				changes = nil
				continue
			}
			engine.Wake()
		case <-tick.C:
			if changes == nil {
				changes = r.watch(ctx)
			}
			engine.Wake()
		}
	}
}

// watch reports changes to the stored requests.
func (r *replica) watch(ctx context.Context) clientv3.WatchChan {
	return r.store.Client().Watch(clientv3.WithRequireLeader(ctx), r.store.Prefix()+"requests/", clientv3.WithPrefix())
}

// stopNow stops an engine without letting anything finish.
func stopNow(e *approval.Engine) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.Close(ctx)
}

// SetPolicy puts p in force on the leading engine, if any, and on every
// later one.
func (r *replica) SetPolicy(p *approval.Policy) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.engine != nil {
		if err := r.engine.SetPolicy(p); err != nil {
			return err
		}
	}
	r.policy = p
	return nil
}

// Leading reports whether this replica runs the background work.
func (r *replica) Leading() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.engine != nil
}

// campaignStopWait bounds how long Close waits for a campaign to end: one
// cut short cleans up with a call that waits for quorum, and ends only
// when the connection to etcd is closed after Close.
const campaignStopWait = 2 * time.Second

// Close stops campaigning, lets the leading engine's work finish until
// ctx ends, and resigns so that another replica takes over at once.
func (r *replica) Close(ctx context.Context) error {
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(campaignStopWait):
		r.log.Warn("a campaign for the lead is still ending; it ends when the connection to etcd closes")
	}
	r.mu.Lock()
	engine := r.engine
	r.engine = nil
	r.mu.Unlock()
	var errs []error
	if engine != nil {
		errs = append(errs, engine.Close(ctx))
	}
	errs = append(errs, r.leader.Close())
	return errors.Join(errs...)
}
