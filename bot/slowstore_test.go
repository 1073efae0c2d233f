package bot_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
)

// slowStore is a store as slow as a test needs: with stallReads set, a
// delivery's read of its earlier answer waits until the caller's deadline
// (as etcd does without quorum); with a hold set, the next change's
// transaction stays under way, inside the real store, until the hold is
// released (as a commit on a stalled disk or a busy cluster does).
type slowStore struct {
	approval.Store
	stallReads atomic.Bool
	hold       atomic.Pointer[storeHold]
}

// storeHold keeps one change's transaction open.
type storeHold struct {
	inside  chan struct{} // closed when the change's transaction runs
	release chan struct{} // closed by the test to let it commit
	entered atomic.Bool
}

func (s *slowStore) Reply(ctx context.Context, key string) (approval.Reply, bool, error) {
	if s.stallReads.Load() {
		<-ctx.Done()
	}
	return s.Store.Reply(ctx, key)
}

func (s *slowStore) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	h := s.hold.Load()
	if h == nil || key == "" {
		return s.Store.Update(ctx, id, key, fn)
	}
	return s.Store.Update(ctx, id, key, func(r *approval.Request) (approval.Change, error) {
		c, err := fn(r)
		if !h.entered.Swap(true) {
			close(h.inside)
		}
		<-h.release
		return c, err
	})
}

// clickTimed clicks like e.clickWithTrigger and returns how long the HTTP
// answer took.
func clickTimed(e *env, user, action, id, trigger string) (reply, string, time.Duration) {
	e.t.Helper()
	start := time.Now()
	ans, responseURL := e.clickWithTrigger(user, action, id, trigger)
	return ans, responseURL, time.Since(start)
}

// TestClickAnsweredInTimeNothingRecorded: a store too slow to answer the
// click within Slack's 3 s still gets the click answered in time, saying
// that nothing was recorded, which is true: the request is untouched.
// The same click delivered again once the store is back acts once and
// is then answered as stored.
func TestClickAnsweredInTimeNothingRecorded(t *testing.T) {
	t.Parallel() // waits out real deadlines
	slow := &slowStore{}
	e := mustEnv(t, func(c *envConfig) {
		c.policy.MinApprovals = 2
		c.store = func(s approval.Store) approval.Store { slow.Store = s; return slow }
	})
	e.create(requester, "ins-web00001 hung")
	slow.stallReads.Store(true)
	trigger := e.trigger()
	ans, first, took := clickTimed(e, approverA, "approve", "R-1", trigger)
	if ans.Status != http.StatusOK || took >= 3*time.Second {
		t.Fatalf("click answered %d after %v; want 200 within 3 s", ans.Status, took)
	}
	if got := e.responseText(first, 1); got != approval.NotRecordedMessage {
		t.Errorf("clicker was told %q, want %q", got, approval.NotRecordedMessage)
	}
	if r := e.request("R-1"); len(r.Approvals) != 0 {
		t.Fatalf("R-1 has %d approvals after a click that was told nothing was recorded", len(r.Approvals))
	}

	slow.stallReads.Store(false)
	_, again, _ := clickTimed(e, approverA, "approve", "R-1", trigger)
	_, third, _ := clickTimed(e, approverA, "approve", "R-1", trigger)
	const want = "You approved R-1 (1 of 2 approvals)."
	if got1, got2 := e.responseText(again, 1), e.responseText(third, 1); got1 != want || got2 != want {
		t.Errorf("redeliveries were told %q and %q, want %q twice", got1, got2, want)
	}
	if r := e.request("R-1"); len(r.Approvals) != 1 {
		t.Errorf("R-1 has %d approvals, want 1", len(r.Approvals))
	}
	if n := countEvents(e, approval.EventApproved); n != 1 {
		t.Errorf("%d approved events in the audit log, want 1", n)
	}
}

// TestClickAnsweredInTimeOutcomeUnknown: a click whose transaction is
// still under way when its time is up is answered within 3 s, and told
// that it may not have been recorded, never that nothing was: the
// transaction commits afterwards, and the card shows it after the next
// sweep. The same click delivered again acts no more and gets the stored
// answer.
func TestClickAnsweredInTimeOutcomeUnknown(t *testing.T) {
	t.Parallel() // waits out real deadlines
	slow := &slowStore{}
	e := mustEnv(t, func(c *envConfig) {
		c.policy.MinApprovals = 2
		c.store = func(s approval.Store) approval.Store { slow.Store = s; return slow }
	})
	e.create(requester, "ins-web00001 hung")
	h := &storeHold{inside: make(chan struct{}), release: make(chan struct{})}
	slow.hold.Store(h)
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
	})
	trigger := e.trigger()
	ans, first, took := clickTimed(e, approverA, "approve", "R-1", trigger)
	if ans.Status != http.StatusOK || took >= 3*time.Second {
		t.Fatalf("click answered %d after %v; want 200 within 3 s", ans.Status, took)
	}
	select {
	case <-h.inside:
	default:
		t.Fatal("the click's transaction never ran")
	}
	got := e.responseText(first, 1)
	if got != approval.UnconfirmedMessage || strings.Contains(got, "nothing was recorded") {
		t.Errorf("clicker was told %q, want %q", got, approval.UnconfirmedMessage)
	}

	slow.hold.Store(nil)
	close(h.release)
	testutil.Eventually(t, waitLong, func() bool { return len(e.request("R-1").Approvals) == 1 }, "the held approval to commit")
	// Nobody was told it committed; the engine looks again a second after
	// the unconfirmed answer and brings the card up to date.
	testutil.Eventually(t, waitLong, func() bool { return e.clock.Waiters() > 0 }, "the sweeper to wait")
	e.clock.Advance(time.Minute)
	e.waitCard("R-1", "1 of 2")
	_, again, _ := clickTimed(e, approverA, "approve", "R-1", trigger)
	const want = "You approved R-1 (1 of 2 approvals)."
	if got := e.responseText(again, 1); got != want {
		t.Errorf("redelivery was told %q, want %q", got, want)
	}
	if r := e.request("R-1"); len(r.Approvals) != 1 {
		t.Errorf("R-1 has %d approvals, want 1", len(r.Approvals))
	}
	if n := countEvents(e, approval.EventApproved); n != 1 {
		t.Errorf("%d approved events in the audit log, want 1", n)
	}
}

func countEvents(e *env, typ approval.EventType) int {
	n := 0
	for _, ev := range e.events(approval.AuditQuery{RequestID: "R-1"}) {
		if ev.Type == typ {
			n++
		}
	}
	return n
}
