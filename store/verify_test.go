package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"rebootbot/approval"

	bolt "go.etcd.io/bbolt"
)

// mustLog returns a database whose log holds n events, the i-th by actor
// U0USER<i>.
func mustLog(t testing.TB, n int) *DB {
	t.Helper()
	db := mustOpen(t, Options{NoSync: true, Now: tick(t0)})
	mustAppendBulk(t, db, n, func(i int) (approval.Event, string, []string) {
		return approval.Event{Type: approval.EventApproved, Actor: fmt.Sprintf("U0USER%05d", i+1), RequestID: "R-1"}, "U0ALICE", []string{"ins-aaaaaaaa"}
	})
	return db
}

// tamper changes the raw bucket of events the way someone with the file
// could.
type tamper func(t *testing.T, events *bolt.Bucket)

func editBytes(seq uint64, old, new string) tamper {
	return func(t *testing.T, events *bolt.Bucket) {
		raw := events.Get(u64(seq))
		if !bytes.Contains(raw, []byte(old)) {
			t.Fatalf("record %d has no %q: %s", seq, old, raw)
		}
		mustPut(t, events, seq, bytes.Replace(raw, []byte(old), []byte(new), 1))
	}
}

// rewrite decodes record seq, lets edit change it and stores it in
// canonical form again.
func rewrite(seq uint64, edit func(e *approval.Event)) tamper {
	return func(t *testing.T, events *bolt.Bucket) {
		var e approval.Event
		if err := json.Unmarshal(events.Get(u64(seq)), &e); err != nil {
			t.Fatal(err)
		}
		edit(&e)
		raw, err := e.CanonicalBytes()
		if err != nil {
			t.Fatal(err)
		}
		mustPut(t, events, seq, raw)
	}
}

func remove(seq uint64) tamper {
	return func(t *testing.T, events *bolt.Bucket) {
		if err := events.Delete(u64(seq)); err != nil {
			t.Fatal(err)
		}
	}
}

func mustPut(t *testing.T, events *bolt.Bucket, seq uint64, raw []byte) {
	t.Helper()
	if err := events.Put(u64(seq), raw); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyIntact(t *testing.T) {
	for _, n := range []int{0, 1, 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			db := mustLog(t, n)
			got, err := db.Verify(context.Background())
			if err != nil || got != uint64(n) {
				t.Errorf("Verify = %d, %v; want %d, nil", got, err, n)
			}
		})
	}
}

func TestVerifyFindsFirstBadRecord(t *testing.T) {
	const n = 10
	tests := []struct {
		name    string
		tampers []tamper
		seq     uint64
		reason  string
	}{
		{"EditedContent", []tamper{editBytes(5, "U0USER00005", "U0USER00099")}, 5, "content changed: record 6 holds a different hash of it"},
		{"EditedFirst", []tamper{editBytes(1, "approved", "denied")}, 1, "content changed: record 2"},
		{"EditedLast", []tamper{editBytes(n, "U0USER00010", "U0USER00099")}, n, "content changed: its hash does not match the log's head"},
		{"EditedTwo", []tamper{editBytes(7, "U0USER00007", "U0USER00099"), editBytes(3, "U0USER00003", "U0USER00099")}, 3, "content changed"},
		{"EditedPrevHash", []tamper{rewrite(5, func(e *approval.Event) { e.PrevHash = approval.HashBytes([]byte("forged")) })}, 5, "prev_hash does not match record 4"},
		{"EditedLastPrevHash", []tamper{rewrite(n, func(e *approval.Event) { e.PrevHash = strings.Repeat("0", 64) })}, n, "prev_hash does not match record 9"},
		{"FirstWithPrevHash", []tamper{rewrite(1, func(e *approval.Event) { e.PrevHash = strings.Repeat("0", 64) })}, 1, "the first record has a prev_hash"},
		{"InvalidJSON", []tamper{editBytes(4, "}", "")}, 4, "record is not valid JSON"},
		{"SeqField", []tamper{rewrite(6, func(e *approval.Event) { e.Seq = 7 })}, 6, "seq field 7 stored under key 6"},
		{"NoSeqField", []tamper{editBytes(6, `"seq":6,`, "")}, 6, "record has no seq field"},
		{"Deleted", []tamper{remove(5)}, 5, "sequence gap: record 5 is missing"},
		{"DeletedFirst", []tamper{remove(1)}, 1, "sequence gap: record 1 is missing"},
		{"DeletedLast", []tamper{remove(n)}, n, "record 10 is missing: the log ends at 9 but its head is 10"},
		{"DeletedAll", []tamper{remove(1), remove(2), remove(3), remove(4), remove(5), remove(6), remove(7), remove(8), remove(9), remove(10)}, 1, "record 1 is missing"},
		{"ForeignKey", []tamper{func(t *testing.T, events *bolt.Bucket) {
			if err := events.Put([]byte("abc"), []byte("{}")); err != nil {
				t.Fatal(err)
			}
		}}, n + 1, "a record is stored under key 616263, which is not a sequence number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := mustLog(t, n)
			err := db.bolt.Update(func(tx *bolt.Tx) error {
				for _, f := range tt.tampers {
					f(t, tx.Bucket(bucketEvents))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			good, err := db.Verify(context.Background())
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

// TestVerifyAcrossPages checks a record edited at the end of one read
// transaction is found through the first record of the next.
func TestVerifyAcrossPages(t *testing.T) {
	setPage(t, &verifyPage, 4)
	db := mustLog(t, 10)
	seq := uint64(8)
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		editBytes(seq, fmt.Sprintf("U0USER%05d", seq), "U0USER99999")(t, tx.Bucket(bucketEvents))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Verify(context.Background())
	var ve *approval.VerifyError
	if !errors.As(err, &ve) || ve.Seq != seq {
		t.Errorf("Verify = %v, want record %d named", err, seq)
	}
}

func TestVerifyIntactAcrossPages(t *testing.T) {
	setPage(t, &verifyPage, 3)
	db := mustLog(t, 10)
	if n, err := db.Verify(context.Background()); err != nil || n != 10 {
		t.Errorf("Verify = %d, %v; want 10, nil", n, err)
	}
}
