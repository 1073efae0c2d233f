package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"

	bolt "go.etcd.io/bbolt"
)

// fleetRequest returns a request of n instances described as a look-up
// describes them, with runs as an execution leaves them.
func fleetRequest(n int) *approval.Request {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ins-%08d", i)
	}
	r := storetest.NewRequest("U0ALICE", ids...)
	for i := range r.Instances {
		in := &r.Instances[i]
		in.PrivateIPs = []string{fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)}
		in.Tags = map[string]string{"env": "prod", "role": "web", "team": "storefront"}
		r.Runs = append(r.Runs, approval.Run{InstanceID: in.ID, State: approval.RunSucceeded,
			PriorOpRequestID: fmt.Sprintf("6a1f0c2e-0000-4000-8000-%012d", i), CallRequestID: "9b0e5c1d-2f3a-4b6c-8d7e-0123456789ab",
			CalledAt: t0.Add(time.Duration(i) * time.Millisecond), Duration: 21 * time.Second})
	}
	return r
}

// storedRecord returns the bytes request seq is stored as.
func storedRecord(t *testing.T, db *DB, seq uint64) []byte {
	t.Helper()
	var raw []byte
	db.bolt.View(func(tx *bolt.Tx) error {
		raw = append([]byte(nil), tx.Bucket(bucketRequests).Get(u64(seq))...)
		return nil
	})
	return raw
}

func TestFleetRequestIsStoredCompressed(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true})
	r := fleetRequest(100)
	id := mustCreate(t, db, r)
	plain, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	raw := storedRecord(t, db, 1)
	if raw[0] != compressedRecord || len(raw) > len(plain)/4 {
		t.Errorf("a request of 100 instances is stored in %d bytes starting %#x; want it compressed (%#x), at most a quarter of its %d bytes of JSON",
			len(raw), raw[0], compressedRecord, len(plain))
	}
	got, err := db.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("Get(%s) differs from the request stored", id)
	}
}

func TestSmallRequestIsStoredAsItIs(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true})
	r := fleetRequest(1)
	id := mustCreate(t, db, r)
	raw := storedRecord(t, db, 1)
	if raw[0] != '{' || len(raw) > plainRecordMax {
		t.Errorf("a request of one instance is stored in %d bytes starting %q; want its plain JSON", len(raw), raw[:1])
	}
	got, err := db.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("Get(%s) differs from the request stored", id)
	}
}

// TestReadsAndUpgradesLayoutOne opens a file of the first layout, whose
// requests are plain JSON: its requests read as they were, a change
// stores a large one compressed, and the file is marked with the new
// layout so that an older build refuses it rather than misreads it.
func TestReadsAndUpgradesLayoutOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	old := fleetRequest(20)
	old.ID, old.Runs = "R-1", nil
	plain, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		reqs := tx.Bucket(bucketRequests)
		if err := reqs.SetSequence(1); err != nil {
			return err
		}
		if err := reqs.Put(u64(1), plain); err != nil {
			return err
		}
		if err := tx.Bucket(bucketOpenRequests).Put(u64(1), nil); err != nil {
			return err
		}
		for _, in := range old.InstanceIDs() {
			if err := tx.Bucket(bucketOpenInstances).Put([]byte(in), []byte(old.ID)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(metaVersion, []byte("1"))
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open a layout 1 file read-only: %v", err)
	}
	got, err := ro.Get(context.Background(), "R-1")
	ro.Close()
	if err != nil || !reflect.DeepEqual(got, old) {
		t.Fatalf("Get(R-1) from layout 1 = %+v, %v; want the request as stored", got, err)
	}

	db = mustOpenPath(t, path, Options{NoSync: true})
	open, err := db.Open(context.Background())
	if err != nil || len(open) != 1 || !reflect.DeepEqual(open[0], old) {
		t.Fatalf("Open = %v, %v; want R-1 as stored", open, err)
	}
	_, _, _, err = db.Update(context.Background(), "R-1", "", func(r *approval.Request) (approval.Change, error) {
		r.Approvals = append(r.Approvals, approval.Approval{User: "U0BOB", At: t0})
		return approval.Change{Save: true}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if raw := storedRecord(t, db, 1); raw[0] != compressedRecord {
		t.Errorf("R-1 was saved again starting %q; want it compressed", raw[:1])
	}
	if got, err := db.Get(context.Background(), "R-1"); err != nil || len(got.Approvals) != 1 || len(got.Instances) != 20 {
		t.Errorf("Get(R-1) after the change = %+v, %v", got, err)
	}
	var version string
	db.bolt.View(func(tx *bolt.Tx) error { version = string(tx.Bucket(bucketMeta).Get(metaVersion)); return nil })
	if version != schemaVersion {
		t.Errorf("layout version after opening for writing = %q, want %q", version, schemaVersion)
	}
}

func TestRefusesALaterLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bot.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaVersion, []byte("3")) })
	b.Close()
	for _, ro := range []bool{false, true} {
		db, err := Open(path, Options{ReadOnly: ro})
		if err == nil {
			db.Close()
			t.Fatalf("Open(ReadOnly %v) of a layout 3 file succeeded", ro)
		}
		if !strings.Contains(err.Error(), `layout version "3" is not supported`) {
			t.Errorf("Open(ReadOnly %v) = %v; want it to name the layout", ro, err)
		}
	}
}
