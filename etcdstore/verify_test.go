package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
	"rebootbot/etcdstore/etcdtest"
)

// TestVerifyFindsFirstBadRecord edits the keys of a log of 10 events as
// someone with write access to the cluster could, and checks Verify names
// the same record the bbolt store would.
func TestVerifyFindsFirstBadRecord(t *testing.T) {
	setPage(t, &verifyPage, 4)
	m := etcdtest.Start(t)
	const n = 10
	edit := func(seq uint64, old, new string) func(t *testing.T, s *Store) {
		return func(t *testing.T, s *Store) {
			resp, err := s.client.Get(context.Background(), s.eventKey(seq))
			if err != nil || len(resp.Kvs) != 1 || !strings.Contains(string(resp.Kvs[0].Value), old) {
				t.Fatalf("record %d: %v %v", seq, resp, err)
			}
			mustPut(t, s, s.eventKey(seq), strings.Replace(string(resp.Kvs[0].Value), old, new, 1))
		}
	}
	remove := func(seq uint64) func(t *testing.T, s *Store) {
		return func(t *testing.T, s *Store) {
			if _, err := s.client.Delete(context.Background(), s.eventKey(seq)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, s *Store)
		seq    uint64
		reason string
	}{
		{"EditedContent", edit(5, "U0USER00005", "U0USER00099"), 5, "content changed: record 6 holds a different hash of it"},
		{"EditedAcrossPages", edit(8, "U0USER00008", "U0USER00099"), 8, "content changed: record 9"},
		{"EditedLast", edit(n, "U0USER00010", "U0USER00099"), n, "content changed: its hash does not match the log's head"},
		{"EditedPrevHash", edit(5, `"prev_hash":"`, `"prev_hash":"0`), 5, "prev_hash does not match record 4"},
		{"InvalidJSON", edit(4, "}", ""), 4, "record is not valid JSON"},
		{"Deleted", remove(5), 5, "sequence gap: record 5 is missing"},
		{"DeletedLast", remove(n), n, "record 10 is missing: the log ends at 9 but its head is 10"},
		{"ForeignKey", func(t *testing.T, s *Store) { mustPut(t, s, s.eventPrefix()+"abc", "{}") }, n + 1, `a record is stored under key "`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustLog(t, m, n)
			if got, err := s.Verify(context.Background()); err != nil || got != n {
				t.Fatalf("Verify before tampering = %d, %v", got, err)
			}
			tt.tamper(t, s)
			good, err := s.Verify(context.Background())
			var ve *approval.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %d, %v; want a *VerifyError", good, err)
			}
			if ve.Seq != tt.seq || !strings.Contains(ve.Reason, tt.reason) {
				t.Errorf("VerifyError{Seq: %d, Reason: %q}, want seq %d and a reason containing %q", ve.Seq, ve.Reason, tt.seq, tt.reason)
			}
			if good != tt.seq-1 {
				t.Errorf("Verify counted %d good records, want %d", good, tt.seq-1)
			}
		})
	}
}

// mustLog returns a Store whose log holds n events, the i-th by actor
// U0USER<i>.
func mustLog(t *testing.T, m *etcdtest.Member, n int) *Store {
	t.Helper()
	s := mustStore(t, m, storetest.Tick(storetest.T0))
	events := make([]approval.Event, n)
	for i := range events {
		events[i] = approval.Event{Type: approval.EventApproved, Actor: fmt.Sprintf("U0USER%05d", i+1)}
	}
	if _, _, err := s.Record(context.Background(), "", approval.Reply{}, events); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustPut(t *testing.T, s *Store, key, value string) {
	t.Helper()
	if _, err := s.client.Put(context.Background(), key, value); err != nil {
		t.Fatal(err)
	}
}

// TestStoreUnreachable checks that with the cluster gone every call fails
// within its context's deadline (and the grace for a transaction sent) as
// Unavailable, with a sentence a Slack user can be shown that is true:
// nothing was recorded, or, for a transaction that was sent, that it may
// not have been.
func TestStoreUnreachable(t *testing.T) {
	m := etcdtest.Start(t)
	s := mustStore(t, m, time.Now)
	id := mustCreateWith(t, s, storetest.NewRequest("U0ALICE", "ins-aaaaaaaa"))
	m.Stop()

	calls := map[string]func(ctx context.Context) error{
		"Create": func(ctx context.Context) error {
			return s.Create(ctx, storetest.NewRequest("U0BOB", "ins-bbbbbbbb"), "cmd-1", approval.Reply{}, nil)
		},
		"Update": func(ctx context.Context) error {
			_, _, _, err := s.Update(ctx, id, "click-1", func(r *approval.Request) (approval.Change, error) { return approval.Change{Save: true}, nil })
			return err
		},
		"Record": func(ctx context.Context) error { _, _, err := s.Record(ctx, "k", approval.Reply{}, nil); return err },
		"Reply":  func(ctx context.Context) error { _, _, err := s.Reply(ctx, "k"); return err },
		"Get":    func(ctx context.Context) error { _, err := s.Get(ctx, id); return err },
		"Open":   func(ctx context.Context) error { _, err := s.Open(ctx); return err },
		"Audit": func(ctx context.Context) error {
			return s.Audit(ctx, approval.AuditQuery{Limit: 10}, func(*approval.Event) error { return nil })
		},
		"Verify": func(ctx context.Context) error { _, err := s.Verify(ctx); return err },
		"Check":  s.Check,
	}
	// Update goes first, while the store still remembers the request
	// from its creation; a failed call makes it forget.
	names := append([]string{"Update"}, slices.DeleteFunc(slices.Sorted(maps.Keys(calls)), func(n string) bool { return n == "Update" })...)
	for _, name := range names {
		call := calls[name]
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %v with the cluster down", name, d)
		}
		if approval.ErrorKind(err) != approval.Unavailable {
			t.Errorf("%s with the cluster down: %v (kind %s), want unavailable", name, err, approval.ErrorKind(err))
		}
		want := "The store (etcd) could not be reached; nothing was recorded."
		if name == "Update" {
			// Decided on what the store remembers of the request, the
			// update was sent: it may have reached the cluster.
			want = approval.UnconfirmedMessage
		}
		if got := approval.ErrorMessage(err); got != want {
			t.Errorf("%s: message %q, want %q", name, got, want)
		}
	}
}
