package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"rebootbot/approval"
)

var (
	testUsers     = []string{"U0ALICE", "U0BOB", "U0CAROL", "U0DAVE"}
	testInstances = []string{"ins-aaaaaaaa", "ins-bbbbbbbb", "ins-cccccccc", "ins-dddddddd", "ins-eeeeeeee", "ins-ffffffff"}
)

// written is an event as the test wrote it, with what the oracle needs to
// know of its request.
type written struct {
	approval.Event
	requester string
	instances []string
}

// fillLog writes a log of requests and their events through the Store API:
// n requests by random users on random instances, each approved, denied or
// cancelled, with refused clicks and rejected commands between them. It
// returns every event written, in order, as the test meant it.
func fillLog(t testing.TB, db approval.Store, n int) []written {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	var log []written
	add := func(typ approval.EventType, actor, id string, r *approval.Request, own []string) {
		w := written{Event: approval.Event{Type: typ, Actor: actor, RequestID: id}, instances: own}
		if r != nil {
			w.requester = r.Requester
			if len(own) == 0 {
				w.instances = r.InstanceIDs()
			}
		}
		log = append(log, w)
	}
	setState := func(r *approval.Request, state approval.State, actor string, typ approval.EventType) {
		mustSetState(t, db, r.ID, state, actor, typ)
		add(typ, actor, r.ID, r, nil)
	}
	for i := range n {
		r := NewRequest(pick(testUsers), testInstances[rng.IntN(len(testInstances))])
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
			add(approval.EventRejected, r.Requester, "", nil, r.InstanceIDs())
			continue
		}
		if err := db.Create(ctx, r, fmt.Sprintf("cmd-%d", i), approval.Reply{}, []approval.Event{Requested(r)}); err != nil {
			t.Fatal(err)
		}
		add(approval.EventRequested, r.Requester, r.ID, r, r.InstanceIDs())
		if rng.IntN(3) == 0 {
			// A refused click: recorded without the instances, found
			// through the request.
			actor := pick(testUsers)
			if _, _, err := db.Record(ctx, "", approval.Reply{}, []approval.Event{{
				Type: approval.EventApprovalRefused, Actor: actor, RequestID: r.ID,
			}}); err != nil {
				t.Fatal(err)
			}
			add(approval.EventApprovalRefused, actor, r.ID, r, nil)
		}
		switch rng.IntN(3) {
		case 0:
			setState(r, approval.Approved, pick(testUsers), approval.EventApproved)
			setState(r, approval.Executing, approval.ActorBot, approval.EventExecuting)
			setState(r, approval.Succeeded, approval.ActorBot, approval.EventCompleted)
		case 1:
			setState(r, approval.Denied, pick(testUsers), approval.EventDenied)
		default:
			setState(r, approval.Cancelled, r.Requester, approval.EventCancelled)
		}
	}
	return log
}

// stored pairs what was written with the sequence number and time the
// store gave each event, checking the store kept every event in order.
func stored(t testing.TB, db approval.Store, log []written) []written {
	t.Helper()
	all := mustAudit(t, db, approval.AuditQuery{Oldest: true})
	if len(all) != len(log) {
		t.Fatalf("the log holds %d events, want the %d written", len(all), len(log))
	}
	out := make([]written, len(log))
	for i, e := range all {
		w := log[i]
		if e.Seq != uint64(i+1) || e.Type != w.Type || e.Actor != w.Actor || e.RequestID != w.RequestID {
			t.Fatalf("event %d is %d %s by %s on %q; want %s by %s on %q", i+1, e.Seq, e.Type, e.Actor, e.RequestID, w.Type, w.Actor, w.RequestID)
		}
		w.Seq, w.Time = e.Seq, e.Time
		out[i] = w
	}
	return out
}

// oracle answers q from every event by brute force.
func oracle(all []written, q approval.AuditQuery) []uint64 {
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

func testAuditMatchesFullScan(t *testing.T, b Backend) {
	db := open(t, b)
	all := stored(t, db, fillLog(t, db, 120))
	at := func(sec int) time.Time { return T0.Add(time.Duration(sec) * time.Second) }
	queries := map[string]approval.AuditQuery{
		"All":                 {},
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
		"WindowLimit":         {Since: at(100), Until: at(250), Limit: 7},
		"WindowEmpty":         {Since: at(250), Until: at(100)},
		"BeforeLog":           {Until: T0},
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
	// Every user and instance, both directions, with and without a limit.
	for _, u := range testUsers {
		for _, oldest := range []bool{false, true} {
			for _, limit := range []int{0, 3} {
				q := approval.AuditQuery{User: u, Oldest: oldest, Limit: limit}
				if got, want := seqs(mustAudit(t, db, q)), oracle(all, q); !slices.Equal(got, want) || len(want) == 0 {
					t.Errorf("Audit(%+v): got %d events, want %d", q, len(got), len(want))
				}
			}
		}
	}
	for _, in := range testInstances {
		for _, oldest := range []bool{false, true} {
			q := approval.AuditQuery{Instance: in, Oldest: oldest}
			if got, want := seqs(mustAudit(t, db, q)), oracle(all, q); !slices.Equal(got, want) || len(want) == 0 {
				t.Errorf("Audit(%+v): got %d events, want %d", q, len(got), len(want))
			}
		}
	}
}

// testAuditFindsOldEventsInASparseIndex checks a lookup whose only
// matches are far back behind many events of others.
func testAuditFindsOldEventsInASparseIndex(t *testing.T, b Backend) {
	db := open(t, b)
	ctx := context.Background()
	id := mustCreate(t, db, NewRequest("U0RARE", "ins-rare0001"))
	mustSetState(t, db, id, approval.Denied, "U0BOB", approval.EventDenied)
	for i := range 300 {
		if _, _, err := db.Record(ctx, "", approval.Reply{}, []approval.Event{{Type: approval.EventRejected, Actor: fmt.Sprintf("U0OTHER%d", i%7)}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []approval.AuditQuery{{Instance: "ins-rare0001"}, {User: "U0RARE", Limit: 1}, {Instance: "ins-rare0001", Oldest: true}} {
		want := []uint64{2, 1}
		if q.Oldest {
			want = []uint64{1, 2}
		}
		if q.Limit == 1 {
			want = want[:1]
		}
		if got := seqs(mustAudit(t, db, q)); !slices.Equal(got, want) {
			t.Errorf("Audit(%+v) = %v, want %v", q, got, want)
		}
	}
}

// testChainLinks checks every event carries the SHA-256 of its
// predecessor's canonical bytes, as approval.Event defines them, so that
// any store's log verifies by the same rule.
func testChainLinks(t *testing.T, b Backend) {
	db := open(t, b)
	fillLog(t, db, 10)
	all := mustAudit(t, db, approval.AuditQuery{Oldest: true})
	prev := ""
	for _, e := range all {
		if e.PrevHash != prev {
			t.Fatalf("event %d prev_hash %q, want %q", e.Seq, e.PrevHash, prev)
		}
		raw, err := e.CanonicalBytes()
		if err != nil {
			t.Fatal(err)
		}
		prev = approval.HashBytes(raw)
	}
	mustVerify(t, db, len(all))
}

func testAuditUserMatchesRequester(t *testing.T, b Backend) {
	db := open(t, b)
	id := mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa"))
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

func testAuditInstanceOfRequestWhenEventNamesNone(t *testing.T, b Backend) {
	db := open(t, b)
	id := mustCreate(t, db, NewRequest("U0ALICE", "ins-aaaaaaaa", "ins-bbbbbbbb"))
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

func testEventTimes(t *testing.T, b Backend) {
	shanghai := time.FixedZone("CST", 8*3600)
	now := T0.Add(time.Hour)
	db := b.Open(t, func() time.Time { return now })
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

func testAuditStopsOnCallbackError(t *testing.T, b Backend) {
	db := open(t, b)
	fillLog(t, db, 20)
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

// testAuditCallbackMayWrite checks that fn runs outside the read
// transaction, so it can write to the store without deadlocking.
func testAuditCallbackMayWrite(t *testing.T, b Backend) {
	db := open(t, b)
	fillLog(t, db, 30)
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
