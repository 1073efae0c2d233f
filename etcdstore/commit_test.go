package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
	"rebootbot/etcdstore/etcdtest"
)

// hold keeps s's committer busy: it starts an update of id whose function
// waits, and returns once that function runs, so that the changes made
// next queue up and go together. release lets the update go and returns
// its error.
func hold(t *testing.T, s *Store, id string) (release func() error) {
	t.Helper()
	running, gate, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var once sync.Once
	go func() {
		_, _, _, err := s.Update(context.Background(), id, "", func(r *approval.Request) (approval.Change, error) {
			once.Do(func() { close(running) })
			<-gate
			return approval.Change{Events: []approval.Event{{Type: approval.EventExpired, Actor: approval.ActorBot}}}, nil
		})
		done <- err
	}()
	select {
	case <-running:
	case <-time.After(10 * time.Second):
		t.Fatal("the holding update did not run within 10 s")
	}
	var released sync.Once
	return func() error {
		released.Do(func() { close(gate) })
		return <-done
	}
}

// waitQueued waits until n changes wait in s's committer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := s.commits
		c.mu.Lock()
		got := len(c.urgent) + len(c.queue)
		c.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d changes queued after 10 s, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// revision returns the ModRevision of request id: the revision of the
// transaction that last wrote it.
func revision(t *testing.T, s *Store, id string) int64 {
	t.Helper()
	seq, _ := approval.ParseRequestID(id)
	resp, err := s.client.Get(context.Background(), s.requestKey(seq))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get %s: %v, %d keys", id, err, len(resp.Kvs))
	}
	return resp.Kvs[0].ModRevision
}

// approve is an update function recording user's approval.
func approve(user string) func(r *approval.Request) (approval.Change, error) {
	return func(r *approval.Request) (approval.Change, error) {
		r.Approvals = append(r.Approvals, approval.Approval{User: user, At: time.Now()})
		return approval.Change{
			Save:   true,
			Events: []approval.Event{{Type: approval.EventApproved, Actor: user, Details: approval.Details{Approvals: []string{user}, Required: 2}}},
			Reply:  approval.Reply{Message: "Approved."},
		}, nil
	}
}

// mustRequests creates n one-instance requests and returns their IDs.
func mustRequests(t *testing.T, s *Store, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = mustCreateWith(t, s, storetest.NewRequest("U0ALICE", fmt.Sprintf("ins-%08x", i)))
	}
	return ids
}

// update is one Update made in the background; its outcome arrives on the
// returned channel.
func update(s *Store, id, key string, fn func(r *approval.Request) (approval.Change, error)) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, _, _, err := s.Update(context.Background(), id, key, fn)
		done <- err
	}()
	return done
}

// TestGroupCommitSharesOneTransaction queues updates of eight requests and
// a create behind a commit in progress: they go in one transaction (every
// request they wrote has the same ModRevision), and the audit chain holds
// each of their events in order.
func TestGroupCommitSharesOneTransaction(t *testing.T) {
	m := etcdtest.Start(t)
	s := mustStore(t, m, time.Now)
	ids := mustRequests(t, s, 9)
	release := hold(t, s, ids[0])

	var results []<-chan error
	for i, id := range ids[1:] {
		results = append(results, update(s, id, "", approve("U0BOB")))
		waitQueued(t, s, i+1)
	}
	created := make(chan error, 1)
	r := storetest.NewRequest("U0CAROL", "ins-cccccccc")
	go func() {
		created <- s.Create(context.Background(), r, "", approval.Reply{}, []approval.Event{storetest.Requested(r)})
	}()
	waitQueued(t, s, len(ids))
	if err := release(); err != nil {
		t.Fatalf("holding update: %v", err)
	}
	for i, done := range results {
		if err := <-done; err != nil {
			t.Fatalf("update %s: %v", ids[i+1], err)
		}
	}
	if err := <-created; err != nil {
		t.Fatalf("create: %v", err)
	}

	want := revision(t, s, r.ID)
	for _, id := range ids[1:] {
		if got := revision(t, s, id); got != want {
			t.Errorf("%s written at revision %d, the create at %d: want one transaction", id, got, want)
		}
	}
	if r.ID != "R-10" {
		t.Errorf("created %s, want R-10", r.ID)
	}
	// Nine created, the holding update's event, eight approvals, one more
	// created.
	n, err := s.Verify(context.Background())
	if err != nil || n != 9+1+8+1 {
		t.Errorf("Verify = %d, %v; want 19 events, chain intact", n, err)
	}
	events := mustAuditAll(t, s)
	for i, e := range events[10:18] { // queued one after the other
		if e.Type != approval.EventApproved || e.RequestID != ids[i+1] {
			t.Errorf("event %d: %s of %s, want the approval of %s (the order of the group)", e.Seq, e.Type, e.RequestID, ids[i+1])
		}
	}
}

// mustAuditAll returns every event of s, oldest first.
func mustAuditAll(t *testing.T, s *Store) []approval.Event {
	t.Helper()
	var out []approval.Event
	err := s.Audit(context.Background(), approval.AuditQuery{Oldest: true}, func(e *approval.Event) error {
		out = append(out, *e)
		return nil
	})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	return out
}

// TestGroupCommitLeavesOutAFailingChange queues updates of which one's
// function fails and one replays a delivery answered before: those two are
// answered alone, the rest commit together, and the failed request is
// untouched.
func TestGroupCommitLeavesOutAFailingChange(t *testing.T) {
	m := etcdtest.Start(t)
	s := mustStore(t, m, time.Now)
	ids := mustRequests(t, s, 6)
	if _, _, _, err := s.Update(context.Background(), ids[5], "click-1", approve("U0BOB")); err != nil {
		t.Fatal(err)
	}
	before := revision(t, s, ids[3])
	release := hold(t, s, ids[0])

	refused := &approval.Error{Kind: approval.Conflict, Message: "Already decided."}
	var calls sync.Map
	var results []<-chan error
	for i, id := range ids[1:5] {
		results = append(results, update(s, id, fmt.Sprintf("click-%d", i+2), func(r *approval.Request) (approval.Change, error) {
			n, _ := calls.LoadOrStore(r.ID, new(int))
			*n.(*int)++
			if r.ID == ids[3] {
				return approval.Change{}, refused
			}
			return approve("U0BOB")(r)
		}))
	}
	replay := make(chan bool, 1)
	go func() {
		_, _, replayed, err := s.Update(context.Background(), ids[5], "click-1", approve("U0DAVE"))
		replay <- replayed && err == nil
	}()
	waitQueued(t, s, 5)
	if err := release(); err != nil {
		t.Fatalf("holding update: %v", err)
	}
	for i, done := range results {
		err := <-done
		if id := ids[i+1]; id == ids[3] {
			if !errors.Is(err, refused) {
				t.Errorf("update %s: got %v, want its own refusal", id, err)
			}
		} else if err != nil {
			t.Errorf("update %s: %v", id, err)
		}
	}
	if !<-replay {
		t.Error("the delivery answered before was not replayed")
	}
	want := revision(t, s, ids[1])
	for _, id := range []string{ids[2], ids[4]} {
		if got := revision(t, s, id); got != want {
			t.Errorf("%s written at revision %d, %s at %d: want one transaction", id, got, ids[1], want)
		}
	}
	if got := revision(t, s, ids[3]); got != before {
		t.Errorf("the refused request was written (revision %d, was %d)", got, before)
	}
	if _, ok, _ := s.Reply(context.Background(), "click-4"); ok {
		t.Error("the refused update remembered its delivery")
	}
	calls.Range(func(k, v any) bool {
		if *v.(*int) != 1 {
			t.Errorf("the function of %s ran %d times, want once", k, *v.(*int))
		}
		return true
	})
	if n, err := s.Verify(context.Background()); err != nil || n != 6+1+1+3 {
		t.Errorf("Verify = %d, %v; want 11 events, chain intact", n, err)
	}
}

// TestGroupCommitSameRequestInTurn queues two approvals of one request:
// they go in separate transactions, the second decided on what the first
// committed, so both approvals are kept.
func TestGroupCommitSameRequestInTurn(t *testing.T) {
	m := etcdtest.Start(t)
	s := mustStore(t, m, time.Now)
	ids := mustRequests(t, s, 2)
	release := hold(t, s, ids[0])
	first := update(s, ids[1], "click-bob", approve("U0BOB"))
	waitQueued(t, s, 1)
	second := update(s, ids[1], "click-carol", approve("U0CAROL"))
	waitQueued(t, s, 2)
	if err := release(); err != nil {
		t.Fatalf("holding update: %v", err)
	}
	for _, done := range []<-chan error{first, second} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Get(context.Background(), ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Approvals) != 2 || r.Approvals[0].User != "U0BOB" || r.Approvals[1].User != "U0CAROL" {
		t.Errorf("approvals %+v, want U0BOB's then U0CAROL's", r.Approvals)
	}
}

// mustLead returns s fenced by a leadership it won.
func mustLead(t *testing.T, s *Store) *Store {
	t.Helper()
	l := NewLeader(s, "replica-a", time.Minute)
	t.Cleanup(func() { l.Close() })
	mustCampaign(t, context.Background(), l)
	return s.Fenced(l)
}

// TestGroupCommitClickGoesFirst queues three of the leader's background
// updates, then a click's, with room for two changes in a transaction: the
// click goes in the first one, with the oldest background update.
func TestGroupCommitClickGoesFirst(t *testing.T) {
	m := etcdtest.Start(t)
	s := mustStore(t, m, time.Now)
	s.commits.maxGroup = 2
	leader := mustLead(t, s)
	ids := mustRequests(t, s, 5)
	release := hold(t, s, ids[0])
	var results []<-chan error
	for i, id := range ids[1:] {
		through, key := leader, ""
		if i == 3 {
			through, key = s, "click-1"
		}
		results = append(results, update(through, id, key, approve("U0BOB")))
		waitQueued(t, s, i+1)
	}
	if err := release(); err != nil {
		t.Fatalf("holding update: %v", err)
	}
	for _, done := range results {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	click, oldest := revision(t, s, ids[4]), revision(t, s, ids[1])
	second, third := revision(t, s, ids[2]), revision(t, s, ids[3])
	if click != oldest || second != third || click >= second {
		t.Errorf("revisions: click %d, background %d %d %d; want the click with the first background update, before the other two together",
			click, oldest, second, third)
	}
}

// TestGroupCommitBoundedByOps lets a transaction carry at most 30 writes:
// queued approvals of about ten writes each go three or fewer at a time,
// and all of them commit.
func TestGroupCommitBoundedByOps(t *testing.T) {
	m := etcdtest.Start(t)
	s := mustStore(t, m, time.Now)
	s.commits.maxOps = 30
	ids := mustRequests(t, s, 10)
	release := hold(t, s, ids[0])
	var results []<-chan error
	for _, id := range ids[1:] {
		results = append(results, update(s, id, "", approve("U0BOB")))
	}
	waitQueued(t, s, len(ids)-1)
	if err := release(); err != nil {
		t.Fatalf("holding update: %v", err)
	}
	for _, done := range results {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	per := map[int64]int{}
	for _, id := range ids[1:] {
		per[revision(t, s, id)]++
	}
	if len(per) < 3 {
		t.Errorf("9 approvals went in %d transactions, want at least 3 of at most 30 writes", len(per))
	}
	for rev, n := range per {
		if n > 3 {
			t.Errorf("transaction at revision %d carried %d approvals", rev, n)
		}
	}
	if n, err := s.Verify(context.Background()); err != nil || n != 10+1+9 {
		t.Errorf("Verify = %d, %v; want 20 events, chain intact", n, err)
	}
}

// TestGroupCommitFencedGroupRefused queues writes of a leader, and a click
// answered outside leadership, while it loses its leadership: all of the
// leader's writes in the group are refused and change nothing; the click
// is committed without them.
func TestGroupCommitFencedGroupRefused(t *testing.T) {
	m := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := mustStore(t, m, time.Now)
	l := NewLeader(s, "replica-a", time.Minute)
	t.Cleanup(func() { l.Close() })
	mustCampaign(t, ctx, l)
	asLeader := s.Fenced(l)
	ids := mustRequests(t, s, 5)
	release := hold(t, asLeader, ids[0])

	var fenced []<-chan error
	for _, id := range ids[1:4] {
		fenced = append(fenced, update(asLeader, id, "", approve("U0BOT")))
	}
	created := make(chan error, 1)
	go func() {
		created <- asLeader.Create(ctx, storetest.NewRequest("U0BOB", "ins-bbbbbbbb"), "", approval.Reply{}, nil)
	}()
	plain := update(s, ids[4], "click-1", approve("U0BOB"))
	waitQueued(t, s, 5)
	before := map[string]int64{}
	for _, id := range ids {
		before[id] = revision(t, s, id)
	}
	// The lease ends as it would once the leader stopped renewing it.
	if _, err := s.client.Revoke(ctx, l.session.Lease()); err != nil {
		t.Fatal(err)
	}
	if err := release(); !errors.Is(err, ErrNotLeader) {
		t.Errorf("holding update: got %v, want ErrNotLeader", err)
	}
	for i, done := range fenced {
		if err := <-done; !errors.Is(err, ErrNotLeader) {
			t.Errorf("update %s as the ex-leader: got %v, want ErrNotLeader", ids[i+1], err)
		}
	}
	if err := <-created; !errors.Is(err, ErrNotLeader) {
		t.Errorf("create as the ex-leader: got %v, want ErrNotLeader", err)
	}
	if err := <-plain; err != nil {
		t.Errorf("update outside leadership: %v", err)
	}
	for _, id := range ids[:4] {
		if got := revision(t, s, id); got != before[id] {
			t.Errorf("%s was written by the ex-leader", id)
		}
	}
	if _, err := s.Get(ctx, "R-6"); err == nil {
		t.Error("the ex-leader's create was stored")
	}
	if n, err := s.Verify(ctx); err != nil || n != 5+1 {
		t.Errorf("Verify = %d, %v; want the 5 created and the one approval outside leadership", n, err)
	}
}

// TestGroupCommitCallerGivesUp ends a queued update's context: it returns
// the context's error, its function never runs, and the rest of its group
// commits.
func TestGroupCommitCallerGivesUp(t *testing.T) {
	m := etcdtest.Start(t)
	s := mustStore(t, m, time.Now)
	ids := mustRequests(t, s, 3)
	release := hold(t, s, ids[0])
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{}, 1)
	gaveUp := make(chan error, 1)
	go func() {
		_, _, _, err := s.Update(ctx, ids[1], "click-1", func(r *approval.Request) (approval.Change, error) {
			ran <- struct{}{}
			return approve("U0BOB")(r)
		})
		gaveUp <- err
	}()
	other := update(s, ids[2], "click-2", approve("U0BOB"))
	waitQueued(t, s, 2)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled update: got %v, want context.Canceled", err)
	}
	if err := release(); err != nil {
		t.Fatalf("holding update: %v", err)
	}
	if err := <-other; err != nil {
		t.Errorf("the other update: %v", err)
	}
	select {
	case <-ran:
		t.Error("the function of an update whose caller gave up ran")
	default:
	}
	if _, ok, _ := s.Reply(context.Background(), "click-1"); ok {
		t.Error("the cancelled update remembered its delivery")
	}
}

// TestGroupCommitReplicasKeepTheChain writes from many goroutines through
// two replicas at once, each replica grouping its own writes: every
// request is created and approved once and the audit chain is intact.
func TestGroupCommitReplicasKeepTheChain(t *testing.T) {
	m := etcdtest.Start(t)
	a := mustStore(t, m, time.Now)
	replicas := []*Store{a, mustStoreAt(t, m, a.Prefix(), time.Now)}
	const n = 40
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Go(func() {
			s := replicas[i%2]
			r := storetest.NewRequest("U0ALICE", fmt.Sprintf("ins-%08x", i))
			if err := s.Create(ctx, r, fmt.Sprintf("cmd-%d", i), approval.Reply{Message: "posted"}, []approval.Event{storetest.Requested(r)}); err != nil {
				errs <- err
				return
			}
			// The click arrives at the other replica.
			if _, _, _, err := replicas[(i+1)%2].Update(ctx, r.ID, fmt.Sprintf("click-%d", i), approve("U0BOB")); err != nil {
				errs <- err
			}
			if _, _, err := s.Record(ctx, fmt.Sprintf("refused-%d", i), approval.Reply{Kind: approval.Forbidden, Message: "No."},
				[]approval.Event{{Type: approval.EventApprovalRefused, Actor: "U0EVE", RequestID: r.ID}}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, err := a.Verify(ctx); err != nil || got != 3*n {
		t.Errorf("Verify = %d, %v; want %d events, chain intact", got, err, 3*n)
	}
	open, err := a.Open(ctx)
	if err != nil || len(open) != n {
		t.Errorf("Open: %d requests, %v; want %d", len(open), err, n)
	}
	for _, r := range open {
		if len(r.Approvals) != 1 {
			t.Errorf("%s has %d approvals, want 1", r.ID, len(r.Approvals))
		}
	}
}

// TestGroupCommitStaleMemoryDecidesAgain changes a request through a
// second replica after the first one wrote it: the first replica's next
// update, decided at first on what it remembers, is decided again on the
// request as it is, both when it writes and when it refuses.
func TestGroupCommitStaleMemoryDecidesAgain(t *testing.T) {
	m := etcdtest.Start(t)
	a := mustStore(t, m, time.Now)
	b := mustStoreAt(t, m, a.Prefix(), time.Now)
	ctx := context.Background()
	ids := mustRequests(t, a, 2)
	for _, id := range ids {
		if _, _, _, err := b.Update(ctx, id, "", approve("U0CAROL")); err != nil {
			t.Fatal(err)
		}
	}

	// a remembers ids[0] without approvals; its update must keep Carol's.
	calls := 0
	r, _, _, err := a.Update(ctx, ids[0], "click-a", func(r *approval.Request) (approval.Change, error) {
		calls++
		return approve("U0BOB")(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Approvals) != 2 || calls != 2 {
		t.Errorf("approvals %+v after %d calls; want Carol's and Bob's, decided twice", r.Approvals, calls)
	}

	// a would refuse ids[1] as it remembers it; the refusal is checked
	// against the request as it is, which has an approval.
	calls = 0
	_, _, _, err = a.Update(ctx, ids[1], "", func(r *approval.Request) (approval.Change, error) {
		calls++
		if len(r.Approvals) == 0 {
			return approval.Change{}, &approval.Error{Kind: approval.Conflict, Message: "Nothing to execute yet."}
		}
		r.State = approval.Approved
		return approval.Change{Save: true, Events: []approval.Event{{Type: approval.EventExecuting, Actor: approval.ActorBot}}}, nil
	})
	if err != nil || calls != 2 {
		t.Errorf("update on a stale memory: %v after %d calls; want it decided again and done", err, calls)
	}
	if got, _ := a.Get(ctx, ids[1]); got == nil || got.State != approval.Approved {
		t.Errorf("%s is %+v, want Approved", ids[1], got)
	}
	if n, err := a.Verify(ctx); err != nil || n != 2+2+1+1 {
		t.Errorf("Verify = %d, %v; want 6 events, chain intact", n, err)
	}
}

// TestGroupCommitDeliveryAnsweredElsewhere answers a click on one replica
// and delivers it again to another that has never seen it: the second
// takes it for new at first, and answers it as a replay.
func TestGroupCommitDeliveryAnsweredElsewhere(t *testing.T) {
	m := etcdtest.Start(t)
	a := mustStore(t, m, time.Now)
	b := mustStoreAt(t, m, a.Prefix(), time.Now)
	ctx := context.Background()
	id := mustRequests(t, a, 1)[0]
	if _, _, _, err := b.Update(ctx, id, "click-1", approve("U0BOB")); err != nil {
		t.Fatal(err)
	}
	r, reply, replayed, err := a.Update(ctx, id, "click-1", approve("U0BOB"))
	if err != nil || !replayed || reply.Message != "Approved." {
		t.Fatalf("the click again: reply %+v, replayed %v, %v; want the first answer replayed", reply, replayed, err)
	}
	if len(r.Approvals) != 1 {
		t.Errorf("approvals %+v, want one", r.Approvals)
	}
	if _, replayed, err := a.Record(ctx, "click-1", approval.Reply{Message: "other"}, []approval.Event{{Type: approval.EventApprovalRefused, Actor: "U0BOB"}}); err != nil || !replayed {
		t.Errorf("Record with the key answered: replayed %v, %v; want a replay", replayed, err)
	}
	if n, err := a.Verify(ctx); err != nil || n != 2 {
		t.Errorf("Verify = %d, %v; want 2 events", n, err)
	}
}

// TestGroupCommitKeepsRoomForBackground queues a background update of the
// leader behind more clicks than a transaction holds: it still goes in the
// first one.
func TestGroupCommitKeepsRoomForBackground(t *testing.T) {
	m := etcdtest.Start(t)
	s := mustStore(t, m, time.Now)
	s.commits.maxGroup = 4
	leader := mustLead(t, s)
	ids := mustRequests(t, s, 7)
	release := hold(t, s, ids[0])
	var results []<-chan error
	for i, id := range ids[1:] {
		through, key := s, fmt.Sprintf("click-%d", i)
		if i == 0 {
			through, key = leader, ""
		}
		results = append(results, update(through, id, key, approve("U0BOB")))
		waitQueued(t, s, i+1)
	}
	if err := release(); err != nil {
		t.Fatalf("holding update: %v", err)
	}
	for _, done := range results {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	first := revision(t, s, ids[2])
	if got := revision(t, s, ids[1]); got != first {
		t.Errorf("the background update went at revision %d, the first clicks at %d; want it among them", got, first)
	}
	if got := revision(t, s, ids[5]); got == first {
		t.Errorf("the fifth click went with the first three and the background update: want at most four changes a transaction")
	}
}

// TestGroupCommitDeadlineInQueue ends a queued update's deadline: it is
// told that nothing was recorded, which is true: its function never runs
// and its delivery is not remembered.
func TestGroupCommitDeadlineInQueue(t *testing.T) {
	m := etcdtest.Start(t)
	s := mustStore(t, m, time.Now)
	ids := mustRequests(t, s, 2)
	release := hold(t, s, ids[0])
	// Its deadline passes while it waits behind the held update.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ran := make(chan struct{}, 1)
	gaveUp := make(chan error, 1)
	go func() {
		_, _, _, err := s.Update(ctx, ids[1], "click-1", func(r *approval.Request) (approval.Change, error) {
			ran <- struct{}{}
			return approve("U0BOB")(r)
		})
		gaveUp <- err
	}()
	waitQueued(t, s, 1)
	err := <-gaveUp
	if got, want := approval.ErrorMessage(err), "The store (etcd) could not be reached; nothing was recorded."; approval.ErrorKind(err) != approval.Unavailable || got != want {
		t.Errorf("update whose deadline ended in the queue: %v (kind %s), want %q", err, approval.ErrorKind(err), want)
	}
	if err := release(); err != nil {
		t.Fatalf("holding update: %v", err)
	}
	select {
	case <-ran:
		t.Error("the function of an update whose caller gave up in the queue ran")
	default:
	}
	if _, ok, _ := s.Reply(context.Background(), "click-1"); ok {
		t.Error("the update left out remembered its delivery")
	}
}

// inFlight starts an update of id (delivery key) whose transaction is
// being built when it returns: the update goes in the same group as one
// queued after it whose function waits until released, so that its own
// writes are in a transaction not yet sent.
func inFlight(t *testing.T, s *Store, ids []string, ctx context.Context, key string) (done <-chan error, release func() error) {
	t.Helper()
	holding := hold(t, s, ids[0])
	out := make(chan error, 1)
	go func() {
		_, _, _, err := s.Update(ctx, ids[1], key, approve("U0BOB"))
		out <- err
	}()
	waitQueued(t, s, 1)
	running, gate, blocked := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var once sync.Once
	go func() {
		_, _, _, err := s.Update(context.Background(), ids[2], "click-2", func(r *approval.Request) (approval.Change, error) {
			once.Do(func() { close(running) })
			<-gate
			return approve("U0CAROL")(r)
		})
		blocked <- err
	}()
	waitQueued(t, s, 2)
	if err := holding(); err != nil {
		t.Fatalf("holding update: %v", err)
	}
	<-running
	var released sync.Once
	return out, func() error {
		released.Do(func() { close(gate) })
		return <-blocked
	}
}

// TestGroupCommitDeadlineInFlight ends an update's deadline once its
// writes are in a transaction: it may commit, so the caller waits for the
// outcome within the grace and gets it, or past the grace is told the
// outcome is not known, never that nothing was recorded; the transaction
// then commits all the same.
func TestGroupCommitDeadlineInFlight(t *testing.T) {
	t.Run("OutcomeWithinGrace", func(t *testing.T) {
		m := etcdtest.Start(t)
		s := mustStore(t, m, time.Now)
		s.commits.grace = time.Minute
		ids := mustRequests(t, s, 3)
		ctx, cancel := context.WithCancelCause(context.Background())
		done, release := inFlight(t, s, ids, ctx, "click-1")
		cancel(context.DeadlineExceeded)
		if err := release(); err != nil {
			t.Fatalf("the other update: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("update committed within the grace: %v, want its success", err)
		}
		if _, ok, _ := s.Reply(context.Background(), "click-1"); !ok {
			t.Error("the update's delivery is not remembered")
		}
	})
	t.Run("OutcomeUnknown", func(t *testing.T) {
		m := etcdtest.Start(t)
		s := mustStore(t, m, time.Now)
		s.commits.grace = time.Millisecond
		ids := mustRequests(t, s, 3)
		ctx, cancel := context.WithCancelCause(context.Background())
		done, release := inFlight(t, s, ids, ctx, "click-1")
		cancel(context.DeadlineExceeded)
		err := <-done
		if approval.ErrorKind(err) != approval.Unavailable || approval.ErrorMessage(err) != approval.UnconfirmedMessage {
			t.Errorf("update in flight past the grace: %v (kind %s), want %q", err, approval.ErrorKind(err), approval.UnconfirmedMessage)
		}
		if err := release(); err != nil {
			t.Fatalf("the other update: %v", err)
		}
		reply, ok, err := s.Reply(context.Background(), "click-1")
		if err != nil || !ok || reply.Message != "Approved." {
			t.Errorf("the update whose outcome was not known: reply %+v, %v, %v; want it committed", reply, ok, err)
		}
	})
}
