package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
)

func TestReopenContinuesSequencesAndChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.db")
	db, err := Open(path, Options{Now: tick(t0)})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, storetest.NewRequest("U0ALICE", "ins-aaaaaaaa"))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = mustOpenPath(t, path, Options{Now: tick(t0.Add(time.Hour))})
	if got := mustCreate(t, db, storetest.NewRequest("U0BOB", "ins-bbbbbbbb")); got != "R-2" {
		t.Errorf("got %s after reopening, want R-2", got)
	}
	// R-1 still holds its instance.
	if err := db.Create(context.Background(), storetest.NewRequest("U0BOB", "ins-aaaaaaaa"), "", approval.Reply{}, nil); err == nil {
		t.Error("claim was lost across a reopen")
	}
	n, err := db.Verify(context.Background())
	if err != nil || n != 2 {
		t.Errorf("Verify = %d, %v; want 2 intact events", n, err)
	}
	if err := db.Check(context.Background()); err != nil {
		t.Errorf("Check: %v", err)
	}
	if got := db.Path(); got != path {
		t.Errorf("Path = %q, want %q", got, path)
	}
}

func TestOpenFailsFastWhenLocked(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true})
	// bbolt's flock belongs to the open file description, so a second Open
	// in this process contends like another process would.
	_, err := Open(db.Path(), Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: got %v, want ErrLocked", err)
	}
	_, err = Open(db.Path(), Options{Timeout: 100 * time.Millisecond, ReadOnly: true})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("read-only Open: got %v, want ErrLocked", err)
	}
}

func TestOpenReadOnlyRefusesForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not-a-db")
	if _, err := Open(path, Options{ReadOnly: true}); err == nil {
		t.Error("read-only Open of a missing file succeeded")
	}
}
