// Package bolttest opens bbolt stores for the tests of packages that work
// through package store: a fresh file in the test's temporary directory,
// closed when the test ends.
package bolttest

import (
	"path/filepath"
	"testing"
	"time"

	"rebootbot/internal/testutil"
	"rebootbot/store"
)

// Open opens a new store in t's temporary directory, without fsync: a
// test has no crash to survive. Records stored without a time are stamped
// start, then one second later at each record, so that they read back in
// a predictable order.
func Open(t testing.TB, start time.Time) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{NoSync: true, Now: testutil.Ticker(start, time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
