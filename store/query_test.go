package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"rebootbot/approval"

	bolt "go.etcd.io/bbolt"
)

var (
	testUsers     = []string{"U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"}
	testInstances = []string{"ins-aaaaaaaa", "ins-bbbbbbbb", "ins-cccccccc", "ins-dddddddd", "ins-eeeeeeee", "ins-ffffffff"}
)

// mustFillLog writes a log of requests and their events through the
// Store API: n requests by random users on random instances, each approved,
// denied or cancelled, with refused clicks and rejected commands between
// them. Events are a minute apart.
func mustFillLog(t testing.TB, db *DB, n int) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	for i := range n {
		r := newRequest(pick(testUsers), testInstances[rng.IntN(len(testInstances))])
		if extra := pick(testInstances); extra != r.Instances[0].ID && rng.IntN(2) == 0 {
			r.Instances = append(r.Instances, approval.Instance{ID: extra})
		}
		if rng.IntN(5) == 0 {
			if _, _, err := db.Record(ctx, "", approval.Reply{}, []approval.Event{{
				Type: approval.EventRejected, Actor: r.Requester, Instances: r.InstanceIDs(),
				Details: approval.Details{ErrorMessage: "not running"},
			}}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := db.Create(ctx, r, fmt.Sprintf("cmd-%d", i), approval.Reply{}, []approval.Event{requested(r)}); err != nil {
			t.Fatal(err)
		}
		if rng.IntN(3) == 0 {
			// A refused click: recorded without the instances, found
			// through the request.
			if _, _, err := db.Record(ctx, "", approval.Reply{}, []approval.Event{{
				Type: approval.EventApprovalRefused, Actor: pick(testUsers), RequestID: r.ID,
			}}); err != nil {
				t.Fatal(err)
			}
		}
		switch rng.IntN(3) {
		case 0:
			mustSetState(t, db, r.ID, approval.Approved, pick(testUsers), approval.EventApproved)
			mustSetState(t, db, r.ID, approval.Executing, approval.ActorBot, approval.EventExecuting)
			mustSetState(t, db, r.ID, approval.Succeeded, approval.ActorBot, approval.EventCompleted)
		case 1:
			mustSetState(t, db, r.ID, approval.Denied, pick(testUsers), approval.EventDenied)
		default:
			mustSetState(t, db, r.ID, approval.Cancelled, r.Requester, approval.EventCancelled)
		}
	}
}

// stored is an event with what the oracle needs to know of its request.
type stored struct {
	approval.Event
	requester string
	instances []string
}

// readAll reads every stored event, without the indexes.
func readAll(t testing.TB, db *DB) []stored {
	t.Helper()
	var out []stored
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(_, v []byte) error {
			var s stored
			if err := json.Unmarshal(v, &s.Event); err != nil {
				return err
			}
			s.instances = s.Instances
			if _, r, err := getRequest(tx, s.RequestID); err == nil {
				s.requester = r.Requester
				if len(s.instances) == 0 {
					s.instances = r.InstanceIDs()
				}
			}
			out = append(out, s)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// oracle answers q from every stored event by brute force.
func oracle(all []stored, q approval.AuditQuery) []uint64 {
	if n, ok := approval.ParseRequestID(q.RequestID); ok {
		q.RequestID = approval.FormatRequestID(n)
	}
	var out []uint64
	for _, e := range all {
		switch {
		case q.RequestID != "" && e.RequestID != q.RequestID,
			q.Instance != "" && !slices.Contains(e.instances, q.Instance),
			q.User != "" && e.Actor != q.User && e.requester != q.User,
			!q.Since.IsZero() && e.Time.Before(q.Since),
			!q.Until.IsZero() && !e.Time.Before(q.Until):
			continue
		}
		out = append(out, e.Seq)
	}
	if !q.Oldest {
		slices.Reverse(out)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}
