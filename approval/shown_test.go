package approval_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
)

// sweptStore counts the reads of the open requests, which each sweep
// makes.
type sweptStore struct {
	approval.Store
	opens atomic.Int64
}

func (s *sweptStore) Open(ctx context.Context) ([]*approval.Request, error) {
	defer s.opens.Add(1)
	return s.Store.Open(ctx)
}

// TestCardShownMidLifeNotMarked checks the card of a request still under
// way: its update is remembered, not marked in the store; a sweep does not
// update it again; after a restart it is updated once more; the card that
// shows the outcome is marked in the store.
func TestCardShownMidLifeNotMarked(t *testing.T) {
	p := testPolicy()
	p.MinApprovals = 2
	cloud := newFakeCloud(testInstances()...)
	db := openDB(t, nil)
	swept := &sweptStore{Store: db}
	slack := newFakeSlack()
	start := func() *approval.Engine {
		return startEngine(t, approval.Config{Store: swept, Cloud: cloud, Rebooter: cloud, Notifier: slack, Policy: p})
	}
	ctx := context.Background()
	e := start()
	r, err := e.Create(ctx, approval.CreateInput{Key: "cmd", Requester: "UREQ", Channel: "COPS", Reason: "kernel", Instances: []string{"ins-aaaaaaaa"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Approve(ctx, "click-1", r.ID, "UALICE", storedCard(t, db, r.ID)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return slack.updateCalls() == 1 }, "the card to show the first approval")
	if got, want := slack.card(r.ID).Version, mustStored(t, db, r.ID).Version; got != want {
		t.Fatalf("the card shows version %d, the store has %d", got, want)
	}
	if mustStored(t, db, r.ID).CardCurrent {
		t.Error("the card of a pending request was marked current in the store")
	}
	opens := swept.opens.Load()
	e.Wake()
	testutil.Eventually(t, 10*time.Second, func() bool { return swept.opens.Load() > opens }, "a sweep")
	if err := e.Close(ctx); err != nil { // waits for the jobs the sweep started
		t.Fatal(err)
	}
	if n := slack.updateCalls(); n != 1 {
		t.Errorf("the card was updated %d times after a sweep, want once", n)
	}

	e = start()
	testutil.Eventually(t, 10*time.Second, func() bool { return slack.updateCalls() == 2 }, "the restarted engine to update the card once more")
	if _, err := e.Approve(ctx, "click-2", r.ID, "UBOB", storedCard(t, db, r.ID)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return mustStored(t, db, r.ID).Settled() }, "%s to settle", r.ID)
	got := mustStored(t, db, r.ID)
	if got.State != approval.Succeeded || !got.CardCurrent {
		t.Errorf("%s ended %s with card current %v; want Succeeded and marked", r.ID, got.State, got.CardCurrent)
	}
	if shown := slack.card(r.ID); shown.State != approval.Succeeded {
		t.Errorf("the card shows %s, want %s", shown.State, approval.Succeeded)
	}
}

func mustStored(t *testing.T, db approval.Store, id string) *approval.Request {
	t.Helper()
	r, err := db.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
