package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

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

func TestAuditMatchesFullScan(t *testing.T) {
	setPage(t, &pageSize, 7)
	db := mustOpen(t, Options{NoSync: true, Now: tick(t0)})
	mustFillLog(t, db, 120)
	all := readAll(t, db)
	total := len(all)
	if total <= 10*pageSize {
		t.Fatalf("log has %d events; the test needs more than %d to cross pages", total, 10*pageSize)
	}
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	queries := map[string]approval.AuditQuery{
		"All":                 {},
		"AllOldest":           {Oldest: true},
		"Limit":               {Limit: 10},
		"LimitOldest":         {Limit: 200, Oldest: true},
		"Request":             {RequestID: "R-7"},
		"RequestLowercase":    {RequestID: "r-7"},
		"RequestMissing":      {RequestID: "R-100000"},
		"Instance":            {Instance: "ins-bbbbbbbb"},
		"InstanceLimit":       {Instance: "ins-bbbbbbbb", Limit: 10},
		"InstanceUnknown":     {Instance: "ins-99999999"},
		"User":                {User: "U0CAROL"},
		"UserOldestLimit":     {User: "U0CAROL", Oldest: true, Limit: 25},
		"Bot":                 {User: approval.ActorBot},
		"Since":               {Since: at(150)},
		"Until":               {Until: at(150)},
		"Window":              {Since: at(100), Until: at(250)},
		"WindowOldest":        {Since: at(100), Until: at(250), Oldest: true},
		"WindowEmpty":         {Since: at(250), Until: at(100)},
		"BeforeLog":           {Until: t0},
		"AfterLog":            {Since: at(1 << 20)},
		"InstanceAndUser":     {Instance: "ins-cccccccc", User: "U0DAVE"},
		"InstanceUserWindow":  {Instance: "ins-cccccccc", User: "U0DAVE", Since: at(50), Until: at(250)},
		"RequestAndUser":      {RequestID: "R-12", User: "U0BOB"},
		"RequestAndInstance":  {RequestID: "R-12", Instance: "ins-aaaaaaaa"},
		"AllFilters":          {RequestID: "R-30", Instance: "ins-aaaaaaaa", User: "U0ALICE", Since: at(10), Until: at(100000)},
		"AllFiltersOldest":    {RequestID: "R-30", Instance: "ins-aaaaaaaa", User: "U0ALICE", Since: at(10), Oldest: true},
		"UnindexableInstance": {Instance: "ins-\x00aaaaaa"},
	}
	for name, q := range queries {
		t.Run(name, func(t *testing.T) {
			got := seqs(mustAudit(t, db, q))
			want := oracle(all, q)
			if !slices.Equal(got, want) {
				t.Errorf("Audit(%+v):\n got %d events %v\nwant %d events %v", q, len(got), got, len(want), want)
			}
		})
	}
	// Every user and instance, both directions.
	for _, u := range testUsers {
		for _, oldest := range []bool{false, true} {
			q := approval.AuditQuery{User: u, Oldest: oldest}
			if got, want := seqs(mustAudit(t, db, q)), oracle(all, q); !slices.Equal(got, want) || len(want) == 0 {
				t.Errorf("Audit(%+v): got %d events, want %d", q, len(got), len(want))
			}
		}
	}
	for _, in := range testInstances {
		q := approval.AuditQuery{Instance: in}
		if got, want := seqs(mustAudit(t, db, q)), oracle(all, q); !slices.Equal(got, want) || len(want) == 0 {
			t.Errorf("Audit(%+v): got %d events, want %d", q, len(got), len(want))
		}
	}
}

func TestAuditUserMatchesRequester(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true, Now: tick(t0)})
	id := mustCreate(t, db, newRequest("U0ALICE", "ins-aaaaaaaa"))
	mustSetState(t, db, id, approval.Denied, "U0BOB", approval.EventDenied)
	if _, _, err := db.Record(context.Background(), "", approval.Reply{}, []approval.Event{{Type: approval.EventRejected, Actor: "U0BOB"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user string
		want []approval.EventType
	}{
		{"U0ALICE", []approval.EventType{approval.EventDenied, approval.EventRequested}},
		{"U0BOB", []approval.EventType{approval.EventRejected, approval.EventDenied}},
		{"U0CAROL", nil},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			var got []approval.EventType
			for _, e := range mustAudit(t, db, approval.AuditQuery{User: tt.user}) {
				got = append(got, e.Type)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAuditInstanceOfRequestWhenEventNamesNone(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true, Now: tick(t0)})
	id := mustCreate(t, db, newRequest("U0ALICE", "ins-aaaaaaaa", "ins-bbbbbbbb"))
	mustSetState(t, db, id, approval.Approved, "U0BOB", approval.EventApproved)
	_, _, _, err := db.Update(context.Background(), id, "", func(r *approval.Request) (approval.Change, error) {
		return approval.Change{Events: []approval.Event{{Type: approval.EventInstanceFailed, Actor: approval.ActorBot, Instances: []string{"ins-bbbbbbbb"}}}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		instance string
		want     []uint64
	}{
		{"ins-aaaaaaaa", []uint64{2, 1}},
		{"ins-bbbbbbbb", []uint64{3, 2, 1}},
	}
	for _, tt := range tests {
		if got := seqs(mustAudit(t, db, approval.AuditQuery{Instance: tt.instance})); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.instance, got, tt.want)
		}
	}
}

func TestEventTimes(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	now := t0.Add(time.Hour)
	db := mustOpen(t, Options{NoSync: true, Now: func() time.Time { return now }})
	events := []approval.Event{
		{Type: approval.EventRejected, Actor: "U1"},                                                 // stamped by Now
		{Type: approval.EventRejected, Actor: "U1", Time: now.Add(time.Minute + 1234).In(shanghai)}, // given
		{Type: approval.EventRejected, Actor: "U1", Time: now},                                      // before its predecessor
	}
	if _, _, err := db.Record(context.Background(), "", approval.Reply{}, events); err != nil {
		t.Fatal(err)
	}
	want := []time.Time{now, now.Add(time.Minute + 1000), now.Add(time.Minute + 1000)}
	got := mustAudit(t, db, approval.AuditQuery{Oldest: true})
	for i, e := range got {
		if !e.Time.Equal(want[i]) || e.Time.Location() != time.UTC {
			t.Errorf("event %d time %v, want %v in UTC", i+1, e.Time, want[i])
		}
	}
}

func TestAuditStopsOnCallbackError(t *testing.T) {
	db := mustOpen(t, Options{NoSync: true, Now: tick(t0)})
	mustFillLog(t, db, 20)
	stop := errors.New("enough")
	calls := 0
	err := db.Audit(context.Background(), approval.AuditQuery{}, func(*approval.Event) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("Audit = %v after %d calls; want the callback's error after 3", err, calls)
	}
}

// TestAuditCallbackMayWrite checks that fn runs outside the read
// transaction, so it can write to the store without deadlocking.
func TestAuditCallbackMayWrite(t *testing.T) {
	setPage(t, &pageSize, 16)
	db := mustOpen(t, Options{NoSync: true, Now: tick(t0)})
	mustFillLog(t, db, 30)
	before := len(mustAudit(t, db, approval.AuditQuery{}))
	n := 0
	err := db.Audit(context.Background(), approval.AuditQuery{Oldest: true}, func(e *approval.Event) error {
		n++
		_, _, err := db.Record(context.Background(), "", approval.Reply{}, []approval.Event{{Type: approval.EventRejected, Actor: approval.ActorBot}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The scan ends at the head it started from, not at the events fn adds.
	if n != before {
		t.Errorf("fn saw %d events, want the %d that existed when Audit began", n, before)
	}
	if n, err := db.Verify(context.Background()); err != nil || n != uint64(2*before) {
		t.Errorf("Verify = %d, %v; want %d", n, err, 2*before)
	}
}
