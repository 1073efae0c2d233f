package store

import (
	"context"
	"fmt"
	"testing"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
)

// TestDecodedRequestsAreCopies reads a small request, kept decoded after
// its first read, several times: each read is a copy of its own, and a
// read after an update sees the update.
func TestDecodedRequestsAreCopies(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, Options{NoSync: true})
	r := storetest.NewRequest("U0BOB", "ins-bbbbbbbb")
	if err := db.Create(ctx, r, "", approval.Reply{}, nil); err != nil {
		t.Fatal(err)
	}
	first, err := db.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	first.Reason = "changed by a reader"
	first.Instances[0].Name = "changed by a reader"
	second, err := db.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if second.Reason != r.Reason || second.Instances[0].Name != r.Instances[0].Name {
		t.Fatalf("a read saw another reader's changes: reason %q, instance %q", second.Reason, second.Instances[0].Name)
	}
	if _, _, _, err := db.Update(ctx, r.ID, "", func(s *approval.Request) (approval.Change, error) {
		s.Reason = "updated"
		return approval.Change{Save: true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	third, err := db.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if third.Reason != "updated" {
		t.Errorf("read after the update: reason %q, want %q", third.Reason, "updated")
	}
}

// TestLargeRequestsNotKeptDecoded checks that the requests of a fleet are
// not kept decoded.
func TestLargeRequestsNotKeptDecoded(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t, Options{NoSync: true})
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("ins-%08x", i)
	}
	r := storetest.NewRequest("U0BOB", ids...)
	if err := db.Create(ctx, r, "", approval.Reply{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	seq, _ := approval.ParseRequestID(r.ID)
	db.decoded.mu.Lock()
	_, kept := db.decoded.entries[seq]
	db.decoded.mu.Unlock()
	if kept {
		t.Errorf("a request of %d instances was kept decoded", len(ids))
	}
}
