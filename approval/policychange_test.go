package approval_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
	"rebootbot/store"
)

// without returns a copy of testPolicy with user taken off the approvers.
func without(user string) *approval.Policy {
	p := testPolicy()
	p.Approvers = slices.DeleteFunc(slices.Clone(p.Approvers), func(id string) bool { return id == user })
	return p
}

// prodDenied returns testPolicy with a deny rule for env: prod.
func prodDenied() *approval.Policy {
	p := testPolicy()
	p.Rules = []approval.Rule{{Tags: map[string]string{"env": "prod"}, Deny: true}}
	return p
}

// auditOf returns request id's events, oldest first.
func (w *world) auditOf(t *testing.T, id string) []approval.Event {
	t.Helper()
	var evs []approval.Event
	err := w.store.Audit(context.Background(), approval.AuditQuery{RequestID: id, Oldest: true}, func(e *approval.Event) error {
		evs = append(evs, *e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestSetPolicyRefusesInvalid(t *testing.T) {
	w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
	before := w.engine.Policy()
	bad := testPolicy()
	bad.MinApprovals = 0
	if err := w.engine.SetPolicy(bad); err == nil || !strings.Contains(err.Error(), "min_approvals") {
		t.Errorf("SetPolicy(min_approvals 0) = %v, want an error naming min_approvals", err)
	}
	if err := w.engine.SetPolicy(nil); err == nil {
		t.Error("SetPolicy(nil) succeeded")
	}
	if w.engine.Policy() != before {
		t.Error("a refused policy replaced the one in force")
	}
	next := without("UALICE")
	if err := w.engine.SetPolicy(next); err != nil {
		t.Fatal(err)
	}
	if w.engine.Policy() != next {
		t.Error("SetPolicy did not put the new policy in force")
	}
}

// TestRemovedApproverCannotApprove: an approver taken off the policy after
// a request was made can no longer approve it, and nothing reboots.
func TestRemovedApproverCannotApprove(t *testing.T) {
	w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
	r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
	if err := w.engine.SetPolicy(without("UALICE")); err != nil {
		t.Fatal(err)
	}
	_, err := w.engine.Approve(context.Background(), "click-1", r.ID, "UALICE", w.mustCard(t, r.ID))
	if approval.ErrorKind(err) != approval.Forbidden || !strings.Contains(err.Error(), "not one of the approvers") {
		t.Fatalf("removed approver's click: %v, want Forbidden", err)
	}
	got, _ := w.store.Get(context.Background(), r.ID)
	if got.State != approval.Pending || len(got.Approvals) != 0 {
		t.Errorf("%s is %s with %d approvals, want pending with none", r.ID, got.State, len(got.Approvals))
	}
	if n := w.cloud.rebootCalls("ins-aaaaaaaa"); n != 0 {
		t.Errorf("%d reboot calls, want none", n)
	}
	if got, want := fmt.Sprint(w.events(t, approval.AuditQuery{RequestID: r.ID})), "[requested approval_refused]"; got != want {
		t.Errorf("events = %s, want %s", got, want)
	}
}

// TestLapsedApprovalStopsCounting: an approval given before its approver
// was removed stays on record but no longer counts towards what the
// request needs; the card says so.
func TestLapsedApprovalStopsCounting(t *testing.T) {
	p := testPolicy()
	p.MinApprovals = 2
	w := mustWorld(t, p, newFakeCloud(testInstances()...), "")
	r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
	ctx := context.Background()
	if _, err := w.engine.Approve(ctx, "click-1", r.ID, "UALICE", w.mustCard(t, r.ID)); err != nil {
		t.Fatal(err)
	}
	next := without("UALICE")
	next.MinApprovals = 2
	if err := w.engine.SetPolicy(next); err != nil {
		t.Fatal(err)
	}
	res, err := w.engine.Approve(ctx, "click-2", r.ID, "UBOB", w.mustCard(t, r.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Message, "(1 of 2 approvals)") {
		t.Errorf("second approver was told %q, want 1 of 2", res.Message)
	}
	got, _ := w.store.Get(ctx, r.ID)
	if got.State != approval.Pending || len(got.Approvals) != 2 || !got.Approvals[0].Lapsed || got.Approvals[1].Lapsed {
		t.Fatalf("%s is %s with approvals %+v, want pending with UALICE's lapsed", r.ID, got.State, got.Approvals)
	}
	if n := w.cloud.rebootCalls("ins-aaaaaaaa"); n != 0 {
		t.Errorf("%d reboot calls with one counting approval, want none", n)
	}
	evs := w.auditOf(t, r.ID)
	last := evs[len(evs)-1]
	if last.Type != approval.EventApproved || fmt.Sprint(last.Details.Approvals) != "[UBOB]" || !strings.Contains(last.Details.Note, "UALICE") {
		t.Errorf("last event = %s %v %q, want approved counting UBOB and naming UALICE's lapsed approval", last.Type, last.Details.Approvals, last.Details.Note)
	}
	if _, err := w.engine.Approve(ctx, "click-3", r.ID, "UCAROL", w.mustCard(t, r.ID)); err != nil {
		t.Fatal(err)
	}
	w.waitState(t, r.ID, approval.Succeeded)
	if n := w.cloud.rebootCalls("ins-aaaaaaaa"); n != 1 {
		t.Errorf("%d reboot calls, want 1", n)
	}
	if shown := w.slack.card(r.ID); shown == nil || !shown.Approvals[0].Lapsed {
		t.Error("the card does not show UALICE's approval as lapsed")
	}
}

// TestSelfApprovalTurnedOff: the requester's own approval stops counting
// once the policy no longer allows self approval.
func TestSelfApprovalTurnedOff(t *testing.T) {
	p := testPolicy()
	p.AllowSelfApproval, p.MinApprovals = true, 2
	p.Approvers = append(p.Approvers, "UREQ")
	w := mustWorld(t, p, newFakeCloud(testInstances()...), "")
	r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
	ctx := context.Background()
	if _, err := w.engine.Approve(ctx, "click-1", r.ID, "UREQ", w.mustCard(t, r.ID)); err != nil {
		t.Fatal(err)
	}
	next := testPolicy()
	next.MinApprovals = 2
	next.Approvers = append(next.Approvers, "UREQ")
	if err := w.engine.SetPolicy(next); err != nil {
		t.Fatal(err)
	}
	res, err := w.engine.Approve(ctx, "click-2", r.ID, "UALICE", w.mustCard(t, r.ID))
	if err != nil || !strings.Contains(res.Message, "(1 of 2 approvals)") {
		t.Fatalf("approval after self approval was turned off: %q, %v; want 1 of 2", res.Message, err)
	}
}

// TestNewDenyRuleEndsPendingRequest: a new policy whose deny rule
// protects an instance of a pending request ends it at once, denied by the
// bot with the reason, without anyone clicking; nothing reboots.
func TestNewDenyRuleEndsPendingRequest(t *testing.T) {
	w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
	r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-bbbbbbbb"}})
	staging := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
	if err := w.engine.SetPolicy(prodDenied()); err != nil {
		t.Fatal(err)
	}
	got := w.waitState(t, r.ID, approval.Denied)
	if got.DecidedBy != approval.ActorBot || !strings.Contains(got.Note, "does not allow rebooting ins-bbbbbbbb") || len(got.Runs) != 0 {
		t.Errorf("denied by %q, note %q, runs %d; want the bot, naming ins-bbbbbbbb, no runs", got.DecidedBy, got.Note, len(got.Runs))
	}
	evs := w.auditOf(t, r.ID)
	var types []approval.EventType
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	if got, want := fmt.Sprint(types), "[requested denied]"; got != want {
		t.Errorf("events = %s, want %s", got, want)
	}
	if last := evs[len(evs)-1]; last.Actor != approval.ActorBot || last.Details.Outcome != string(approval.Denied) || !strings.Contains(last.Details.Note, "ins-bbbbbbbb") {
		t.Errorf("denied event = %+v", last)
	}
	if shown := w.slack.card(r.ID); shown == nil || shown.State != approval.Denied {
		t.Error("the card does not show the denial")
	}
	if _, err := w.engine.Approve(context.Background(), "click-1", r.ID, "UALICE", w.mustCard(t, r.ID)); approval.ErrorKind(err) != approval.Conflict || !strings.Contains(err.Error(), "already denied") {
		t.Errorf("approval after the denial: %v, want already denied", err)
	}
	for _, id := range r.InstanceIDs() {
		if n := w.cloud.rebootCalls(id); n != 0 {
			t.Errorf("%s: %d reboot calls, want none", id, n)
		}
	}
	if reps := w.slack.reportsOf(r.ID); len(reps) != 0 {
		t.Errorf("thread reports %v for a request that never started", reps)
	}
	// A request the rule does not touch goes on.
	if got, _ := w.store.Get(context.Background(), staging.ID); got.State != approval.Pending {
		t.Errorf("%s is %s, want still pending", staging.ID, got.State)
	}
}

// TestApproveRacingDenyRule: an approval that arrives while a new deny
// rule is being applied is judged by it too: whichever comes first, the
// request ends denied by the bot, once, and nothing reboots.
func TestApproveRacingDenyRule(t *testing.T) {
	for i := range 20 {
		w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
		r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-bbbbbbbb"}})
		if err := w.engine.SetPolicy(prodDenied()); err != nil {
			t.Fatal(err)
		}
		res, err := w.engine.Approve(context.Background(), "click", r.ID, "UALICE", w.mustCard(t, r.ID))
		switch {
		case err == nil && strings.Contains(res.Message, "does not allow rebooting ins-bbbbbbbb"):
		case approval.ErrorKind(err) == approval.Conflict && strings.Contains(err.Error(), "already denied"):
		default:
			t.Fatalf("round %d: approval answered %q, %v", i, res.Message, err)
		}
		got := w.waitState(t, r.ID, approval.Denied)
		if got.DecidedBy != approval.ActorBot || len(got.Approvals) != 0 {
			t.Errorf("round %d: decided by %q with %d approvals, want the bot and none", i, got.DecidedBy, len(got.Approvals))
		}
		denied := 0
		for _, ev := range w.auditOf(t, r.ID) {
			if ev.Type == approval.EventDenied && ev.Actor == approval.ActorBot {
				denied++
			}
		}
		if denied != 1 || w.cloud.rebootCalls("ins-bbbbbbbb") != 0 {
			t.Errorf("round %d: %d denied events and %d reboot calls, want 1 and none", i, denied, w.cloud.rebootCalls("ins-bbbbbbbb"))
		}
		w.stop(t)
	}
}

// TestPolicyChangeShowsOnCards: a new policy shows on the cards of
// pending requests without anyone clicking: what they now need, and which
// approvals no longer count. Lowered requirements start nothing.
func TestPolicyChangeShowsOnCards(t *testing.T) {
	p := testPolicy()
	p.MinApprovals = 2
	w := mustWorld(t, p, newFakeCloud(testInstances()...), "")
	r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
	if _, err := w.engine.Approve(context.Background(), "click-1", r.ID, "UALICE", w.mustCard(t, r.ID)); err != nil {
		t.Fatal(err)
	}
	next := without("UALICE")
	next.MinApprovals = 3
	if err := w.engine.SetPolicy(next); err != nil {
		t.Fatal(err)
	}
	var shown *approval.Request
	if !testutil.Poll(10*time.Second, func() bool {
		shown = w.slack.card(r.ID)
		return shown != nil && shown.Required == 3 && len(shown.Approvals) == 1 && shown.Approvals[0].Lapsed && !slices.Contains(shown.ApproverGroups[0], "UALICE")
	}) {
		t.Fatalf("the card shows %+v, want 3 needed and UALICE's approval lapsed", shown)
	}
	// Back to a policy under which UALICE's approval is enough: it counts
	// again, but only a click starts a reboot, such as UALICE's own.
	if err := w.engine.SetPolicy(testPolicy()); err != nil {
		t.Fatal(err)
	}
	if !testutil.Poll(10*time.Second, func() bool {
		shown = w.slack.card(r.ID)
		return shown.Required == 1 && !shown.Approvals[0].Lapsed
	}) {
		t.Fatalf("the card shows %+v, want 1 needed and UALICE's approval counted", shown)
	}
	if got, _ := w.store.Get(context.Background(), r.ID); got.State != approval.Pending || w.cloud.rebootCalls("ins-aaaaaaaa") != 0 {
		t.Errorf("%s is %s with %d reboot calls, want pending with none", r.ID, got.State, w.cloud.rebootCalls("ins-aaaaaaaa"))
	}
	res, err := w.engine.Approve(context.Background(), "click-2", r.ID, "UALICE", w.mustCard(t, r.ID))
	if err != nil || !strings.Contains(res.Message, "the reboot starts now") {
		t.Fatalf("UALICE's second click: %q, %v; want the reboot to start", res.Message, err)
	}
	w.waitState(t, r.ID, approval.Succeeded)
	if got := fmt.Sprint(w.events(t, approval.AuditQuery{RequestID: r.ID})); !strings.HasPrefix(got, "[requested approved executing ") {
		t.Errorf("events = %s, want one approval then the execution", got)
	}
}

// approvedBeforeRestart stores request id as an approved execution that
// has called nothing yet, as a bot that died right after the last
// approval leaves it.
func approvedBeforeRestart(t *testing.T, dbPath, id, approver string) {
	t.Helper()
	db, err := store.Open(dbPath, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, _, _, err = db.Update(context.Background(), id, "", func(r *approval.Request) (approval.Change, error) {
		now := r.CreatedAt.Add(time.Minute)
		r.Approvals = append(r.Approvals, approval.Approval{User: approver, At: now})
		r.State, r.DecidedBy, r.DecidedAt, r.StartedAt = approval.Executing, approver, now, now
		r.Runs = nil
		for _, in := range r.Instances {
			r.Runs = append(r.Runs, approval.Run{InstanceID: in.ID})
		}
		r.Version++
		r.CardCurrent = false
		return approval.Change{Save: true, Events: []approval.Event{
			{RequestID: id, Type: approval.EventApproved, Actor: approver, Instances: r.InstanceIDs()},
			{RequestID: id, Type: approval.EventExecuting, Actor: approval.ActorBot, Instances: r.InstanceIDs()},
		}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestExecutionRechecksPolicy: an execution resumed after a restart that
// has called nothing yet is judged by the policy in force before it
// starts; when that policy denies it or its approvals no longer count, it
// ends denied by the bot with the reason and nothing reboots.
func TestExecutionRechecksPolicy(t *testing.T) {
	tests := []struct {
		name   string
		policy *approval.Policy
		want   approval.State
		note   string
	}{
		{"Unchanged", testPolicy(), approval.Succeeded, ""},
		{"DenyRule", prodDenied(), approval.Denied, "does not allow rebooting ins-bbbbbbbb"},
		{"ApproverRemoved", without("UALICE"), approval.Denied, "needs 1 approval and only 0 of the approvals given still count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dbPath := filepath.Join(t.TempDir(), "bot.db")
			cloud := newFakeCloud(testInstances()...)
			w := mustWorld(t, testPolicy(), cloud, dbPath)
			r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa", "ins-bbbbbbbb"}})
			w.stop(t)
			approvedBeforeRestart(t, dbPath, r.ID, "UALICE")

			w2 := mustWorld(t, tt.policy, cloud, dbPath)
			got := w2.waitState(t, r.ID, tt.want)
			calls := cloud.rebootCalls("ins-aaaaaaaa") + cloud.rebootCalls("ins-bbbbbbbb")
			if tt.want == approval.Succeeded {
				if calls != 2 {
					t.Errorf("%d reboot calls, want 2", calls)
				}
				return
			}
			if calls != 0 {
				t.Errorf("%d reboot calls, want none", calls)
			}
			if got.DecidedBy != approval.ActorBot || !strings.Contains(got.Note, tt.note) {
				t.Errorf("decided by %q with note %q, want the bot saying %q", got.DecidedBy, got.Note, tt.note)
			}
			evs := w2.auditOf(t, r.ID)
			last := evs[len(evs)-1]
			if last.Type != approval.EventDenied || last.Actor != approval.ActorBot || !strings.Contains(last.Details.Note, tt.note) {
				t.Errorf("last event = %s by %s: %q", last.Type, last.Actor, last.Details.Note)
			}
			if shown := w2.slack.card(r.ID); shown == nil || shown.State != approval.Denied {
				t.Error("the card does not show the denial")
			}
			if n, err := w2.store.Verify(context.Background()); err != nil || n == 0 {
				t.Errorf("verify = %d, %v", n, err)
			}
		})
	}
}

// TestClickBoundToCard: a click acts only on the request whose card it
// came from; a click from any other message is refused, audited, and
// changes nothing.
func TestClickBoundToCard(t *testing.T) {
	w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
	r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
	ctx := context.Background()
	card := w.mustCard(t, r.ID)
	others := map[string]approval.Card{
		"OtherMessage": {Channel: card.Channel, TS: "1600000000.000001"},
		"OtherChannel": {Channel: "COTHER", TS: card.TS},
		"NoCard":       {},
	}
	for name, from := range others {
		t.Run(name, func(t *testing.T) {
			for i, click := range []func(context.Context, string, string, string, approval.Card) (approval.Result, error){w.engine.Approve, w.engine.Deny} {
				_, err := click(ctx, fmt.Sprintf("click-%s-%d", name, i), r.ID, "UALICE", from)
				if approval.ErrorKind(err) != approval.Conflict || !strings.Contains(err.Error(), "not the current card of "+r.ID) {
					t.Errorf("click from %+v: %v, want a refusal", from, err)
				}
			}
		})
	}
	got, _ := w.store.Get(ctx, r.ID)
	if got.State != approval.Pending || len(got.Approvals) != 0 {
		t.Fatalf("%s is %s with %d approvals, want untouched", r.ID, got.State, len(got.Approvals))
	}
	refused := 0
	for _, ev := range w.auditOf(t, r.ID) {
		if ev.Type == approval.EventApprovalRefused && ev.Actor == "UALICE" {
			refused++
		}
	}
	if refused != 2*len(others) {
		t.Errorf("%d approval_refused events, want %d", refused, 2*len(others))
	}
	if _, err := w.engine.Approve(ctx, "click-card", r.ID, "UALICE", card); err != nil {
		t.Fatalf("click on the card: %v", err)
	}
	w.waitState(t, r.ID, approval.Succeeded)
}

// TestClickWhileCardUnknown: while a request's card is not stored (Slack's
// answer to the post was lost), a click from a card Slack took after the
// request was made acts on it, and one from an older message, such as the
// card of an earlier request with the same number, is refused.
func TestClickWhileCardUnknown(t *testing.T) {
	p := testPolicy()
	p.MinApprovals = 2
	w := mustWorld(t, p, newFakeCloud(testInstances()...), "")
	w.slack.setRefuse(approval.Errorf(approval.Unavailable, "Slack is down"))
	r := w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
	if r.Card.TS != "" {
		t.Fatalf("card stored as %+v while Slack is down", r.Card)
	}
	ctx := context.Background()
	old := approval.Card{Channel: r.Channel, TS: fmt.Sprintf("%d.000100", r.CreatedAt.Add(-time.Hour).Unix())}
	if _, err := w.engine.Approve(ctx, "click-old", r.ID, "UALICE", old); approval.ErrorKind(err) != approval.Conflict {
		t.Errorf("click from an older message: %v, want refused", err)
	}
	elsewhere := approval.Card{Channel: "COTHER", TS: fmt.Sprintf("%d.000100", r.CreatedAt.Add(time.Second).Unix())}
	if _, err := w.engine.Approve(ctx, "click-elsewhere", r.ID, "UALICE", elsewhere); approval.ErrorKind(err) != approval.Conflict {
		t.Errorf("click from another channel: %v, want refused", err)
	}
	posted := approval.Card{Channel: r.Channel, TS: fmt.Sprintf("%d.000100", r.CreatedAt.Add(time.Second).Unix())}
	res, err := w.engine.Approve(ctx, "click-new", r.ID, "UALICE", posted)
	if err != nil || !strings.Contains(res.Message, "1 of 2") {
		t.Errorf("click from the card posted after the request: %q, %v; want it counted", res.Message, err)
	}
}

func TestCardPostedAt(t *testing.T) {
	tests := []struct {
		ts   string
		want time.Time
		ok   bool
	}{
		{"1741082100.000100", time.Unix(1741082100, 100_000).UTC(), true},
		{"1741082100", time.Unix(1741082100, 0).UTC(), true},
		{"1741082100.5", time.Unix(1741082100, 500_000_000).UTC(), true},
		{"", time.Time{}, false},
		{"abc.000001", time.Time{}, false},
		{"1741082100.-00001", time.Time{}, false},
		{"1741082100.1234567", time.Time{}, false},
		{"-5.000001", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := approval.Card{TS: tt.ts}.PostedAt()
		if !got.Equal(tt.want) || ok != tt.ok {
			t.Errorf("PostedAt(%q) = %v, %v; want %v, %v", tt.ts, got, ok, tt.want, tt.ok)
		}
	}
}
