package approval_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
)

// lateStore commits the write for one delivery key but answers, as a
// store whose commit outlived its caller's deadline does, that the outcome
// is not known.
type lateStore struct {
	approval.Store
	key string
}

func (s *lateStore) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	r, reply, replayed, err := s.Store.Update(ctx, id, key, fn)
	if err == nil && key == s.key {
		return nil, approval.Reply{}, false, approval.Unconfirmed(errors.New("commit outlived the deadline"))
	}
	return r, reply, replayed, err
}

// TestApprovalCommittedLateStartsSoon: an approval whose write committed
// after its click was told the outcome is not known starts its reboot
// within a second or two, not at the next sweep a minute on.
func TestApprovalCommittedLateStartsSoon(t *testing.T) {
	cloud := newFakeCloud(testInstances()...)
	clock := testutil.NewFakeClock(epoch)
	db := openDB(t, clock)
	late := &lateStore{Store: db, key: "click"}
	e := startEngine(t, approval.Config{Store: late, Cloud: cloud, Rebooter: cloud, Notifier: newFakeSlack(), Clock: clock, Groups: fakeGroups{}})
	ctx := context.Background()
	r, err := e.Create(ctx, approval.CreateInput{Requester: "UREQ", Channel: "COPS", Reason: "kernel", Instances: []string{"ins-aaaaaaaa"}})
	if err != nil {
		t.Fatal(err)
	}
	card := storedCard(t, db, r.ID)
	testutil.Eventually(t, 10*time.Second, func() bool { return clock.Waiters() > 0 }, "the sweep to wait for its next turn")
	// The sweep may go round again after the click and wait anew: only
	// a wait due within the second tells the look apart.
	waiting := clock.WaitersWithin(time.Second)
	_, err = e.Approve(ctx, "click", r.ID, "UALICE", card)
	if approval.ErrorMessage(err) != approval.UnconfirmedMessage {
		t.Fatalf("approve: %v; want the outcome not known", err)
	}
	if got := mustStored(t, db, r.ID).State; got != approval.Executing {
		t.Fatalf("%s is %s; the late write should have committed", r.ID, got)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return clock.WaitersWithin(time.Second) > waiting }, "a look to be planned a second on")
	clock.Advance(time.Second)
	testutil.Eventually(t, 10*time.Second, func() bool { return cloud.rebootCalls("ins-aaaaaaaa") > 0 },
		"the reboot of %s to start after the look a second on", r.ID)
}

// lateCreateStore commits a Create but answers that its outcome is not
// known, as a store whose commit outlived its caller's deadline does.
type lateCreateStore struct {
	approval.Store
}

func (s *lateCreateStore) Create(ctx context.Context, r *approval.Request, key string, reply approval.Reply, events []approval.Event) error {
	if err := s.Store.Create(ctx, r, key, reply, events); err != nil {
		return err
	}
	return approval.Unconfirmed(errors.New("commit outlived the deadline"))
}

// TestCreateCommittedLateGetsItsCard: a request whose creation was
// committed after its command was told the outcome is not known gets its
// card within seconds, from the looks that follow such an answer, not at
// the next sweep a minute on; and only one card.
func TestCreateCommittedLateGetsItsCard(t *testing.T) {
	cloud := newFakeCloud(testInstances()...)
	clock := testutil.NewFakeClock(epoch)
	db := openDB(t, clock)
	slack := newFakeSlack()
	e := startEngine(t, approval.Config{Store: &lateCreateStore{Store: db}, Cloud: cloud, Rebooter: cloud, Notifier: slack, Clock: clock, Groups: fakeGroups{}})
	ctx := context.Background()
	testutil.Eventually(t, 10*time.Second, func() bool { return clock.Waiters() > 0 }, "the first sweep to end")
	_, err := e.Create(ctx, approval.CreateInput{Key: "cmd", Requester: "UREQ", Channel: "COPS", Reason: "kernel", Instances: []string{"ins-aaaaaaaa"}})
	if approval.ErrorMessage(err) != approval.UnconfirmedMessage {
		t.Fatalf("create: %v; want the outcome not known", err)
	}
	if got := mustStored(t, db, "R-1"); got.Card.TS != "" {
		t.Fatalf("R-1 has a card already: %+v", got.Card)
	}
	// The looks come 1, 3, 7 and 15 s on; the next sweep would come a
	// minute on. The clock moves a second at a time, each step once the
	// engine has gone to sleep on it again.
	for range 20 {
		testutil.Eventually(t, 10*time.Second, func() bool { return clock.WaitersWithin(8*time.Second) > 0 }, "a look to wait")
		clock.Advance(time.Second)
		if mustStored(t, db, "R-1").Card.TS != "" {
			break
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return mustStored(t, db, "R-1").Card.TS != "" }, "R-1's card to be posted within 20 s")
	if n := slack.posts(); n != 1 {
		t.Errorf("%d cards posted, want 1", n)
	}
}
