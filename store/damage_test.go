package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"rebootbot/approval"

	bolt "go.etcd.io/bbolt"
)

// mustDamagedFiles writes a database of a few thousand events and copies
// of it damaged in the ways disks and people damage files; it returns the
// good file's path and the damaged ones' by name.
func mustDamagedFiles(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	db, err := Open(good, Options{NoSync: true, Now: tick(t0)})
	if err != nil {
		t.Fatal(err)
	}
	mustAppendBulk(t, db, 3000, func(i int) (approval.Event, string, []string) {
		return approval.Event{Type: approval.EventApproved, Actor: fmt.Sprintf("U0USER%05d", i+1), RequestID: "R-1"}, "U0ALICE", []string{"ins-aaaaaaaa"}
	})
	var eventsRoot, freelist, hwm, pageSize int
	err = db.bolt.View(func(tx *bolt.Tx) error {
		pageSize = db.bolt.Info().PageSize
		hwm = int(tx.Size()) / pageSize
		eventsRoot = int(tx.Bucket(bucketEvents).Root())
		if p, err := tx.Page(eventsRoot); err != nil || p.Type != "branch" {
			return fmt.Errorf("the events bucket's root is not a branch page: %v, %v", p, err)
		}
		for i := 2; i < hwm; i++ {
			if p, err := tx.Page(i); err == nil && p != nil && p.Type == "freelist" {
				freelist = i
			}
		}
		return nil
	})
	if err != nil || freelist == 0 || eventsRoot == 0 {
		t.Fatalf("reading the good file's layout: %v (freelist page %d, events root %d)", err, freelist, eventsRoot)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	overwrite := func(page, skip int) []byte {
		b := bytes.Clone(raw)
		copy(b[page*pageSize+skip:(page+1)*pageSize], garbage(pageSize-skip))
		return b
	}
	variants := map[string][]byte{
		"Truncated":       raw[:hwm*pageSize/2],
		"GarbagePage":     overwrite(eventsRoot, 0),
		"TornPage":        overwrite(eventsRoot, 16), // the page header survives, its elements do not
		"GarbageFreelist": overwrite(freelist, 0),
		"Empty":           nil,
		"NotBbolt":        bytes.Repeat([]byte("this is a shopping list, not a database\n"), 300),
		"NotBboltOnePage": []byte("short\n"),
	}
	// A branch element that points past the file's end, in a file cut to
	// exactly its pages: bbolt maps more than the file holds, so reading
	// that page is a fault (SIGBUS), not a panic.
	past := bytes.Clone(raw[:hwm*pageSize])
	binary.LittleEndian.PutUint64(past[eventsRoot*pageSize+16+8:], uint64(hwm+3))
	variants["PointerPastEnd"] = past
	// Both header pages gone: nothing says where anything is.
	wiped := bytes.Clone(raw)
	copy(wiped[:2*pageSize], garbage(2*pageSize))
	variants["HeaderPagesWiped"] = wiped
	out := map[string]string{}
	for name, b := range variants {
		p := filepath.Join(dir, name+".db")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	return good, out
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestDamagedFile opens damaged files the ways the bot and the audit CLI
// do: each is refused with one line naming BOT_DB and the problem, nothing
// panics or faults, and the file is left byte for byte as it was.
func TestDamagedFile(t *testing.T) {
	good, damaged := mustDamagedFiles(t)
	t.Run("Good", func(t *testing.T) {
		db, err := Open(good, Options{Check: true})
		if err != nil {
			t.Fatalf("Open with Check on a good file: %v", err)
		}
		db.Close()
		ro, err := Open(good, Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		if n, err := ro.Verify(context.Background()); err != nil || n != 3000 {
			t.Fatalf("Verify = %d, %v; want 3000 events", n, err)
		}
	})
	for name, path := range damaged {
		t.Run(name, func(t *testing.T) {
			before := fileHash(t, path)
			check := func(how string, err error) {
				t.Helper()
				var de *DamagedError
				if !errors.As(err, &de) {
					t.Fatalf("%s: err = %v, want a *DamagedError", how, err)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "BOT_DB "+path+" is damaged: ") || strings.Contains(msg, "\n") {
					t.Errorf("%s: message %q is not one line naming BOT_DB and the file", how, msg)
				}
				t.Logf("%s: %s", how, de.Problem)
			}

			db, err := Open(path, Options{Check: true})
			if err == nil {
				db.Close()
			}
			check("serve's Open", err)

			ro, err := Open(path, Options{ReadOnly: true})
			if err == nil {
				_, err = ro.Verify(context.Background())
				ro.Close()
			}
			check("the CLI's Open and Verify", err)

			if after := fileHash(t, path); after != before {
				t.Errorf("the file changed")
			}
			// The lock was let go: the file can be opened again, and is
			// refused again.
			_, err = Open(path, Options{Check: true})
			check("a second Open", err)
		})
	}
}
