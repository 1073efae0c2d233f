package store

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
	"rebootbot/internal/testutil"

	bolt "go.etcd.io/bbolt"
)

// t0 is when the tests' clocks start.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// mustOpen opens a fresh database in t.TempDir, closed when the test ends.
func mustOpen(t testing.TB, opts Options) *DB {
	t.Helper()
	return mustOpenPath(t, filepath.Join(t.TempDir(), "bot.db"), opts)
}

// mustOpenPath opens the database at path, closed when the test ends; the
// file is then checked with bbolt's Tx.Check.
func mustOpenPath(t testing.TB, path string, opts Options) *DB {
	t.Helper()
	db, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	checkAtEnd(t, path)
	t.Cleanup(func() { db.Close() })
	return db
}

// checkedFiles holds the paths whose check checkAtEnd has set up, so that
// a file a test opens twice is checked once, after both are closed.
var checkedFiles sync.Map

// checkAtEnd runs bbolt's consistency check (Tx.Check: every page
// reachable once, none both free and in use, keys in order) on the file at
// path when the test ends. Cleanups run last-registered first, so the
// check runs after the handles opened later in the test are closed.
func checkAtEnd(t testing.TB, path string) {
	t.Helper()
	if _, dup := checkedFiles.LoadOrStore(path, true); dup {
		return
	}
	t.Cleanup(func() {
		defer checkedFiles.Delete(path)
		b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
		if err != nil {
			t.Errorf("open %s for bbolt's check: %v", path, err)
			return
		}
		defer b.Close()
		err = b.View(func(tx *bolt.Tx) error {
			var errs []error
			for err := range tx.Check() {
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		})
		if err != nil {
			t.Errorf("bbolt's check of %s: %v", path, err)
		}
	})
}

// tick returns a clock for Options.Now that moves one second a call.
func tick(start time.Time) func() time.Time { return testutil.Ticker(start, time.Second) }

// mustCreate stores r with its requested event and returns its ID.
func mustCreate(t testing.TB, db *DB, r *approval.Request) string {
	t.Helper()
	if err := db.Create(context.Background(), r, "", approval.Reply{}, []approval.Event{storetest.Requested(r)}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return r.ID
}

// mustAppendBulk appends n events in batches of large transactions,
// through the same appender the Store methods use; event(i) returns the
// i-th event (from 0) and the requester and instances of its request.
func mustAppendBulk(t testing.TB, db *DB, n int, event func(i int) (approval.Event, string, []string)) {
	t.Helper()
	const batch = 20000
	for start := 0; start < n; start += batch {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			app := db.appender(tx)
			for i := start; i < min(start+batch, n); i++ {
				e, requester, instances := event(i)
				if _, err := app.append(e, requester, instances); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("append events %d…: %v", start, err)
		}
	}
}

// setPage makes *page n for the test, so that small logs cross pages.
func setPage(t testing.TB, page *int, n int) {
	old := *page
	*page = n
	t.Cleanup(func() { *page = old })
}
