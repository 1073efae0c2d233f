package etcdstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
	"rebootbot/etcdstore/etcdtest"
)

// pause makes l stop renewing its lease without revoking it, as a process
// that is stopped or cut off would: the lease runs out after its TTL.
func pause(l *Leader) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.session.Orphan()
}

func mustCampaign(t *testing.T, ctx context.Context, l *Leader) <-chan struct{} {
	t.Helper()
	done, err := l.Campaign(ctx)
	if err != nil {
		t.Fatalf("Campaign: %v", err)
	}
	return done
}

// record is a write a leader makes: one bot event.
func record(s *Store) error {
	_, _, err := s.Record(context.Background(), "", approval.Reply{}, []approval.Event{{Type: approval.EventExpired, Actor: approval.ActorBot}})
	return err
}

// TestPausedLeaderIsFenced pauses the leader past its lease: once the
// other replica is elected, every write the paused one makes as leader is
// refused and changes nothing, although it never noticed it lost.
func TestPausedLeaderIsFenced(t *testing.T) {
	m := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := mustStore(t, m, time.Now)
	b := mustStoreAt(t, m, a.Prefix(), time.Now)
	la, lb := NewLeader(a, "replica-a", time.Second), NewLeader(b, "replica-b", time.Second)
	t.Cleanup(func() { la.Close(); lb.Close() })

	// The campaign's context ends once a leads; the lead does not.
	campaign, stop := context.WithCancel(ctx)
	lostA := mustCampaign(t, campaign, la)
	stop()
	select {
	case <-lostA:
		t.Fatal("a lost the lead when its campaign's context ended")
	case <-time.After(300 * time.Millisecond):
	}
	asA := a.Fenced(la)
	if err := record(asA); err != nil {
		t.Fatalf("write as the leader: %v", err)
	}
	id := mustCreateWith(t, asA, storetest.NewRequest("U0ALICE", "ins-aaaaaaaa"))

	elected := make(chan error, 1)
	go func() {
		_, err := lb.Campaign(ctx)
		elected <- err
	}()
	select {
	case err := <-elected:
		t.Fatalf("b was elected (%v) while a leads", err)
	default:
	}

	paused := time.Now()
	pause(la)
	if err := <-elected; err != nil {
		t.Fatalf("b's campaign: %v", err)
	}
	t.Logf("b elected %v after a stopped renewing a 1 s lease", time.Since(paused).Round(time.Millisecond))

	// a still holds its election key and revision, as a paused process
	// that just woke up would.
	writes := map[string]error{
		"Record": record(asA),
		"Create": asA.Create(ctx, storetest.NewRequest("U0BOB", "ins-bbbbbbbb"), "cmd-late", approval.Reply{}, nil),
		"Update": func() error {
			_, _, _, err := asA.Update(ctx, id, "", func(r *approval.Request) (approval.Change, error) {
				r.State = approval.Expired
				return approval.Change{Save: true, Events: []approval.Event{{Type: approval.EventExpired, Actor: approval.ActorBot}}}, nil
			})
			return err
		}(),
	}
	for name, err := range writes {
		if !errors.Is(err, ErrNotLeader) {
			t.Errorf("%s as the paused leader: got %v, want ErrNotLeader", name, err)
		}
	}
	if n, err := b.Verify(ctx); err != nil || n != 2 {
		t.Errorf("Verify = %d, %v; want the 2 events written while a led", n, err)
	}
	if r, err := b.Get(ctx, id); err != nil || r.State != approval.Pending {
		t.Errorf("Get(%s) = %+v, %v; want it still pending", id, r, err)
	}
	if _, ok, _ := b.Reply(ctx, "cmd-late"); ok {
		t.Error("the refused create remembered its delivery")
	}

	// The new leader writes; the plain store was never fenced.
	if err := record(b.Fenced(lb)); err != nil {
		t.Errorf("write as the new leader: %v", err)
	}
	if err := record(a); err != nil {
		t.Errorf("write outside leadership: %v", err)
	}
}

// TestResignHandsOver checks a resigning leader hands over at once and
// cannot write as leader afterwards.
func TestResignHandsOver(t *testing.T) {
	m := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := mustStore(t, m, time.Now)
	b := mustStoreAt(t, m, a.Prefix(), time.Now)
	// A long lease: only the resignation can hand over within the test.
	la, lb := NewLeader(a, "replica-a", time.Minute), NewLeader(b, "replica-b", time.Minute)
	t.Cleanup(func() { la.Close(); lb.Close() })

	lost := mustCampaign(t, ctx, la)
	if !la.Leading() || lb.Leading() {
		t.Fatalf("Leading: a %v, b %v; want a only", la.Leading(), lb.Leading())
	}
	elected := make(chan error, 1)
	go func() {
		_, err := lb.Campaign(ctx)
		elected <- err
	}()
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-ctx.Done():
		t.Fatal("a's lost channel was not closed by Resign")
	}
	if err := <-elected; err != nil {
		t.Fatalf("b's campaign: %v", err)
	}
	if !lb.Leading() || la.Leading() {
		t.Errorf("Leading: a %v, b %v; want b only", la.Leading(), lb.Leading())
	}
	if err := record(a.Fenced(la)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("write after resigning: got %v, want ErrNotLeader", err)
	}
	if err := record(b.Fenced(lb)); err != nil {
		t.Errorf("write as the new leader: %v", err)
	}
}

func TestCampaignEndsWithContext(t *testing.T) {
	m := etcdtest.Start(t)
	a := mustStore(t, m, time.Now)
	la, lb := NewLeader(a, "a", time.Minute), NewLeader(a, "b", time.Minute)
	t.Cleanup(func() { la.Close(); lb.Close() })
	mustCampaign(t, context.Background(), la)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := lb.Campaign(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Campaign with a cancelled context: got %v, want context.Canceled", err)
	}
	if err := record(a.Fenced(lb)); !errors.Is(err, ErrNotLeader) {
		t.Errorf("write by a replica never elected: got %v, want ErrNotLeader", err)
	}
}

func mustCreateWith(t *testing.T, s *Store, r *approval.Request) string {
	t.Helper()
	if err := s.Create(context.Background(), r, "", approval.Reply{}, []approval.Event{storetest.Requested(r)}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return r.ID
}
