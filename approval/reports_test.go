package approval_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
	"rebootbot/store"
)

// countingStore counts the writes that change no event, such as marking a
// report posted.
type countingStore struct {
	approval.Store
	mu     sync.Mutex
	silent int
}

func (s *countingStore) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	var events int
	r, reply, replayed, err := s.Store.Update(ctx, id, key, func(r *approval.Request) (approval.Change, error) {
		c, err := fn(r)
		events = len(c.Events)
		return c, err
	})
	if err == nil && events == 0 {
		s.mu.Lock()
		s.silent++
		s.mu.Unlock()
	}
	return r, reply, replayed, err
}

// TestReportsOfABigRequestMarkedInGroups checks that every instance of the
// largest request that gets a report per instance gets it exactly once,
// and that they are marked posted in a few writes, not one write each.
func TestReportsOfABigRequestMarkedInGroups(t *testing.T) {
	const n = approval.MaxInstanceReports
	instances := make([]approval.Instance, n)
	for i := range instances {
		instances[i] = approval.Instance{ID: fmt.Sprintf("ins-%08d", i), Name: "big", Zone: "ap-guangzhou-3"}
	}
	cloud := newFakeCloud(instances...)
	db := openDB(t, nil)
	counted := &countingStore{Store: db}
	slack := newFakeSlack()
	e := startEngine(t, approval.Config{Store: counted, Cloud: cloud, Rebooter: cloud, Notifier: slack})
	ctx := context.Background()
	ids := make([]string, n)
	for i, in := range instances {
		ids[i] = in.ID
	}
	r, err := e.Create(ctx, approval.CreateInput{Key: "cmd", Requester: "UREQ", Channel: "COPS", Reason: "kernel", Instances: ids})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Approve(ctx, "click", r.ID, "UALICE", storedCard(t, db, r.ID)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		got, err := db.Get(ctx, r.ID)
		return err == nil && got.Settled()
	}, "%s to settle", r.ID)
	wantReportedOnce(t, slack, r.ID, ids)
	counted.mu.Lock()
	defer counted.mu.Unlock()
	// The start, the summary, the card marked current a few times, and the
	// instance reports in groups of up to ten: one write each would take at
	// least n+2.
	if counted.silent > n+1 {
		t.Errorf("%d writes without an event for one request of %d instances, want at most %d", counted.silent, n, n+1)
	}
}

// TestReportsOfAFleet checks that a request of more instances than
// MaxInstanceReports gets its start and its outcome in the thread, and no
// message per instance.
func TestReportsOfAFleet(t *testing.T) {
	const n = approval.MaxInstanceReports + 15
	instances := make([]approval.Instance, n)
	ids := make([]string, n)
	for i := range instances {
		instances[i] = approval.Instance{ID: fmt.Sprintf("ins-%08d", i), Name: "fleet", Zone: "ap-guangzhou-3"}
		ids[i] = instances[i].ID
	}
	cloud := newFakeCloud(instances...)
	db, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	slack := newFakeSlack()
	e, err := approval.NewEngine(approval.Config{Store: db, Cloud: cloud, Rebooter: cloud, Notifier: slack, Policy: testPolicy(),
		PollInterval: time.Millisecond, RebootTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	r, err := e.Create(ctx, approval.CreateInput{Key: "cmd", Requester: "UREQ", Channel: "COPS", Reason: "kernel", Instances: ids})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Approve(ctx, "click", r.ID, "UALICE", storedCard(t, db, r.ID)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		got, err := db.Get(ctx, r.ID)
		return err == nil && got.Settled()
	}, "%s to settle", r.ID)
	var kinds []approval.ReportKind
	for _, rep := range slack.reportsOf(r.ID) {
		kinds = append(kinds, rep.Kind)
	}
	if want := []approval.ReportKind{approval.ReportStarted, approval.ReportFinished}; fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("thread reports %v, want %v", kinds, want)
	}
}

// storedCard waits for request id's card to be stored and returns it: a
// sweep may post a new request's card in the background instead of Create.
func storedCard(t *testing.T, db approval.Store, id string) approval.Card {
	t.Helper()
	var c approval.Card
	testutil.Eventually(t, 10*time.Second, func() bool {
		r, err := db.Get(context.Background(), id)
		if err == nil {
			c = r.Card
		}
		return c.TS != ""
	}, "%s's card to be stored", id)
	return c
}

// TestReportsOfOneInstanceMarkedWithTheSummary checks the thread of a
// request of one instance: its start, its result and its summary, each
// posted once, and the result marked posted in the write that marks the
// summary, as the summary follows it at once.
func TestReportsOfOneInstanceMarkedWithTheSummary(t *testing.T) {
	cloud := newFakeCloud(testInstances()...)
	db := openDB(t, nil)
	counted := &countingStore{Store: db}
	slack := newFakeSlack()
	e := startEngine(t, approval.Config{Store: counted, Cloud: cloud, Rebooter: cloud, Notifier: slack})
	r := createApproved(t, e, db, "ins-aaaaaaaa")
	ctx := context.Background()
	testutil.Eventually(t, 10*time.Second, func() bool {
		got, err := db.Get(ctx, r.ID)
		return err == nil && got.Settled()
	}, "%s to settle", r.ID)
	wantThreadOnce(t, slack, r.ID)
	counted.mu.Lock()
	defer counted.mu.Unlock()
	// The card's place, the card showing the outcome marked current, the
	// start marked posted, the result and the summary marked together.
	if counted.silent > 4 {
		t.Errorf("%d writes without an event for a request of one instance, want at most 4", counted.silent)
	}
}
