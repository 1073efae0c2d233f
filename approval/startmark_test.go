package approval_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
	"rebootbot/store"
)

// startMarkStore records whether the write that stored a request's start
// mark carried events, that is, whether it was one of the execution's.
type startMarkStore struct {
	approval.Store
	mu         sync.Mutex
	markEvents []int  // events of each write that set StartAnnounced
	markEnds   []bool // whether that write also set EndAnnounced
}

func (s *startMarkStore) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	var marked, ended bool
	var events int
	r, reply, replayed, err := s.Store.Update(ctx, id, key, func(r *approval.Request) (approval.Change, error) {
		before, endBefore := r.StartAnnounced, r.EndAnnounced
		c, err := fn(r)
		marked, events = !before && r.StartAnnounced && c.Save, len(c.Events)
		ended = !endBefore && r.EndAnnounced
		return c, err
	})
	if err == nil && marked {
		s.mu.Lock()
		s.markEvents = append(s.markEvents, events)
		s.markEnds = append(s.markEnds, ended)
		s.mu.Unlock()
	}
	return r, reply, replayed, err
}

// settled reports whether request id is settled with the write that
// stored its start mark seen: that write may be the one that settles it,
// and the store shows it before Update has returned.
func (s *startMarkStore) settled(t *testing.T, db *store.DB, id string) bool {
	r := mustStored(t, db, id)
	return r.Settled() && (!r.StartAnnounced || len(s.marks()) > 0)
}

func (s *startMarkStore) marks() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.markEvents...)
}

// gatedStartSlack holds the post of a start until gate is closed, and
// tells started once it is posted.
type gatedStartSlack struct {
	*fakeSlack
	gate    chan struct{}
	started chan struct{}
}

func (s *gatedStartSlack) Report(ctx context.Context, r *approval.Request, rep approval.Report) error {
	if rep.Kind == approval.ReportStarted && s.gate != nil {
		<-s.gate
	}
	err := s.fakeSlack.Report(ctx, r, rep)
	if rep.Kind == approval.ReportStarted && s.started != nil {
		close(s.started)
	}
	return err
}

func startMarkWorld(t *testing.T, cloud *fakeCloud, slack approval.Notifier, clock *testutil.FakeClock) (*approval.Engine, *startMarkStore, *store.DB) {
	t.Helper()
	db := openDB(t, clock)
	s := &startMarkStore{Store: db}
	e := startEngine(t, approval.Config{Store: s, Cloud: cloud, Rebooter: cloud, Notifier: slack, Clock: clock, Groups: fakeGroups{}})
	return e, s, db
}

// TestStartMarkRidesTheExecutionsWrite holds the reboot call until the
// start is posted: the execution's next write, the call's, stores the
// mark, and no write of its own is made for it.
func TestStartMarkRidesTheExecutionsWrite(t *testing.T) {
	cloud := newFakeCloud(testInstances()...)
	cloud.gate = make(chan struct{})
	slack := &gatedStartSlack{fakeSlack: newFakeSlack(), started: make(chan struct{})}
	e, s, db := startMarkWorld(t, cloud, slack, testutil.NewFakeClock(epoch))
	r := createApproved(t, e, db, "ins-aaaaaaaa")
	<-slack.started
	close(cloud.gate)
	testutil.Eventually(t, 10*time.Second, func() bool { return s.settled(t, db, r.ID) }, "%s to settle", r.ID)
	marks := s.marks()
	if len(marks) != 1 || marks[0] == 0 {
		t.Errorf("writes storing the start mark carried %v events; want one write, the execution's, with events", marks)
	}
	if n := len(slack.reportsOf(r.ID)); n != 3 {
		t.Errorf("%d thread messages, want 3 (start, result, summary)", n)
	}
}

// TestStartMarkStoredWhenNoWriteFollows holds the start's post until the
// reboot call is under way and then keeps that call from answering: no
// execution write follows the post, and the reports job stores the mark
// itself once startMarkWait has passed.
func TestStartMarkStoredWhenNoWriteFollows(t *testing.T) {
	cloud := newFakeCloud(testInstances()...)
	cloud.interrupt, cloud.reached = "before", make(chan struct{})
	clock := testutil.NewFakeClock(epoch)
	slack := &gatedStartSlack{fakeSlack: newFakeSlack(), gate: make(chan struct{}), started: make(chan struct{})}
	e, s, db := startMarkWorld(t, cloud, slack, clock)
	r := createApproved(t, e, db, "ins-aaaaaaaa")
	<-cloud.reached // the intent is stored; the call hangs
	close(slack.gate)
	<-slack.started
	testutil.Eventually(t, 10*time.Second, func() bool {
		clock.Advance(time.Second)
		return mustStored(t, db, r.ID).StartAnnounced
	}, "the start mark of %s to be stored", r.ID)
	if marks := s.marks(); len(marks) != 1 || marks[0] != 0 {
		t.Errorf("writes storing the start mark carried %v events; want one write of the mark alone", marks)
	}
}

// TestStartMarkStoredWhenTheExecutionEnds posts the start of a request
// whose only instance is stopped only after its execution has ended, with
// no write left to carry the mark: the reports job stores it at once, and
// the request settles without waiting out startMarkWait (the test's clock
// never moves).
func TestStartMarkStoredWhenTheExecutionEnds(t *testing.T) {
	cloud := newFakeCloud(testInstances()...)
	clock := testutil.NewFakeClock(epoch)
	slack := &gatedStartSlack{fakeSlack: newFakeSlack(), gate: make(chan struct{}), started: make(chan struct{})}
	e, s, db := startMarkWorld(t, cloud, slack, clock)
	ctx := context.Background()
	r, err := e.Create(ctx, approval.CreateInput{Requester: "UREQ", Channel: "COPS", Reason: "kernel", Instances: []string{"ins-aaaaaaaa"}})
	if err != nil {
		t.Fatal(err)
	}
	cloud.set("ins-aaaaaaaa", func(in *approval.Instance) { in.State = "STOPPED" })
	if _, err := e.Approve(ctx, "click", r.ID, "UALICE", storedCard(t, db, r.ID)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return mustStored(t, db, r.ID).State == approval.Failed }, "%s to fail", r.ID)
	close(slack.gate)
	testutil.Eventually(t, 10*time.Second, func() bool { return s.settled(t, db, r.ID) }, "%s to settle", r.ID)
	if marks := s.marks(); len(marks) != 1 || marks[0] != 0 {
		t.Errorf("writes storing the start mark carried %v events; want one write of the mark alone", marks)
	}
}

// TestStartMarkRidesTheSummaryWhenTheExecutionEndedFirst has Slack refuse
// every thread message until the request has succeeded and the engine is
// stopped: the restarted engine's reports job finds the request ended,
// posts the start, the result and the summary, and stores all three
// marks in one write.
func TestStartMarkRidesTheSummaryWhenTheExecutionEndedFirst(t *testing.T) {
	cloud := newFakeCloud(testInstances()...)
	clock := testutil.NewFakeClock(epoch)
	down := newFakeSlack()
	e, s, db := startMarkWorld(t, cloud, down, clock)
	ctx := context.Background()
	r, err := e.Create(ctx, approval.CreateInput{Requester: "UREQ", Channel: "COPS", Reason: "kernel", Instances: []string{"ins-aaaaaaaa"}})
	if err != nil {
		t.Fatal(err)
	}
	card := storedCard(t, db, r.ID)
	down.setUpdateErr(errors.New("slack is down"))
	if _, err := e.Approve(ctx, "click", r.ID, "UALICE", card); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return mustStored(t, db, r.ID).State == approval.Succeeded }, "%s to succeed", r.ID)
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustStored(t, db, r.ID); got.StartAnnounced || got.Settled() {
		t.Fatalf("%s: start marked %v, settled %v with Slack down", r.ID, got.StartAnnounced, got.Settled())
	}
	slack := newFakeSlack()
	startEngine(t, approval.Config{Store: s, Cloud: cloud, Rebooter: cloud, Notifier: slack, Clock: clock, Groups: fakeGroups{}})
	testutil.Eventually(t, 10*time.Second, func() bool { return s.settled(t, db, r.ID) }, "%s to settle", r.ID)
	s.mu.Lock()
	marks, ends := slices.Clone(s.markEvents), slices.Clone(s.markEnds)
	s.mu.Unlock()
	if len(marks) != 1 || marks[0] != 0 || !ends[0] {
		t.Errorf("writes storing the start mark: events %v, summary marked %v; want one write without events that also marks the summary", marks, ends)
	}
	got := mustStored(t, db, r.ID)
	if !got.StartAnnounced || !got.EndAnnounced || !got.Runs[0].Reported {
		t.Errorf("start %v, summary %v, result %v marked; want all three", got.StartAnnounced, got.EndAnnounced, got.Runs[0].Reported)
	}
	wantThreadOnce(t, slack, r.ID)
}
