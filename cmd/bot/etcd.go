package main

import (
	"context"
	"sync"
	"time"

	"rebootbot/approval"
)

// storeCallTimeout bounds each call to the etcd store that a delivery's
// answer waits for. Without quorum etcd holds a request until its
// deadline. A click's calls together also share one deadline (see
// bot.ClickBudget), so that its answer comes within Slack's 3 s however
// many calls it makes; a command's answer follows through response_url
// when it is late. A healthy cluster answers in milliseconds.
const storeCallTimeout = 2 * time.Second

// storeWorkTimeout bounds each store call of the leader's background work.
// Nobody waits on it, so it only has to end a call to a cluster that lost
// quorum; under a burst of executions every write contends for the audit
// log's head, and a tighter bound would give up on writes that would
// succeed.
const storeWorkTimeout = 30 * time.Second

// storeCreateTimeout bounds a Create. A command is acknowledged at once
// and answered later, so a Create may wait longer: new requests all
// contend for the request counter, and a burst of them on a busy cluster
// takes a few rounds of retries.
const storeCreateTimeout = 10 * time.Second

// boundedStore is an approval.Store whose calls that a delivery or a step
// of an execution waits for each end after a deadline (createLimit for
// Create, limit for the others). Audit lookups and
// Verify read as long as their caller allows.
type boundedStore struct {
	approval.Store
	limit, createLimit time.Duration
}

var _ approval.Store = boundedStore{}

func (s boundedStore) Create(ctx context.Context, r *approval.Request, key string, reply approval.Reply, events []approval.Event) error {
	ctx, cancel := context.WithTimeout(ctx, s.createLimit)
	defer cancel()
	return s.Store.Create(ctx, r, key, reply, events)
}

func (s boundedStore) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.limit)
	defer cancel()
	return s.Store.Update(ctx, id, key, fn)
}

func (s boundedStore) Record(ctx context.Context, key string, reply approval.Reply, events []approval.Event) (approval.Reply, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.limit)
	defer cancel()
	return s.Store.Record(ctx, key, reply, events)
}

func (s boundedStore) Reply(ctx context.Context, key string) (approval.Reply, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.limit)
	defer cancel()
	return s.Store.Reply(ctx, key)
}

func (s boundedStore) Get(ctx context.Context, id string) (*approval.Request, error) {
	ctx, cancel := context.WithTimeout(ctx, s.limit)
	defer cancel()
	return s.Store.Get(ctx, id)
}

func (s boundedStore) Open(ctx context.Context) ([]*approval.Request, error) {
	ctx, cancel := context.WithTimeout(ctx, s.limit)
	defer cancel()
	return s.Store.Open(ctx)
}

// healthCheck runs a store check for /healthz at most once per interval:
// load balancers probe every replica often, and each probe of an etcd
// store is a read with quorum. Callers within the interval share the
// last answer; a check takes at most timeout.
type healthCheck struct {
	check    func(context.Context) error
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time

	mu   sync.Mutex // held during a check, so probes never pile up
	at   time.Time
	last error
}

func newHealthCheck(check func(context.Context) error, interval, timeout time.Duration) *healthCheck {
	return &healthCheck{check: check, interval: interval, timeout: timeout, now: time.Now}
}

// Check returns the store's health as last checked, checking again when
// that was more than the interval ago.
func (h *healthCheck) Check(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.at.IsZero() && h.now().Sub(h.at) < h.interval {
		return h.last
	}
	// A prober that hangs up must not leave its cancellation as the
	// answer for the others.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.timeout)
	defer cancel()
	h.last = h.check(ctx)
	h.at = h.now()
	return h.last
}
