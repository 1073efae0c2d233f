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

// TestContract runs the Store contract against the bbolt store, with pages
// small enough that its lookups cross many of them. One process holds the
// file, so the suite's second replica is the same DB.
func TestContract(t *testing.T) {
	setPage(t, &pageSize, 7)
	setPage(t, &verifyPage, 5)
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, now func() time.Time) approval.Store {
			return mustOpenPath(t, filepath.Join(t.TempDir(), "bot.db"), Options{NoSync: true, Now: now})
		},
	})
}

func TestCheckCancelled(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.Check(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Check: got %v, want context.Canceled", err)
	}
}
