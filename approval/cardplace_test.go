package approval_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
)

// cardPlaceStore refuses, as a store that cannot be reached does, the
// first writes that store where a request's card is; nothing of them is
// written. Everything else goes through.
type cardPlaceStore struct {
	approval.Store
	mu      sync.Mutex
	refuse  int // card placements still to refuse
	refused int
}

func (s *cardPlaceStore) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	return s.Store.Update(ctx, id, key, func(r *approval.Request) (approval.Change, error) {
		had := r.Card.TS != ""
		ch, err := fn(r)
		if err == nil && !had && r.Card.TS != "" && s.take() {
			return approval.Change{}, &approval.Error{Kind: approval.Unavailable, Message: "The store could not be reached; nothing was recorded."}
		}
		return ch, err
	})
}

func (s *cardPlaceStore) take() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse == 0 {
		return false
	}
	s.refuse--
	s.refused++
	return true
}

func (s *cardPlaceStore) refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}

// TestCardPostedButNotStored: when the store takes a new request but not,
// a moment later, where its card is, the requester is told the request is
// filed with its card in the channel (not that nothing was recorded), and
// the card's place is stored later without a second card being posted:
// by the post job at once, or, while the store still refuses, by the next
// sweep. The request then goes on as any other.
func TestCardPostedButNotStored(t *testing.T) {
	for _, refuse := range []int{1, 2} {
		cloud := newFakeCloud(testInstances()...)
		clock := testutil.NewFakeClock(epoch)
		db := openDB(t, clock)
		s := &cardPlaceStore{Store: db, refuse: refuse}
		slack := newFakeSlack()
		e := startEngine(t, approval.Config{Store: s, Cloud: cloud, Rebooter: cloud, Notifier: slack, Clock: clock, Groups: fakeGroups{}})
		ctx := context.Background()
		testutil.Eventually(t, 10*time.Second, func() bool { return clock.Waiters() > 0 }, "the first sweep to end")
		r, err := e.Create(ctx, approval.CreateInput{Key: "cmd", Requester: "UREQ", Channel: "COPS", Reason: "kernel", Instances: []string{"ins-aaaaaaaa"}})
		if err != nil {
			t.Fatalf("refusing %d: create: %v; the request and its card are there", refuse, err)
		}
		if r.Card.TS == "" || s.refusals() == 0 {
			t.Fatalf("refusing %d: create returned card %+v after %d refusals; want the card posted and its placement refused", refuse, r.Card, s.refusals())
		}
		// The sweeps come a minute apart at most; the clock moves a
		// second at a time, each step once the engine waits on it again.
		for range 70 {
			if mustStored(t, db, r.ID).Card.TS != "" {
				break
			}
			testutil.Eventually(t, 10*time.Second, func() bool { return clock.Waiters() > 0 }, "the engine to wait")
			clock.Advance(time.Second)
		}
		stored := storedCard(t, db, r.ID)
		if stored != r.Card {
			t.Errorf("refusing %d: stored card %+v, want the one posted, %+v", refuse, stored, r.Card)
		}
		if n := slack.posts(); n != 1 {
			t.Errorf("refusing %d: %d cards posted, want 1", refuse, n)
		}
		if n := s.refusals(); n != refuse {
			t.Errorf("refusing %d: the placement was refused %d times", refuse, n)
		}
		if _, err := e.Approve(ctx, "click", r.ID, "UALICE", r.Card); err != nil {
			t.Fatalf("refusing %d: approve on the card: %v", refuse, err)
		}
		testutil.Eventually(t, 10*time.Second, func() bool { return cloud.rebootCalls("ins-aaaaaaaa") == 1 }, "the reboot")
	}
}
