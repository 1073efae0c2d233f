package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"

	bolt "go.etcd.io/bbolt"
)

// TestContract runs the Store contract against the bbolt store, with pages
// small enough that its lookups cross many of them. One process holds the
// file, so the suite's second replica is the same DB.
func TestContract(t *testing.T) {
	setPage(t, &pageSize, 7)
	setPage(t, &verifyPage, 5)
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, now func() time.Time) approval.Store {
			db := mustOpenPath(t, filepath.Join(t.TempDir(), "bot.db"), Options{NoSync: true, Now: now})
			t.Cleanup(func() { checkFile(t, db) })
			return db
		},
	})
}

// checkFile runs bbolt's consistency check over the file.
func checkFile(t *testing.T, db *DB) {
	t.Helper()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Errorf("bbolt check: %v", err)
	}
}

func TestCheckCancelled(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.Check(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Check: got %v, want context.Canceled", err)
	}
}
