package approval_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"rebootbot/approval"
	"rebootbot/store"
)

func TestTransitionTable(t *testing.T) {
	all := []approval.State{approval.Pending, approval.Approved, approval.Executing, approval.Succeeded, approval.Failed,
		approval.PartiallyFailed, approval.Denied, approval.Cancelled, approval.Expired, approval.Rejected}
	allowed := map[[2]approval.State]bool{
		{approval.Pending, approval.Approved}:          true,
		{approval.Pending, approval.Denied}:            true,
		{approval.Pending, approval.Cancelled}:         true,
		{approval.Pending, approval.Expired}:           true,
		{approval.Pending, approval.Rejected}:          true,
		{approval.Approved, approval.Executing}:        true,
		{approval.Executing, approval.Succeeded}:       true,
		{approval.Executing, approval.Failed}:          true,
		{approval.Executing, approval.PartiallyFailed}: true,
		{approval.Executing, approval.Denied}:          true, // by the bot, before any call
	}
	for _, from := range all {
		for _, to := range all {
			if got, want := approval.CanTransition(from, to), allowed[[2]approval.State{from, to}]; got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	for _, s := range all {
		if got, want := s.Terminal(), !slices.Contains([]approval.State{approval.Pending, approval.Approved, approval.Executing}, s); got != want {
			t.Errorf("%s.Terminal() = %v, want %v", s, got, want)
		}
	}
}

func TestHappyPath(t *testing.T) {
	w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
	r := w.mustCreate(t, approval.CreateInput{Key: "trigger-1", Instances: []string{"ins-aaaaaaaa", "ins-bbbbbbbb", "ins-aaaaaaaa"}})
	if got, want := r.ID, "R-1"; got != want {
		t.Errorf("ID = %s, want %s", got, want)
	}
	if got := len(r.Instances); got != 2 {
		t.Errorf("instances = %d, want duplicates dropped to 2", got)
	}
	if r.Card.TS == "" || w.slack.card(r.ID) == nil {
		t.Fatalf("card not posted: %+v", r.Card)
	}
	res, err := w.engine.Approve(context.Background(), "click-1", r.ID, "UALICE", w.mustCard(t, r.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Message, "reboot starts now") {
		t.Errorf("message = %q", res.Message)
	}
	done := w.waitState(t, r.ID, approval.Succeeded)
	for _, id := range r.InstanceIDs() {
		if got := w.cloud.rebootCalls(id); got != 1 {
			t.Errorf("%s reboot calls = %d, want 1", id, got)
		}
		if run := done.Run(id); run.State != approval.RunSucceeded || !run.Reported || run.CallRequestID == "" {
			t.Errorf("run %s = %+v", id, run)
		}
	}
	if got := w.slack.card(r.ID).State; got != approval.Succeeded {
		t.Errorf("card shows %s, want SUCCEEDED", got)
	}
	kinds := []approval.ReportKind{}
	for _, rep := range w.slack.reportsOf(r.ID) {
		kinds = append(kinds, rep.Kind)
	}
	if got, want := fmt.Sprint(kinds), "[started instance instance finished]"; got != want {
		t.Errorf("reports = %s, want %s", got, want)
	}
	got := fmt.Sprint(w.events(t, approval.AuditQuery{RequestID: r.ID}))
	want := "[requested approved executing reboot_intent reboot_called instance_succeeded instance_succeeded completed]"
	if got != want {
		t.Errorf("events = %s\nwant     %s", got, want)
	}
	if n, err := w.store.Verify(context.Background()); err != nil || n == 0 {
		t.Errorf("verify = %d, %v", n, err)
	}
}

func TestCreateRejected(t *testing.T) {
	p := testPolicy()
	p.Rules = []approval.Rule{{Tags: map[string]string{"reboot": "deny"}, Deny: true}}
	w := mustWorld(t, p, newFakeCloud(testInstances()...), "")
	w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}}) // R-1 holds ins-aaaaaaaa

	restricted := testPolicy()
	restricted.Requesters = []string{"UALICE"}
	restricted.Channels = []string{"CSRE"}
	wr := mustWorld(t, restricted, newFakeCloud(testInstances()...), "")

	many := make([]string, 101)
	for i := range many {
		many[i] = fmt.Sprintf("ins-%08d", i)
	}
	tests := []struct {
		name string
		w    *world
		in   approval.CreateInput
		kind approval.Kind
		want string
	}{
		{"NoInstances", w, approval.CreateInput{Reason: "x"}, approval.Invalid, "Name at least one instance"},
		{"MalformedID", w, approval.CreateInput{Instances: []string{"ins-ABC"}, Reason: "x"}, approval.Invalid, `"ins-ABC"`},
		{"NoReason", w, approval.CreateInput{Instances: []string{"ins-bbbbbbbb"}, Reason: "  "}, approval.Invalid, "A reason is required"},
		{"TooMany", w, approval.CreateInput{Instances: many, Reason: "x"}, approval.Invalid, "at most 100 instances"},
		{"Unknown", w, approval.CreateInput{Instances: []string{"ins-bbbbbbbb", "ins-zzzzzzzz"}, Reason: "x"}, approval.Invalid, "ins-zzzzzzzz does not exist in ap-guangzhou"},
		{"NotRunning", w, approval.CreateInput{Instances: []string{"ins-dddddddd", "ins-zzzzzzzz"}, Reason: "x"}, approval.Invalid, "ins-dddddddd is STOPPED"},
		{"Held", w, approval.CreateInput{Instances: []string{"ins-bbbbbbbb", "ins-aaaaaaaa"}, Reason: "x"}, approval.Conflict, "ins-aaaaaaaa already has an open request, R-1"},
		{"RegionNotAllowed", w, approval.CreateInput{Instances: []string{"ins-bbbbbbbb"}, Reason: "x", Region: "eu-frankfurt"}, approval.Invalid, "Region eu-frankfurt is not allowed"},
		{"DenyRule", w, approval.CreateInput{Instances: []string{"ins-cccccccc"}, Reason: "x"}, approval.Forbidden, "does not allow rebooting ins-cccccccc"},
		{"RequesterNotAllowed", wr, approval.CreateInput{Instances: []string{"ins-bbbbbbbb"}, Reason: "x", Channel: "CSRE", Requester: "UMALLORY"}, approval.Forbidden, "not on the list"},
		{"ChannelNotAllowed", wr, approval.CreateInput{Instances: []string{"ins-bbbbbbbb"}, Reason: "x", Channel: "CRANDOM", Requester: "UALICE"}, approval.Forbidden, "not enabled in this channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			if in.Requester == "" {
				in.Requester = "UREQ"
			}
			if in.Channel == "" {
				in.Channel = "COPS"
			}
			in.Key = "key-" + tt.name
			before := tt.w.slack.posts()
			_, err := tt.w.engine.Create(context.Background(), in)
			if approval.ErrorKind(err) != tt.kind || !strings.Contains(approval.ErrorMessage(err), tt.want) {
				t.Fatalf("err = %v (kind %s), want %s containing %q", err, approval.ErrorKind(err), tt.kind, tt.want)
			}
			if tt.w.slack.posts() != before {
				t.Errorf("a card was posted for a refused request")
			}
			var last approval.Event
			tt.w.store.Audit(context.Background(), approval.AuditQuery{Limit: 1}, func(e *approval.Event) error { last = *e; return nil })
			if last.Type != approval.EventRejected || last.RequestID != "" {
				t.Errorf("last event = %+v, want a rejected event", last)
			}
			// The same delivery again gets the same answer and records nothing new.
			_, err2 := tt.w.engine.Create(context.Background(), in)
			if approval.ErrorMessage(err2) != approval.ErrorMessage(err) {
				t.Errorf("replayed answer = %v, want %v", err2, err)
			}
		})
	}
	// Refusals hold nothing: ins-bbbbbbbb can still be requested.
	w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-bbbbbbbb"}})
}

func TestApprovalRules(t *testing.T) {
	tests := []struct {
		name     string
		policy   func(*approval.Policy)
		stop     approval.StopType
		instance string
		clicks   []string // user IDs in order; the last must leave the state below
		want     approval.State
		refusals int
	}{
		{"SelfApprovalRefused", nil, approval.Soft, "ins-aaaaaaaa", []string{"UREQ"}, approval.Pending, 1},
		{"SelfApprovalAllowed", func(p *approval.Policy) { p.AllowSelfApproval = true; p.Approvers = append(p.Approvers, "UREQ") }, approval.Soft, "ins-aaaaaaaa", []string{"UREQ"}, approval.Succeeded, 0},
		{"OutsiderRefused", nil, approval.Soft, "ins-aaaaaaaa", []string{"UMALLORY"}, approval.Pending, 1},
		{"GroupMemberApproves", nil, approval.Soft, "ins-aaaaaaaa", []string{"UDAVE"}, approval.Succeeded, 0},
		{"TwoApprovalsNeeded", func(p *approval.Policy) { p.MinApprovals = 2 }, approval.Soft, "ins-aaaaaaaa", []string{"UALICE", "UBOB"}, approval.Succeeded, 0},
		{"EachPersonOnce", func(p *approval.Policy) { p.MinApprovals = 2 }, approval.Soft, "ins-aaaaaaaa", []string{"UALICE", "UALICE"}, approval.Pending, 1},
		{"HardNeedsTwo", nil, approval.Hard, "ins-aaaaaaaa", []string{"UALICE"}, approval.Pending, 0},
		{"HardGetsTwo", nil, approval.Hard, "ins-aaaaaaaa", []string{"UALICE", "UBOB"}, approval.Succeeded, 0},
		{"SoftFirstNeedsTwo", nil, approval.SoftFirst, "ins-aaaaaaaa", []string{"UALICE"}, approval.Pending, 0},
		{"TagRuleApproverOnly", func(p *approval.Policy) {
			p.Rules = []approval.Rule{{Tags: map[string]string{"env": "prod"}, Approvers: []string{"SSRE"}, MinApprovals: 2}}
		}, approval.Soft, "ins-bbbbbbbb", []string{"UALICE", "UDAVE", "UERIN"}, approval.Succeeded, 1},
		{"TagRuleNeedsTwo", func(p *approval.Policy) {
			p.Rules = []approval.Rule{{Tags: map[string]string{"env": "prod"}, Approvers: []string{"SSRE"}, MinApprovals: 2}}
		}, approval.Soft, "ins-bbbbbbbb", []string{"UDAVE"}, approval.Pending, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPolicy()
			if tt.policy != nil {
				tt.policy(p)
			}
			w := mustWorld(t, p, newFakeCloud(testInstances()...), "")
			r := w.mustCreate(t, approval.CreateInput{Instances: []string{tt.instance}, StopType: tt.stop})
			refusals := 0
			for i, u := range tt.clicks {
				_, err := w.engine.Approve(context.Background(), fmt.Sprintf("click-%d", i), r.ID, u, w.mustCard(t, r.ID))
				if err != nil {
					refusals++
					if k := approval.ErrorKind(err); k != approval.Forbidden && k != approval.Conflict {
						t.Errorf("click by %s: kind %s, want Forbidden or Conflict", u, k)
					}
				}
			}
			if refusals != tt.refusals {
				t.Errorf("refusals = %d, want %d", refusals, tt.refusals)
			}
			if tt.want == approval.Pending {
				got, _ := w.store.Get(context.Background(), r.ID)
				if got.State != approval.Pending {
					t.Errorf("state = %s, want PENDING", got.State)
				}
			} else {
				w.waitState(t, r.ID, tt.want)
			}
			refused := 0
			for _, e := range w.events(t, approval.AuditQuery{RequestID: r.ID}) {
				if e == approval.EventApprovalRefused {
					refused++
				}
			}
			if refused != tt.refusals {
				t.Errorf("approval_refused events = %d, want %d", refused, tt.refusals)
			}
		})
	}
}

func TestConcurrentApprovalsExecuteOnce(t *testing.T) {
	p := testPolicy()
	for i := range 100 {
		p.Approvers = append(p.Approvers, fmt.Sprintf("UAPPROVER%d", i))
	}
	w := mustWorld(t, p, newFakeCloud(testInstances()...), "")
	r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa", "ins-bbbbbbbb"}})
	card := w.mustCard(t, r.ID)
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half the goroutines repeat a delivery key, as a double click would.
			key := fmt.Sprintf("click-%d", i/2)
			_, err := w.engine.Approve(context.Background(), key, r.ID, fmt.Sprintf("UAPPROVER%d", i/2), card)
			if err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	w.waitState(t, r.ID, approval.Succeeded)
	for _, id := range r.InstanceIDs() {
		if got := w.cloud.rebootCalls(id); got != 1 {
			t.Errorf("%s reboot calls = %d, want exactly 1", id, got)
		}
	}
	executing := 0
	for _, e := range w.events(t, approval.AuditQuery{RequestID: r.ID}) {
		if e == approval.EventExecuting {
			executing++
		}
	}
	if executing != 1 {
		t.Errorf("executing events = %d, want 1", executing)
	}
	if accepted < 1 {
		t.Errorf("no approval was accepted")
	}
}

func TestDuplicateDeliveryKey(t *testing.T) {
	p := testPolicy()
	p.MinApprovals = 2
	w := mustWorld(t, p, newFakeCloud(testInstances()...), "")
	r := w.mustCreate(t, approval.CreateInput{Key: "cmd-1", Instances: []string{"ins-aaaaaaaa"}})
	again := w.mustCreate(t, approval.CreateInput{Key: "cmd-1", Instances: []string{"ins-aaaaaaaa"}})
	if again.ID != r.ID || w.slack.posts() != 1 {
		t.Errorf("repeated command: got %s and %d cards, want %s and 1", again.ID, w.slack.posts(), r.ID)
	}
	first, err := w.engine.Approve(context.Background(), "click-1", r.ID, "UALICE", w.mustCard(t, r.ID))
	if err != nil || first.Replayed {
		t.Fatalf("first = %+v, %v", first, err)
	}
	second, err := w.engine.Approve(context.Background(), "click-1", r.ID, "UALICE", w.mustCard(t, r.ID))
	if err != nil || !second.Replayed || second.Message != first.Message {
		t.Errorf("second = %+v, %v; want the first answer replayed", second, err)
	}
	got, _ := w.store.Get(context.Background(), r.ID)
	if len(got.Approvals) != 1 {
		t.Errorf("approvals = %d, want 1", len(got.Approvals))
	}
	// A refusal is replayed as a refusal.
	_, err1 := w.engine.Approve(context.Background(), "click-2", r.ID, "UMALLORY", w.mustCard(t, r.ID))
	_, err2 := w.engine.Approve(context.Background(), "click-2", r.ID, "UMALLORY", w.mustCard(t, r.ID))
	if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
		t.Errorf("refusal replay: %v then %v", err1, err2)
	}
	refused := 0
	for _, e := range w.events(t, approval.AuditQuery{RequestID: r.ID}) {
		if e == approval.EventApprovalRefused {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("approval_refused events = %d, want 1 (the replay records nothing)", refused)
	}
}

func TestDenyCancelAndDecidedClicks(t *testing.T) {
	w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
	ctx := context.Background()

	denied := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
	if _, err := w.engine.Deny(ctx, "d-0", denied.ID, "UMALLORY", w.mustCard(t, denied.ID)); approval.ErrorKind(err) != approval.Forbidden {
		t.Errorf("outsider deny: %v", err)
	}
	if _, err := w.engine.Deny(ctx, "d-1", denied.ID, "UBOB", w.mustCard(t, denied.ID)); err != nil {
		t.Fatal(err)
	}
	w.waitState(t, denied.ID, approval.Denied)
	if _, err := w.engine.Approve(ctx, "a-1", denied.ID, "UALICE", w.mustCard(t, denied.ID)); approval.ErrorKind(err) != approval.Conflict || !strings.Contains(err.Error(), "already denied") {
		t.Errorf("approve after deny: %v", err)
	}

	cancelled := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}}) // released by the denial
	if _, err := w.engine.Cancel(ctx, "c-0", cancelled.ID, "UALICE"); approval.ErrorKind(err) != approval.Forbidden {
		t.Errorf("cancel by someone else: %v", err)
	}
	if _, err := w.engine.Cancel(ctx, "c-1", cancelled.ID, "UREQ"); err != nil {
		t.Fatal(err)
	}
	w.waitState(t, cancelled.ID, approval.Cancelled)
	if got := w.slack.card(cancelled.ID); got.State != approval.Cancelled || got.DecidedBy != "UREQ" {
		t.Errorf("card = %s by %s", got.State, got.DecidedBy)
	}
	if _, err := w.engine.Approve(ctx, "a-2", "R-999", "UALICE", w.cardOf("R-999")); approval.ErrorKind(err) != approval.NotFound {
		t.Errorf("unknown request: %v", err)
	}
}

// TestExpiryRunsByItself moves the clock past a request's TTL and checks
// that the engine expires it without being asked. The engine runs in a
// synctest bubble: synctest.Wait returns once its goroutines have done all
// they can and sleep on the clock, so each step is checked when it is over.
func TestExpiryRunsByItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
		r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
		synctest.Wait()
		w.clock.Advance(29 * time.Minute)
		synctest.Wait()
		if got := w.mustGet(t, r.ID); got.State != approval.Pending {
			t.Fatalf("state after 29m = %s, want PENDING", got.State)
		}
		w.clock.Advance(2 * time.Minute)
		synctest.Wait()
		if got := w.mustGet(t, r.ID); got.State != approval.Expired || !got.Settled() {
			t.Fatalf("state after 31m = %s (settled %v), want EXPIRED and settled", got.State, got.Settled())
		}
		if got := w.slack.card(r.ID); got.State != approval.Expired || got.DecidedBy != approval.ActorBot {
			t.Errorf("card = %s by %s, want EXPIRED by bot", got.State, got.DecidedBy)
		}
		if _, err := w.engine.Approve(context.Background(), "late", r.ID, "UALICE", w.cardOf(r.ID)); approval.ErrorKind(err) != approval.Conflict {
			t.Errorf("late approval: %v", err)
		}
		w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}}) // released
	})
}

func TestPartialFailure(t *testing.T) {
	cloud := newFakeCloud(testInstances()...)
	cloud.failOp["ins-bbbbbbbb"] = true
	w := mustWorld(t, testPolicy(), cloud, "")
	r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa", "ins-bbbbbbbb"}})
	if _, err := w.engine.Approve(context.Background(), "k", r.ID, "UALICE", w.mustCard(t, r.ID)); err != nil {
		t.Fatal(err)
	}
	done := w.waitState(t, r.ID, approval.PartiallyFailed)
	if run := done.Run("ins-bbbbbbbb"); run.State != approval.RunFailed || !strings.Contains(run.Explanation, "did not stop") {
		t.Errorf("failed run = %+v", run)
	}
}

func TestInstanceLeftRunningBeforeExecution(t *testing.T) {
	cloud := newFakeCloud(testInstances()...)
	w := mustWorld(t, testPolicy(), cloud, "")
	r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
	cloud.set("ins-aaaaaaaa", func(in *approval.Instance) { in.State = "STOPPED" })
	if _, err := w.engine.Approve(context.Background(), "k", r.ID, "UALICE", w.mustCard(t, r.ID)); err != nil {
		t.Fatal(err)
	}
	done := w.waitState(t, r.ID, approval.Failed)
	if got := cloud.rebootCalls("ins-aaaaaaaa"); got != 0 {
		t.Errorf("reboot calls = %d, want 0", got)
	}
	if run := done.Run("ins-aaaaaaaa"); run.ErrorCode != "InstanceNotRunning" || !run.Reported {
		t.Errorf("run = %+v", run)
	}
}

func TestChannelBotCannotPostIn(t *testing.T) {
	w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
	w.slack.setRefuse(approval.Errorf(approval.Forbidden, "I can't post in this channel: invite me."))
	_, err := w.engine.Create(context.Background(), approval.CreateInput{Requester: "UREQ", Channel: "CPRIVATE", Reason: "x", Instances: []string{"ins-aaaaaaaa"}})
	if approval.ErrorKind(err) != approval.Forbidden || !strings.Contains(err.Error(), "invite me") {
		t.Fatalf("err = %v", err)
	}
	r, err := w.store.Get(context.Background(), "R-1")
	if err != nil || r.State != approval.Rejected {
		t.Fatalf("R-1 = %+v, %v; want REJECTED", r, err)
	}
	w.slack.setRefuse(nil)
	w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}}) // not held
}

// TestRecovery restarts the engine on a store left by an execution that
// was interrupted around its reboot call.
func TestRecovery(t *testing.T) {
	for _, interrupt := range []string{"after", "before"} {
		t.Run("Interrupted_"+interrupt+"_call", func(t *testing.T) {
			cloud := newFakeCloud(testInstances()...)
			dbPath := filepath.Join(t.TempDir(), "bot.db")
			w := mustWorld(t, testPolicy(), cloud, dbPath)
			r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa", "ins-bbbbbbbb"}})
			cloud.interrupt, cloud.reached = interrupt, make(chan struct{})
			if _, err := w.engine.Approve(context.Background(), "k", r.ID, "UALICE", w.mustCard(t, r.ID)); err != nil {
				t.Fatal(err)
			}
			<-cloud.reached
			// The process dies: nothing after the call is recorded.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			w.engine.Close(ctx)
			w.store.Close()

			db, err := store.Open(dbPath, store.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			mid, err := db.Get(context.Background(), r.ID)
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			if mid.State != approval.Executing || len(runsIn(mid, approval.RunIntent)) != 2 {
				t.Fatalf("after the crash: %s with runs %+v; want EXECUTING with both intents stored", mid.State, mid.Runs)
			}

			w2 := mustWorld(t, testPolicy(), cloud, dbPath)
			w2.waitState(t, r.ID, approval.Succeeded)
			for _, id := range r.InstanceIDs() {
				if got := cloud.rebootCalls(id); got != 1 {
					t.Errorf("%s reboot calls = %d, want exactly 1", id, got)
				}
			}
			if _, err := w2.store.Verify(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
}

func runsIn(r *approval.Request, s approval.RunState) []string {
	var ids []string
	for _, run := range r.Runs {
		if run.State == s {
			ids = append(ids, run.InstanceID)
		}
	}
	return ids
}
