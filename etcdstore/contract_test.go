package etcdstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
	"rebootbot/etcdstore/etcdtest"
)

// prefixes numbers the prefixes tests work under, so that tests sharing a
// member never see each other's keys.
var prefixes atomic.Int64

// mustStore returns a Store under a new prefix of m.
func mustStore(t testing.TB, m *etcdtest.Member, now func() time.Time) *Store {
	t.Helper()
	return mustStoreAt(t, m, fmt.Sprintf("/test%d/", prefixes.Add(1)), now)
}

// mustStoreAt returns a Store under prefix with a client of its own, as a
// replica would have.
func mustStoreAt(t testing.TB, m *etcdtest.Member, prefix string, now func() time.Time) *Store {
	t.Helper()
	s, err := New(context.Background(), m.Client(t), Options{Prefix: prefix, Now: now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// TestContract runs the Store contract against a single etcd member, with
// pages small enough that lookups cross many of them; the second replica
// is another client on the same prefix.
func TestContract(t *testing.T) {
	setPage(t, &pageSize, 7)
	setPage(t, &verifyPage, 5)
	m := etcdtest.Start(t)
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, now func() time.Time) approval.Store { return mustStore(t, m, now) },
		Replica: func(t *testing.T, s approval.Store) approval.Store {
			return mustStoreAt(t, m, s.(*Store).prefix, time.Now)
		},
	})
}

// setPage makes *page n for the test.
func setPage(t testing.TB, page *int, n int) {
	old := *page
	*page = n
	t.Cleanup(func() { *page = old })
}
