package bot_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot/slackstub"
	"rebootbot/internal/testutil"
)

// dbaGroup is a second approver group beside sreGroup.
const dbaGroup = "S0DBAGROUP"

// twoGroups makes the approvers two user groups and nobody else.
func twoGroups(c *envConfig) { c.policy.Approvers = []string{sreGroup, dbaGroup} }

// clickTimed clicks like e.click and returns how long the answer took.
func (e *env) clickTimed(user, action, id string) (reply, string, time.Duration) {
	e.t.Helper()
	start := time.Now()
	ans, responseURL := e.click(user, action, id)
	return ans, responseURL, time.Since(start)
}

// TestGroupLookupFailsClosed: when the approver groups cannot be looked
// up, the click is still answered well within Slack's 3 seconds, and it is
// refused and audited rather than counted on a guess.
func TestGroupLookupFailsClosed(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
	}{
		{"BothGroupsHang", func(e *env) {
			e.stub.Fail(slackstub.Fault{Method: "usergroups.users.list", Delay: time.Minute, Count: 2})
		}},
		{"CacheOlderThanTTL", func(e *env) {
			// sreMember's group was read when they approved another
			// request; a minute later Slack fails, and that old answer
			// no longer counts.
			e.create(requester, "ins-web00003 warm the cache")
			if _, u := e.click(sreMember, "approve", "R-1"); !strings.Contains(e.responseText(u, 1), "You approved R-1") {
				t.Fatal("the warm-up approval was not counted")
			}
			e.waitState("R-1", approval.Succeeded)
			e.clock.Advance(2 * time.Minute)
			for range 20 {
				e.stub.Fail(slackstub.Fault{Method: "usergroups.users.list", Status: http.StatusInternalServerError})
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEnv(t, twoGroups)
			e.stub.SetGroup(dbaGroup, "U0DBAMEMBER")
			tt.setup(e)
			r := e.create(requester, "ins-web00001 hung")
			ans, responseURL, took := e.clickTimed(sreMember, "approve", r.ID)
			if ans.Status != http.StatusOK {
				t.Fatalf("click answered %d", ans.Status)
			}
			if took >= 2500*time.Millisecond {
				t.Errorf("click answered after %v, want well within Slack's 3 s", took)
			}
			t.Logf("click answered in %v", took.Round(time.Millisecond))
			if got := e.responseText(responseURL, 1); !strings.Contains(got, "couldn't check your user groups; try again") {
				t.Errorf("clicker was told %q", got)
			}
			if got := e.request(r.ID); got.State != approval.Pending || len(got.Approvals) != 0 {
				t.Errorf("%s is %s with %d approvals, want it pending with none", r.ID, got.State, len(got.Approvals))
			}
			evs := e.events(approval.AuditQuery{RequestID: r.ID})
			if last := evs[len(evs)-1]; last.Type != approval.EventApprovalRefused || last.Actor != sreMember {
				t.Errorf("last event of %s is %s by %s, want the refused click audited", r.ID, last.Type, last.Actor)
			}
		})
	}
}

// TestConcurrentClicksShareLookups: clicks that arrive while a group is
// being looked up wait for that lookup instead of starting their own: one
// usergroups.users.list per group, however many clicks.
func TestConcurrentClicksShareLookups(t *testing.T) {
	e := mustEnv(t, twoGroups, func(c *envConfig) { c.policy.MinApprovals = 5 })
	members := []string{sreMember, "U0SRE2", "U0SRE3", "U0SRE4"}
	e.stub.SetGroup(sreGroup, members...)
	e.stub.SetGroup(dbaGroup, "U0DBAMEMBER")
	e.create(requester, "ins-web00001 hung")
	// Both first lookups are slow, so every click arrives while they run.
	e.stub.Fail(slackstub.Fault{Method: "usergroups.users.list", Delay: 300 * time.Millisecond, Count: 2})
	urls := make([]string, len(members))
	var wg sync.WaitGroup
	for i, u := range members {
		wg.Go(func() { _, urls[i] = e.click(u, "approve", "R-1") })
	}
	wg.Wait()
	for i, u := range urls {
		if got := e.responseText(u, 1); !strings.Contains(got, "You approved R-1") {
			t.Errorf("%s was told %q", members[i], got)
		}
	}
	if r := e.request("R-1"); len(r.Approvals) != len(members) {
		t.Errorf("R-1 has %d approvals, want %d", len(r.Approvals), len(members))
	}
	var n int
	testutil.Eventually(t, waitLong, func() bool {
		n = 0
		for _, c := range e.stub.Calls() {
			if c.Method != "usergroups.users.list" {
				continue
			}
			if c.Status == 0 {
				return false // still in flight
			}
			n++
		}
		return n >= 2
	}, "the group lookups to end")
	if n != 2 {
		t.Errorf("usergroups.users.list called %d times for %d concurrent clicks, want once per group", n, len(members))
	}
}
