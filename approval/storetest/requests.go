package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"rebootbot/approval"
)

func testCreateAssignsSequentialIDs(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	for i, want := range []string{"R-1", "R-2", "R-3"} {
		r := NewRequest("U0ALICE", fmt.Sprintf("ins-0000000%d", i))
		if got := mustCreate(t, db, r); got != want {
			t.Fatalf("Create #%d: got ID %q, want %q", i+1, got, want)
		}
		got, err := db.Get(ctx, want)
		if err != nil {
			t.Fatalf("Get(%s): %v", want, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("Get(%s):\n got %+v\nwant %+v", want, got, r)
		}
	}
	if got, err := db.Get(ctx, "r-2"); err != nil || got.ID != "R-2" {
		t.Errorf("Get(r-2) = %v, %v; want R-2", got, err)
	}
}

func testCreateStoresEventsAndReply(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	r := NewRequest("U0ALICE", "ins-aaaaaaaa")
	events := []approval.Event{Requested(r), {Type: approval.EventApproved, Actor: "U0BOB", RequestID: "R-999"}}
	if err := db.Create(ctx, r, "trigger-1", approval.Reply{Message: "posted"}, events); err != nil {
		t.Fatal(err)
	}
	if events[0].Seq != 0 || events[0].RequestID != "" {
		t.Errorf("Create modified the caller's events: %+v", events[0])
	}
	got := mustAudit(t, db, approval.AuditQuery{Oldest: true})
	if len(got) != 2 {
		t.Fatalf("got %d events, want 2", len(got))
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.RequestID != "R-1" {
			t.Errorf("event %d: seq %d request %q; want seq %d request R-1", i, e.Seq, e.RequestID, i+1)
		}
	}
	if got[0].PrevHash != "" || got[1].PrevHash == "" {
		t.Errorf("prev hashes %q, %q: want empty then set", got[0].PrevHash, got[1].PrevHash)
	}
	reply, ok, err := db.Reply(ctx, "trigger-1")
	if want := (approval.Reply{Message: "posted", RequestID: "R-1"}); err != nil || !ok || reply != want {
		t.Errorf("Reply = %+v, %v, %v; want %+v", reply, ok, err, want)
	}
	if _, ok, _ := db.Reply(ctx, "trigger-2"); ok {
		t.Error("Reply(trigger-2) found a reply that was never stored")
	}
}

func testCreateRefusesHeldInstance(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa", "ins-bbbbbbbb"))

	r := NewRequest("U0BOB", "ins-cccccccc", "ins-bbbbbbbb")
	err := db.Create(ctx, r, "trigger-2", approval.Reply{Message: "posted"}, []approval.Event{Requested(r)})
	var held *approval.HeldError
	if !errors.As(err, &held) {
		t.Fatalf("Create: got %v, want a *HeldError", err)
	}
	if want := (approval.HeldError{Instance: "ins-bbbbbbbb", RequestID: "R-1"}); *held != want {
		t.Errorf("HeldError = %+v, want %+v", *held, want)
	}
	if r.ID != "" {
		t.Errorf("refused request got ID %q", r.ID)
	}
	if _, ok, _ := db.Reply(ctx, "trigger-2"); ok {
		t.Error("refused Create remembered its reply")
	}
	if got := mustAudit(t, db, approval.AuditQuery{}); len(got) != 1 {
		t.Errorf("refused Create left %d events, want only the first request's 1", len(got))
	}
	// The sequence was not used up: the next request is R-2.
	if got := mustCreate(t, db, NewRequest("U0BOB", "ins-cccccccc")); got != "R-2" {
		t.Errorf("next request got %s, want R-2", got)
	}
}

func testCreateReplayedKeyStoresNothing(t *testing.T, b Backend) {
	tests := []struct {
		name     string
		reply    approval.Reply
		wantKind approval.Kind
	}{
		{"EarlierSuccess", approval.Reply{Message: "R-1 posted."}, approval.Conflict},
		{"EarlierError", approval.Reply{Kind: approval.Invalid, Message: "A reason is required."}, approval.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := open(t, b)
			ctx := context.Background()
			if _, _, err := db.Record(ctx, "trigger-1", tt.reply, nil); err != nil {
				t.Fatal(err)
			}
			r := NewRequest("U0ALICE", "ins-aaaaaaaa")
			err := db.Create(ctx, r, "trigger-1", approval.Reply{Message: "again"}, []approval.Event{Requested(r)})
			if got := approval.ErrorKind(err); got != tt.wantKind {
				t.Fatalf("Create: got %v (kind %s), want kind %s", err, got, tt.wantKind)
			}
			if got := approval.ErrorMessage(err); got != tt.reply.Message {
				t.Errorf("message %q, want the earlier %q", got, tt.reply.Message)
			}
			if open, _ := db.Open(ctx); len(open) != 0 {
				t.Errorf("replayed Create stored %d requests", len(open))
			}
		})
	}
}

func testCreateTerminalHoldsNothing(t *testing.T, b Backend) {
	db := open(t, b)
	r := NewRequest("U0ALICE", "ins-aaaaaaaa")
	r.State, r.CardCurrent = approval.Rejected, true // rejected before any card: settled
	mustCreate(t, db, r)
	if got := mustCreate(t, db, NewRequest("U0BOB", "ins-aaaaaaaa")); got != "R-2" {
		t.Errorf("got %s, want R-2", got)
	}
	open, err := db.Open(context.Background())
	if err != nil || len(open) != 1 || open[0].ID != "R-2" {
		t.Errorf("Open = %v, %v; want only R-2", open, err)
	}
}

func testCreateRefusesRequestWithoutState(t *testing.T, b Backend) {
	db := open(t, b)
	r := NewRequest("U0ALICE", "ins-aaaaaaaa")
	r.State = ""
	if err := db.Create(context.Background(), r, "", approval.Reply{}, nil); err == nil {
		t.Error("Create accepted a request without a state")
	}
	if err := db.Create(context.Background(), nil, "", approval.Reply{}, nil); err == nil {
		t.Error("Create accepted a nil request")
	}
}

func testUpdateReleasesInstancesOnlyWhenTerminal(t *testing.T, b Backend) {
	tests := []struct {
		state    approval.State
		released bool
	}{
		{approval.Approved, false},
		{approval.Executing, false},
		{approval.Succeeded, true},
		{approval.Failed, true},
		{approval.PartiallyFailed, true},
		{approval.Denied, true},
		{approval.Cancelled, true},
		{approval.Expired, true},
		{approval.Rejected, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			db := open(t, b)
			ctx := context.Background()
			id := mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa", "ins-bbbbbbbb"))
			mustSetState(t, db, id, tt.state, "U0BOB", approval.EventApproved)

			r := NewRequest("U0CAROL", "ins-bbbbbbbb")
			err := db.Create(ctx, r, "", approval.Reply{}, nil)
			var held *approval.HeldError
			if got := !errors.As(err, &held); got != tt.released {
				t.Errorf("second request on the instance: got err %v, want released=%v", err, tt.released)
			}
			open, err := db.Open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.ContainsFunc(open, func(r *approval.Request) bool { return r.ID == id }); got == tt.released {
				t.Errorf("%s in Open() = %v, want %v", id, got, !tt.released)
			}
		})
	}
}

func testUpdateReplaysDelivery(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	id := mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa"))
	calls := 0
	approve := func(r *approval.Request) (approval.Change, error) {
		calls++
		r.Approvals = append(r.Approvals, approval.Approval{User: "U0BOB", At: T0})
		r.State = approval.Approved
		return approval.Change{
			Save:   true,
			Events: []approval.Event{{Type: approval.EventApproved, Actor: "U0BOB"}},
			Reply:  approval.Reply{Message: "Approved.", RequestID: id},
		}, nil
	}
	r1, reply1, replayed1, err := db.Update(ctx, id, "click-1", approve)
	if err != nil || replayed1 {
		t.Fatalf("first Update: replayed %v, err %v", replayed1, err)
	}
	r2, reply2, replayed2, err := db.Update(ctx, id, "click-1", approve)
	if err != nil || !replayed2 {
		t.Fatalf("second Update: replayed %v, err %v; want a replay", replayed2, err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times, want 1", calls)
	}
	if reply1 != reply2 {
		t.Errorf("replayed reply %+v, want %+v", reply2, reply1)
	}
	if !reflect.DeepEqual(r1, r2) {
		t.Errorf("replay returned %+v, want the stored %+v", r2, r1)
	}
	if got := mustAudit(t, db, approval.AuditQuery{}); len(got) != 2 {
		t.Errorf("got %d events, want 2 (requested, approved once)", len(got))
	}
}

func testUpdateErrorWritesNothing(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	id := mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa"))
	before, _ := db.Get(ctx, id)
	conflict := approval.Errorf(approval.Conflict, "%s is already approved.", id)
	r, _, _, err := db.Update(ctx, id, "click-1", func(r *approval.Request) (approval.Change, error) {
		r.State = approval.Cancelled
		return approval.Change{Save: true, Events: []approval.Event{{Type: approval.EventCancelled, Actor: "U0ALICE"}}}, conflict
	})
	if !errors.Is(err, conflict) || r != nil {
		t.Fatalf("Update = %v, %v; want nil, the fn's error", r, err)
	}
	after, _ := db.Get(ctx, id)
	if !reflect.DeepEqual(after, before) {
		t.Errorf("request changed: %+v", after)
	}
	if got := mustAudit(t, db, approval.AuditQuery{}); len(got) != 1 {
		t.Errorf("got %d events, want only the requested one", len(got))
	}
	if _, ok, _ := db.Reply(ctx, "click-1"); ok {
		t.Error("failed Update remembered its key")
	}
	// The instance is still held.
	if err := db.Create(ctx, NewRequest("U0BOB", "ins-aaaaaaaa"), "", approval.Reply{}, nil); err == nil {
		t.Error("instance was released by a failed Update")
	}
}

func testUpdateWithoutSaveAppendsOnlyEvents(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	id := mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa"))
	_, reply, _, err := db.Update(ctx, id, "click-1", func(r *approval.Request) (approval.Change, error) {
		r.State = approval.Denied
		return approval.Change{
			Events: []approval.Event{{Type: approval.EventApprovalRefused, Actor: "U0EVE"}},
			Reply:  approval.Reply{Kind: approval.Forbidden, Message: "You may not approve this."},
		}, nil
	})
	if err != nil || reply.Kind != approval.Forbidden {
		t.Fatalf("Update = %+v, %v", reply, err)
	}
	if got, _ := db.Get(ctx, id); got.State != approval.Pending {
		t.Errorf("state %s, want the unsaved change dropped", got.State)
	}
	got := mustAudit(t, db, approval.AuditQuery{RequestID: id})
	if len(got) != 2 || got[0].Type != approval.EventApprovalRefused || got[0].RequestID != id {
		t.Errorf("events %+v; want approval_refused on %s first", got, id)
	}
}

func testUpdateRefusesChangedID(t *testing.T, b Backend) {
	db := open(t, b)
	id := mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa"))
	_, _, _, err := db.Update(context.Background(), id, "", func(r *approval.Request) (approval.Change, error) {
		r.ID = "R-77"
		return approval.Change{Save: true}, nil
	})
	if err == nil {
		t.Error("Update saved a request under a changed ID")
	}
}

func testNotFound(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa"))
	tests := []struct{ id, want string }{
		{"R-42", "No request R-42."},
		{"r-42", "No request R-42."},
		{"R-0", "No request R-0."},
		{"bogus", "No request bogus."},
		{"", "No request ."},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			_, err := db.Get(ctx, tt.id)
			if got := approval.ErrorKind(err); got != approval.NotFound {
				t.Errorf("Get kind %s, want not_found", got)
			}
			if got := approval.ErrorMessage(err); got != tt.want {
				t.Errorf("Get message %q, want %q", got, tt.want)
			}
			called := false
			_, _, _, err = db.Update(ctx, tt.id, "k-"+tt.id, func(*approval.Request) (approval.Change, error) {
				called = true
				return approval.Change{}, nil
			})
			if approval.ErrorKind(err) != approval.NotFound || called {
				t.Errorf("Update = %v (fn called %v), want NotFound without calling fn", err, called)
			}
		})
	}
}

func testRecordReplays(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	reply := approval.Reply{Kind: approval.Invalid, Message: "ins-xyz is not an instance ID."}
	rejected := []approval.Event{{Type: approval.EventRejected, Actor: "U0ALICE", Details: approval.Details{Reason: "ins-xyz"}}}
	got, replayed, err := db.Record(ctx, "trigger-1", reply, rejected)
	if err != nil || replayed || got != reply {
		t.Fatalf("Record = %+v, %v, %v", got, replayed, err)
	}
	got, replayed, err = db.Record(ctx, "trigger-1", approval.Reply{Message: "other"}, rejected)
	if err != nil || !replayed || got != reply {
		t.Fatalf("second Record = %+v, %v, %v; want the earlier reply replayed", got, replayed, err)
	}
	if events := mustAudit(t, db, approval.AuditQuery{}); len(events) != 1 {
		t.Errorf("got %d events, want 1", len(events))
	}
	// Without a key nothing is remembered and every call appends.
	for range 2 {
		if _, _, err := db.Record(ctx, "", approval.Reply{}, rejected); err != nil {
			t.Fatal(err)
		}
	}
	if events := mustAudit(t, db, approval.AuditQuery{}); len(events) != 3 {
		t.Errorf("got %d events, want 3", len(events))
	}
}

func testOpenListsPendingOldestFirst(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	for _, in := range []string{"ins-aaaaaaaa", "ins-bbbbbbbb", "ins-cccccccc", "ins-dddddddd"} {
		mustCreate(t, db, NewRequest("U0ALICE", in))
	}
	mustSetState(t, db, "R-2", approval.Denied, "U0BOB", approval.EventDenied)
	mustSetState(t, db, "R-3", approval.Approved, "U0BOB", approval.EventApproved)
	open, err := db.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range open {
		got = append(got, r.ID)
	}
	if want := []string{"R-1", "R-3", "R-4"}; !slices.Equal(got, want) {
		t.Errorf("Open = %v, want %v", got, want)
	}
}

func testCancelledContextWritesNothing(t *testing.T, b Backend) {
	db := open(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := NewRequest("U0ALICE", "ins-aaaaaaaa")
	checks := map[string]error{
		"Create": db.Create(ctx, r, "k", approval.Reply{}, []approval.Event{Requested(r)}),
		"Update": func() error {
			_, _, _, err := db.Update(ctx, "R-1", "", func(*approval.Request) (approval.Change, error) { return approval.Change{}, nil })
			return err
		}(),
		"Record": func() error { _, _, err := db.Record(ctx, "k", approval.Reply{}, nil); return err }(),
		"Reply":  func() error { _, _, err := db.Reply(ctx, "k"); return err }(),
		"Get":    func() error { _, err := db.Get(ctx, "R-1"); return err }(),
		"Open":   func() error { _, err := db.Open(ctx); return err }(),
		"Audit":  db.Audit(ctx, approval.AuditQuery{}, func(*approval.Event) error { return nil }),
		"Verify": func() error { _, err := db.Verify(ctx); return err }(),
	}
	for name, err := range checks {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: got %v, want context.Canceled", name, err)
		}
	}
	if got := mustAudit(t, db, approval.AuditQuery{}); len(got) != 0 {
		t.Errorf("got %d events after cancelled calls", len(got))
	}
}

// testConcurrentApprovals checks that approvals racing on one request are
// all kept: each Update reads the request inside its own transaction.
func testConcurrentApprovals(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	id := mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa"))
	const approvers = 8
	var wg sync.WaitGroup
	for i := range approvers {
		wg.Go(func() {
			user := fmt.Sprintf("U0APPR%02d", i)
			_, _, _, err := db.Update(ctx, id, "click-"+user, func(r *approval.Request) (approval.Change, error) {
				r.Approvals = append(r.Approvals, approval.Approval{User: user, At: T0})
				return approval.Change{Save: true, Events: []approval.Event{{Type: approval.EventApproved, Actor: user}}}, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	r, err := db.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(r.Approvals); got != approvers {
		t.Errorf("got %d approvals, want %d", got, approvers)
	}
	if n, err := db.Verify(ctx); err != nil || n != approvers+1 {
		t.Errorf("Verify = %d, %v; want %d intact events", n, err, approvers+1)
	}
}

func testOpenKeepsUnsettledRequests(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	id := mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa"))
	save := func(fn func(r *approval.Request)) {
		t.Helper()
		if _, _, _, err := db.Update(ctx, id, "", func(r *approval.Request) (approval.Change, error) {
			fn(r)
			return approval.Change{Save: true}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	openIDs := func() []string {
		t.Helper()
		open, err := db.Open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range open {
			ids = append(ids, r.ID)
		}
		return ids
	}
	// Denied with a card that still shows "Pending": the instance is free,
	// but the request stays listed until its card is updated.
	save(func(r *approval.Request) {
		r.State, r.Card, r.CardCurrent = approval.Denied, approval.Card{Channel: "C1", TS: "1.2"}, false
	})
	if got := openIDs(); !slices.Equal(got, []string{id}) {
		t.Errorf("Open with a card owed = %v, want [%s]", got, id)
	}
	if err := db.Create(ctx, NewRequest("U0BOB", "ins-aaaaaaaa"), "", approval.Reply{}, nil); err != nil {
		t.Errorf("the denied request still holds its instance: %v", err)
	}
	save(func(r *approval.Request) { r.CardCurrent = true })
	if got := openIDs(); slices.Contains(got, id) {
		t.Errorf("Open after the card was updated = %v, want %s gone", got, id)
	}
}
