package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"rebootbot/approval"
)

// testCreateManyInstances checks a fleet-sized request is claimed,
// indexed and released as one.
func testCreateManyInstances(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	ids := make([]string, 300)
	for i := range ids {
		ids[i] = fmt.Sprintf("ins-%08d", i)
	}
	id := mustCreate(t, db, NewRequest("U0ALICE", ids...))
	err := db.Create(ctx, NewRequest("U0BOB", "ins-zzzzzzzz", ids[299]), "", approval.Reply{}, nil)
	var held *approval.HeldError
	if !errors.As(err, &held) || held.Instance != ids[299] || held.RequestID != id {
		t.Fatalf("Create on %s = %v, want it held by %s", ids[299], err, id)
	}
	if got := mustAudit(t, db, approval.AuditQuery{Instance: ids[150]}); len(got) != 1 || got[0].RequestID != id {
		t.Errorf("Audit(%s) = %+v, want the requested event of %s", ids[150], got, id)
	}
	mustSetState(t, db, id, approval.Denied, "U0BOB", approval.EventDenied)
	if got := mustAudit(t, db, approval.AuditQuery{Instance: ids[0]}); len(got) != 2 {
		t.Errorf("Audit(%s) found %d events, want 2", ids[0], len(got))
	}
	if got := mustCreate(t, db, NewRequest("U0BOB", ids...)); got != "R-2" {
		t.Errorf("after the release got %s, want R-2", got)
	}
	mustVerify(t, db, 3)
}

// testUpdateTerminalAgainKeepsOthersClaims checks that saving a terminal
// request again (its card updated later) does not free instances another
// request has claimed since.
func testUpdateTerminalAgainKeepsOthersClaims(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	first := mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa"))
	if _, _, _, err := db.Update(ctx, first, "", func(r *approval.Request) (approval.Change, error) {
		r.State, r.Card, r.CardCurrent = approval.Denied, approval.Card{Channel: "C1", TS: "1.2"}, false
		return approval.Change{Save: true, Events: []approval.Event{{Type: approval.EventDenied, Actor: "U0BOB"}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	second := mustCreate(t, db, NewRequest("U0BOB", "ins-aaaaaaaa"))
	if _, _, _, err := db.Update(ctx, first, "", func(r *approval.Request) (approval.Change, error) {
		r.CardCurrent = true
		return approval.Change{Save: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	err := db.Create(ctx, NewRequest("U0CAROL", "ins-aaaaaaaa"), "", approval.Reply{}, nil)
	var held *approval.HeldError
	if !errors.As(err, &held) || held.RequestID != second {
		t.Errorf("Create = %v, want ins-aaaaaaaa held by %s", err, second)
	}
}

// testReplicasNeverForkTheChain runs creates, approvals and records from
// two replicas at once: every change is kept once, sequence numbers have
// no gaps or repeats, and the chain verifies from either replica.
func testReplicasNeverForkTheChain(t *testing.T, b Backend) {
	a := open(t, b)
	r2 := replica(t, b, a)
	replicas := []approval.Store{a, r2}
	ctx := context.Background()
	const requests = 4
	for i := range requests {
		mustCreate(t, a, NewRequest("U0ALICE", fmt.Sprintf("ins-shared%02d", i)))
	}
	const workers, rounds = 6, 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created []string
	)
	for w := range workers {
		db := replicas[w%2]
		wg.Go(func() {
			for i := range rounds {
				user := fmt.Sprintf("U0W%02dR%02d", w, i)
				switch i % 3 {
				case 0: // an approval on a shared request
					id := approval.FormatRequestID(uint64(1 + (w+i)%requests))
					_, _, _, err := db.Update(ctx, id, "click-"+user, func(r *approval.Request) (approval.Change, error) {
						r.Approvals = append(r.Approvals, approval.Approval{User: user, At: T0})
						return approval.Change{Save: true, Events: []approval.Event{{Type: approval.EventApproved, Actor: user}}}, nil
					})
					if err != nil {
						t.Error(err)
					}
				case 1: // a new request on the worker's own instance
					r := NewRequest(user, fmt.Sprintf("ins-w%02dr%02dxx", w, i))
					if err := db.Create(ctx, r, "cmd-"+user, approval.Reply{Message: "posted"}, []approval.Event{Requested(r)}); err != nil {
						t.Error(err)
						continue
					}
					mu.Lock()
					created = append(created, r.ID)
					mu.Unlock()
				default: // a rejected command
					if _, _, err := db.Record(ctx, "cmd-"+user, approval.Reply{Kind: approval.Invalid, Message: "no"}, []approval.Event{{Type: approval.EventRejected, Actor: user}}); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	total := requests + workers*rounds
	for _, db := range replicas {
		mustVerify(t, db, total)
	}
	all := mustAudit(t, r2, approval.AuditQuery{Oldest: true})
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i+1, e.Seq)
		}
	}
	// Request IDs are handed out once each, without gaps.
	slices.SortFunc(created, func(x, y string) int {
		nx, _ := approval.ParseRequestID(x)
		ny, _ := approval.ParseRequestID(y)
		return int(nx) - int(ny)
	})
	for i, id := range created {
		if want := approval.FormatRequestID(uint64(requests + 1 + i)); id != want {
			t.Fatalf("created IDs %v, want R-%d… without gaps", created, requests+1)
		}
	}
	approvals := 0
	for i := range requests {
		r, err := a.Get(ctx, approval.FormatRequestID(uint64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		approvals += len(r.Approvals)
	}
	want := 0
	for i := range rounds {
		if i%3 == 0 {
			want += workers
		}
	}
	if got := countType(all, approval.EventApproved); approvals != want || got != want {
		t.Errorf("requests hold %d approvals and the log %d approved events; want %d", approvals, got, want)
	}
}

func countType(events []approval.Event, typ approval.EventType) int {
	n := 0
	for _, e := range events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

// testReplicasClaimAnInstanceOnce races creates for one instance on two
// replicas: exactly one wins, the others are told who holds it.
func testReplicasClaimAnInstanceOnce(t *testing.T, b Backend) {
	a := open(t, b)
	replicas := []approval.Store{a, replica(t, b, a)}
	ctx := context.Background()
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  []string
		held []*approval.HeldError
	)
	for i := range n {
		db := replicas[i%2]
		wg.Go(func() {
			// Without events, so that the claim alone must decide.
			r := NewRequest(fmt.Sprintf("U0USER%d", i), "ins-contest1")
			err := db.Create(ctx, r, fmt.Sprintf("cmd-%d", i), approval.Reply{}, nil)
			mu.Lock()
			defer mu.Unlock()
			var h *approval.HeldError
			switch {
			case err == nil:
				won = append(won, r.ID)
			case errors.As(err, &h):
				held = append(held, h)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(won) != 1 || len(held) != n-1 {
		t.Fatalf("%d creates won (%v) and %d were refused; want 1 and %d", len(won), won, len(held), n-1)
	}
	for _, h := range held {
		if h.RequestID != won[0] || h.Instance != "ins-contest1" {
			t.Errorf("refused with %+v, want the instance held by %s", *h, won[0])
		}
	}
	if next := mustCreate(t, a, NewRequest("U0EVE", "ins-other001")); next != approval.FormatRequestID(2) {
		t.Errorf("next request got %s, want R-2: a refused create used up a number", next)
	}
}

// testReplicasActOnADeliveryOnce delivers one click to both replicas at
// once, several times over: it acts once and every answer is the same.
func testReplicasActOnADeliveryOnce(t *testing.T, b Backend) {
	a := open(t, b)
	replicas := []approval.Store{a, replica(t, b, a)}
	ctx := context.Background()
	id := mustCreate(t, a, NewRequest("U0ALICE", "ins-aaaaaaaa"))
	const n = 6
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		acted   int
		replies []approval.Reply
	)
	for i := range n {
		db := replicas[i%2]
		wg.Go(func() {
			_, reply, replayed, err := db.Update(ctx, id, "click-1", func(r *approval.Request) (approval.Change, error) {
				r.Approvals = append(r.Approvals, approval.Approval{User: "U0BOB", At: T0})
				r.State = approval.Approved
				// No event: the delivery key alone must decide.
				return approval.Change{Save: true, Reply: approval.Reply{Message: "Approved.", RequestID: id}}, nil
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			if !replayed {
				acted++
			}
			replies = append(replies, reply)
		})
	}
	wg.Wait()
	if acted != 1 {
		t.Errorf("the click acted %d times, want once", acted)
	}
	for _, r := range replies {
		if r != (approval.Reply{Message: "Approved.", RequestID: id}) {
			t.Errorf("reply %+v differs", r)
		}
	}
	if r, _ := a.Get(ctx, id); len(r.Approvals) != 1 {
		t.Errorf("request holds %d approvals, want 1", len(r.Approvals))
	}

	// A command refused before it made a request, delivered to both.
	recorded := 0
	for i := range n {
		db := replicas[i%2]
		wg.Go(func() {
			_, replayed, err := db.Record(ctx, "cmd-1", approval.Reply{Kind: approval.Invalid, Message: fmt.Sprint("answer ", i)}, nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
			}
			if !replayed {
				recorded++
			}
		})
	}
	wg.Wait()
	if recorded != 1 {
		t.Errorf("the command was recorded %d times, want once", recorded)
	}
}

// testReplicasKeepEveryApproval races approvals saved without events on
// two replicas: each one reads the request as the last left it.
func testReplicasKeepEveryApproval(t *testing.T, b Backend) {
	a := open(t, b)
	replicas := []approval.Store{a, replica(t, b, a)}
	ctx := context.Background()
	id := mustCreate(t, a, NewRequest("U0ALICE", "ins-aaaaaaaa"))
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		db := replicas[i%2]
		wg.Go(func() {
			user := fmt.Sprintf("U0APPR%02d", i)
			_, _, _, err := db.Update(ctx, id, "", func(r *approval.Request) (approval.Change, error) {
				r.Approvals = append(r.Approvals, approval.Approval{User: user, At: T0})
				return approval.Change{Save: true}, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	r, err := a.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Approvals) != n {
		t.Errorf("request holds %d approvals, want %d", len(r.Approvals), n)
	}
}
