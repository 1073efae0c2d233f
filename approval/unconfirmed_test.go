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
