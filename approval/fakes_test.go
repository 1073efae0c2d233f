package approval_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
	"rebootbot/store"
)

// fakeCloud is an in-memory CVM that records every reboot call. Reboots
// finish at once unless an instance is set to fail.
type fakeCloud struct {
	mu        sync.Mutex
	instances map[string]*approval.Instance
	calls     map[string]int // reboot calls per instance
	callCount int
	failOp    map[string]bool // the reboot operation ends FAILED
	seq       int
	// interrupt makes the next Reboot call hang until its context ends,
	// as a crash would leave it: "before" the call reaches the cloud, or
	// "after" the cloud has acted. reached is closed when it hangs.
	interrupt string
	reached   chan struct{}
	// hold, when set, makes Wait block until it is closed or its context
	// ends, so that a wave stays running; waiting is told of each Wait.
	hold    chan struct{}
	waiting chan struct{}
	// gate, when set, makes Reboot wait until it is closed.
	gate chan struct{}
}

func newFakeCloud(instances ...approval.Instance) *fakeCloud {
	c := &fakeCloud{instances: map[string]*approval.Instance{}, calls: map[string]int{}, failOp: map[string]bool{}}
	for _, in := range instances {
		in := in
		if in.State == "" {
			in.State = approval.InstanceRunning
		}
		c.instances[in.ID] = &in
	}
	return c
}

func (c *fakeCloud) Describe(ctx context.Context, region string, ids []string) ([]approval.Instance, []string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var found []approval.Instance
	var missing []string
	for _, id := range ids {
		if in, ok := c.instances[id]; ok {
			found = append(found, *in)
		} else {
			missing = append(missing, id)
		}
	}
	return found, missing, nil
}

func (c *fakeCloud) Look(ctx context.Context, region string, ids []string) (map[string]approval.Instance, error) {
	found, _, err := c.Describe(ctx, region, ids)
	seen := make(map[string]approval.Instance, len(found))
	for _, in := range found {
		seen[in.ID] = in
	}
	return seen, err
}

func (c *fakeCloud) Reboot(ctx context.Context, region string, stop approval.StopType, targets []approval.RebootTarget) []approval.RebootResult {
	c.mu.Lock()
	interrupt, gate := c.interrupt, c.gate
	c.interrupt = ""
	c.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil
		}
	}
	if interrupt == "before" {
		close(c.reached)
		<-ctx.Done()
		return nil
	}
	ids := make([]string, len(targets))
	for i, t := range targets {
		ids[i] = t.InstanceID
	}
	results := c.reboot(ids)
	if interrupt == "after" {
		close(c.reached)
		<-ctx.Done()
		return nil
	}
	return results
}

func (c *fakeCloud) reboot(ids []string) []approval.RebootResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.callCount++
	reqID := fmt.Sprintf("req-%d", c.seq)
	results := make([]approval.RebootResult, len(ids))
	for i, id := range ids {
		results[i] = approval.RebootResult{InstanceID: id, RequestID: reqID}
		in, ok := c.instances[id]
		switch {
		case !ok:
			results[i].Err = &approval.CloudError{Code: "InvalidInstanceId.NotFound", RequestID: reqID, Explanation: "no such instance"}
		case in.State != approval.InstanceRunning:
			results[i].Err = &approval.CloudError{Code: "UnsupportedOperation.InstanceState" + in.State, RequestID: reqID, Explanation: "not running"}
		default:
			c.calls[id]++
			in.LatestOperation, in.LatestOperationRequestID = approval.OpReboot, reqID
			in.LatestOperationState = approval.OpSuccess
			if c.failOp[id] {
				in.LatestOperationState = approval.OpFailed
				in.LatestOperationError = "the guest did not stop"
			}
		}
	}
	return results
}

func (c *fakeCloud) Wait(ctx context.Context, region string, targets []approval.WaitTarget, opts approval.WaitOptions, report func([]approval.WaitResult)) error {
	c.mu.Lock()
	hold, waiting := c.hold, c.waiting
	c.mu.Unlock()
	if hold != nil {
		if waiting != nil {
			waiting <- struct{}{}
		}
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var results []approval.WaitResult
	for _, t := range targets {
		c.mu.Lock()
		in := *c.instances[t.InstanceID]
		c.mu.Unlock()
		res := approval.WaitResult{InstanceID: t.InstanceID, State: in.State, Duration: time.Second}
		matches := in.LatestOperation == approval.OpReboot &&
			(t.RequestID == in.LatestOperationRequestID || t.RequestID == "" && in.LatestOperationRequestID != t.NotRequestID)
		switch {
		case matches && in.LatestOperationState == approval.OpSuccess:
			res.OK = true
		case matches:
			res.Err = &approval.CloudError{Code: "OperationFailed", Message: in.LatestOperationError, Explanation: "the reboot failed: " + in.LatestOperationError}
		default:
			res.Err = &approval.CloudError{Code: "Timeout", Explanation: "it did not come back in time"}
		}
		results = append(results, res)
	}
	// Everything finishes at once, as in one poll round.
	report(results)
	return ctx.Err()
}

// rebootCalls returns how many reboot calls included id.
func (c *fakeCloud) rebootCalls(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

func (c *fakeCloud) set(id string, fn func(in *approval.Instance)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c.instances[id])
}

// fakeSlack records what would reach Slack.
type fakeSlack struct {
	mu      sync.Mutex
	cards   map[string]*approval.Request // by request ID, as last shown
	reports map[string][]approval.Report
	posted  int
	// refuse, when set, makes PostCard fail with it.
	refuse error
	// updateErr, when set, makes UpdateCard and Report fail with it.
	updateErr   error
	updates     int // UpdateCard calls
	reportTries int // Report calls
}

func newFakeSlack() *fakeSlack {
	return &fakeSlack{cards: map[string]*approval.Request{}, reports: map[string][]approval.Report{}}
}

func (s *fakeSlack) PostCard(ctx context.Context, r *approval.Request) (approval.Card, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse != nil {
		return approval.Card{}, s.refuse
	}
	s.posted++
	s.cards[r.ID] = r.Clone()
	return approval.Card{Channel: r.Channel, TS: fmt.Sprintf("1700000000.%06d", s.posted)}, nil
}

func (s *fakeSlack) UpdateCard(ctx context.Context, r *approval.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updates++
	if s.updateErr != nil {
		return s.updateErr
	}
	s.cards[r.ID] = r.Clone()
	return nil
}

func (s *fakeSlack) Report(ctx context.Context, r *approval.Request, rep approval.Report) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reportTries++
	if s.updateErr != nil {
		return s.updateErr
	}
	s.reports[r.ID] = append(s.reports[r.ID], rep)
	return nil
}

// setUpdateErr makes card updates and reports fail with err (nil: succeed).
func (s *fakeSlack) setUpdateErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.updateErr = err
}

// updateCalls returns how many card updates were asked for.
func (s *fakeSlack) updateCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates
}

// reportCalls returns how many thread reports were asked for.
func (s *fakeSlack) reportCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reportTries
}

// posts returns how many cards were posted.
func (s *fakeSlack) posts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posted
}

// setRefuse makes PostCard fail with err (nil: succeed).
func (s *fakeSlack) setRefuse(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = err
}

// card returns the request as its card last showed it.
func (s *fakeSlack) card(id string) *approval.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cards[id]
}

func (s *fakeSlack) reportsOf(id string) []approval.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reports[id])
}

// wantThreadOnce checks that request id's thread got its start, one
// instance report and its summary, each once.
func wantThreadOnce(t *testing.T, s *fakeSlack, id string) {
	t.Helper()
	kinds := map[approval.ReportKind]int{}
	for _, rep := range s.reportsOf(id) {
		kinds[rep.Kind]++
	}
	for _, k := range []approval.ReportKind{approval.ReportStarted, approval.ReportInstance, approval.ReportFinished} {
		if kinds[k] != 1 {
			t.Errorf("%s: %s posted %d times, want once", id, k, kinds[k])
		}
	}
}

// wantReportedOnce checks that each of instances got exactly one report
// in request id's thread.
func wantReportedOnce(t *testing.T, s *fakeSlack, id string, instances []string) {
	t.Helper()
	seen := map[string]int{}
	for _, rep := range s.reportsOf(id) {
		if rep.Kind == approval.ReportInstance {
			seen[rep.Run.InstanceID]++
		}
	}
	for _, in := range instances {
		if seen[in] != 1 {
			t.Errorf("%s: %s reported %d times, want once", id, in, seen[in])
		}
	}
}

// fakeGroups resolves user groups from a map.
type fakeGroups map[string][]string

func (g fakeGroups) Members(ctx context.Context, group string) ([]string, error) {
	return g[group], nil
}

// world is an engine with its parts, for tests.
type world struct {
	engine *approval.Engine
	store  *store.DB
	cloud  *fakeCloud
	slack  *fakeSlack
	clock  *testutil.FakeClock
	policy *approval.Policy
}

var epoch = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

func testPolicy() *approval.Policy {
	return &approval.Policy{
		Approvers: []string{"UALICE", "UBOB", "UCAROL", "SSRE"}, MinApprovals: 1, HardMinApprovals: 2,
		RequestTTL: 30 * time.Minute, MaxInstances: 100, DefaultRegion: "ap-guangzhou",
		Regions: []string{"ap-guangzhou", "ap-shanghai"},
	}
}

func testInstances() []approval.Instance {
	return []approval.Instance{
		{ID: "ins-aaaaaaaa", Name: "web-1", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.0.1"}, Tags: map[string]string{"env": "staging"}},
		{ID: "ins-bbbbbbbb", Name: "web-2", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.0.2"}, Tags: map[string]string{"env": "prod"}},
		{ID: "ins-cccccccc", Name: "db-1", Zone: "ap-guangzhou-4", PrivateIPs: []string{"10.0.0.3"}, Tags: map[string]string{"reboot": "deny"}},
		{ID: "ins-dddddddd", Name: "batch-1", Zone: "ap-guangzhou-4", PrivateIPs: []string{"10.0.0.4"}, State: "STOPPED"},
	}
}

// mustWorld returns a started engine on a real bbolt file. The same store
// file can be reopened by a second world to test restarts.
func mustWorld(t *testing.T, p *approval.Policy, cloud *fakeCloud, dbPath string) *world {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "bot.db")
	}
	clock := testutil.NewFakeClock(epoch)
	db, err := store.Open(dbPath, store.Options{NoSync: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{store: db, cloud: cloud, slack: newFakeSlack(), clock: clock, policy: p}
	w.engine, err = approval.NewEngine(approval.Config{
		Store: db, Cloud: cloud, Rebooter: cloud, Notifier: w.slack, Policy: p, Clock: clock,
		Groups: fakeGroups{"SSRE": {"UDAVE", "UERIN"}}, PollInterval: time.Millisecond, RebootTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.stop(t) })
	return w
}

// stop closes the engine and the store; calling it twice is harmless.
func (w *world) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.engine.Close(ctx); err != nil {
		t.Errorf("close engine: %v", err)
	}
	w.store.Close()
}

// mustCreate files a request and fails the test if it is refused.
func (w *world) mustCreate(t *testing.T, in approval.CreateInput) *approval.Request {
	t.Helper()
	if in.Requester == "" {
		in.Requester = "UREQ"
	}
	if in.Channel == "" {
		in.Channel = "COPS"
	}
	if in.Reason == "" {
		in.Reason = "kernel patch"
	}
	r, err := w.engine.Create(context.Background(), in)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return r
}

// waitState waits until request id reaches state s, settled when s is
// terminal.
func (w *world) waitState(t *testing.T, id string, s approval.State) *approval.Request {
	t.Helper()
	var r *approval.Request
	if !testutil.Poll(10*time.Second, func() bool {
		r = w.mustGet(t, id)
		return r.State == s && r.Settled() == s.Terminal()
	}) {
		t.Fatalf("%s is %s (settled %v), want %s", id, r.State, r.Settled(), s)
	}
	return r
}

// mustGet reads request id from the store.
func (w *world) mustGet(t *testing.T, id string) *approval.Request {
	t.Helper()
	r, err := w.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// events returns the audit events of request id, oldest first.
func (w *world) events(t *testing.T, q approval.AuditQuery) []approval.EventType {
	t.Helper()
	q.Oldest = true
	var types []approval.EventType
	err := w.store.Audit(context.Background(), q, func(e *approval.Event) error {
		types = append(types, e.Type)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return types
}

// cardOf returns where request id's card is, as a click on it would say;
// nothing for a request that does not exist.
func (w *world) cardOf(id string) approval.Card {
	r, err := w.store.Get(context.Background(), id)
	if err != nil {
		return approval.Card{}
	}
	return r.Card
}

// mustCard waits until request id's card is stored and returns it: a
// request's card may be posted by the expiry loop's sweep rather than by
// Create.
func (w *world) mustCard(t *testing.T, id string) approval.Card {
	t.Helper()
	var c approval.Card
	testutil.Eventually(t, 10*time.Second, func() bool { c = w.cardOf(id); return c.TS != "" }, "%s's card to be stored", id)
	return c
}

// openDB opens a bbolt file in t's temporary directory, without fsync,
// closed when the test ends; clock, when set, stamps its events.
func openDB(t *testing.T, clock *testutil.FakeClock) *store.DB {
	t.Helper()
	opts := store.Options{NoSync: true}
	if clock != nil {
		opts.Now = clock.Now
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// startEngine starts an engine on cfg, with the test policy, polls every
// millisecond and a minute's reboot timeout unless cfg sets them. It is
// closed when the test ends, cancelling whatever still runs.
func startEngine(t *testing.T, cfg approval.Config) *approval.Engine {
	t.Helper()
	if cfg.Policy == nil {
		cfg.Policy = testPolicy()
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = time.Millisecond
	}
	if cfg.RebootTimeout == 0 {
		cfg.RebootTimeout = time.Minute
	}
	e, err := approval.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		e.Close(ctx)
	})
	return e
}

// createApproved files a request of one instance as UREQ and approves it
// as UALICE from its card, with delivery keys cmd and click.
func createApproved(t *testing.T, e *approval.Engine, db approval.Store, instance string) *approval.Request {
	t.Helper()
	ctx := context.Background()
	r, err := e.Create(ctx, approval.CreateInput{Key: "cmd", Requester: "UREQ", Channel: "COPS", Reason: "kernel", Instances: []string{instance}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Approve(ctx, "click", r.ID, "UALICE", storedCard(t, db, r.ID)); err != nil {
		t.Fatal(err)
	}
	return r
}
