package bot_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"rebootbot/approval"
)

// TestClickOnCardFromLostDatabase: the database is lost and request
// numbers start again at R-1. A click on the card of the old R-1 reaches
// the bot with the new R-1's number; it is refused with a short
// explanation, audited, and nothing reboots.
func TestClickOnCardFromLostDatabase(t *testing.T) {
	before := mustEnv(t)
	old := before.create(requester, "ins-web00001 hung")
	// The same Slack workspace, a new empty database.
	e := mustEnv(t, func(c *envConfig) { c.stub = before.stub })
	fresh := e.create(requester, "ins-web00002 other work")
	if fresh.ID != old.ID || fresh.Card.TS == old.Card.TS {
		t.Fatalf("new request %s on card %s, old %s on card %s; want the same number on another card", fresh.ID, fresh.Card.TS, old.ID, old.Card.TS)
	}
	for _, action := range []string{"approve", "deny"} {
		ans, responseURL := e.clickOn(approverA, action, old.ID, e.trigger(), old.Card.TS)
		if ans.Status != http.StatusOK {
			t.Fatalf("click answered %d", ans.Status)
		}
		if got := e.responseText(responseURL, 1); !strings.Contains(got, "This is not the current card of "+fresh.ID) {
			t.Errorf("%s on the old card: clicker was told %q", action, got)
		}
	}
	if r := e.request(fresh.ID); r.State != approval.Pending || len(r.Approvals) != 0 {
		t.Errorf("%s is %s with %d approvals, want untouched", fresh.ID, r.State, len(r.Approvals))
	}
	if n := e.emu.RebootCalls(web2); n != 0 {
		t.Errorf("%s received %d reboot calls", web2, n)
	}
	var refused int
	for _, ev := range e.events(approval.AuditQuery{RequestID: fresh.ID}) {
		if ev.Type == approval.EventApprovalRefused && ev.Actor == approverA && strings.Contains(ev.Details.Note, old.Card.TS) {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d approval_refused events naming the old card, want 2", refused)
	}
	// The new request's own card still works.
	e.click(approverA, "approve", fresh.ID)
	e.waitState(fresh.ID, approval.Succeeded)
	if n := e.emu.RebootCalls(web2); n != 1 {
		t.Errorf("%s received %d reboot calls, want 1", web2, n)
	}
}

// TestRemovedApproverClick: after the policy in force drops an approver,
// their click on an older request's card is refused and audited, and the
// card of a request they had approved shows their approval no longer
// counts.
func TestRemovedApproverClick(t *testing.T) {
	e := mustEnv(t, func(c *envConfig) { c.policy.MinApprovals = 2 })
	first := e.create(requester, "ins-web00001 hung")
	second := e.create(requester, "ins-web00002 hung")
	e.click(approverA, "approve", first.ID)
	e.waitCard(first.ID, "1 of 2")

	next := *e.engine.Policy()
	next.Approvers = slices.DeleteFunc(slices.Clone(next.Approvers), func(id string) bool { return id == approverA })
	if err := e.engine.SetPolicy(&next); err != nil {
		t.Fatal(err)
	}
	_, responseURL := e.click(approverA, "approve", second.ID)
	if got := e.responseText(responseURL, 1); !strings.Contains(got, "You are not one of the approvers of "+second.ID) {
		t.Errorf("removed approver was told %q", got)
	}
	if r := e.request(second.ID); len(r.Approvals) != 0 {
		t.Errorf("%s has %d approvals, want none", second.ID, len(r.Approvals))
	}
	_, responseURL = e.click(approverB, "approve", first.ID)
	if got := e.responseText(responseURL, 1); !strings.Contains(got, "(1 of 2 approvals)") {
		t.Errorf("second approver of %s was told %q, want 1 of 2", first.ID, got)
	}
	e.waitCard(first.ID, "no longer counts")
	if n := e.emu.RebootCalls(web1) + e.emu.RebootCalls(web2); n != 0 {
		t.Errorf("%d reboot calls, want none", n)
	}
}
