package bot_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
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
	t.Parallel() // waits out real deadlines
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

// TestGroupLookupsShareOneDeadline: a request whose instances fall under
// two rules, each with its own approver group, is decided with both groups
// looked up at once under one deadline. When they are slow, the clicker
// is told in about one GroupLookupTimeout, not one per rule, and refused.
func TestGroupLookupsShareOneDeadline(t *testing.T) {
	t.Parallel() // waits out real deadlines
	e := mustEnv(t, func(c *envConfig) {
		c.policy.Rules = append(c.policy.Rules,
			approval.Rule{Tags: map[string]string{"team": "web"}, Approvers: []string{sreGroup}},
			approval.Rule{Tags: map[string]string{"team": "db"}, Approvers: []string{dbaGroup}})
	})
	if err := e.emu.Add(
		emulator.Instance{ID: "ins-teamweb1", Name: "team-web", Zone: "ap-guangzhou-3", Tags: map[string]string{"team": "web"}},
		emulator.Instance{ID: "ins-teamdb01", Name: "team-db", Zone: "ap-guangzhou-3", Tags: map[string]string{"team": "db"}},
	); err != nil {
		t.Fatal(err)
	}
	e.stub.SetGroup(dbaGroup, sreMember)
	r := e.create(requester, "ins-teamweb1 ins-teamdb01 both hung")
	if got := len(r.ApproverGroups); got != 2 {
		t.Fatalf("%s has %d approver lists, want one per rule", r.ID, got)
	}
	// One group answers late but in time, the other hangs: looked up one
	// list after another, the hanging one would get a deadline of its own
	// after the late answer, and the decision would come after Slack's 3 s.
	e.stub.Fail(slackstub.Fault{Method: "usergroups.users.list", Delay: 1200 * time.Millisecond})
	e.stub.Fail(slackstub.Fault{Method: "usergroups.users.list", Delay: time.Minute})
	start := time.Now()
	ans, responseURL := e.click(sreMember, "approve", r.ID)
	if ans.Status != http.StatusOK {
		t.Fatalf("click answered %d", ans.Status)
	}
	// The answer may come after the acknowledgement, on the response_url:
	// the time that counts is when the clicker reads the decision.
	got := e.responseText(responseURL, 1)
	wantOneDeadline(t, time.Since(start))
	if !strings.Contains(got, "couldn't check your user groups; try again") {
		t.Errorf("clicker was told %q", got)
	}
	if got := e.request(r.ID); got.State != approval.Pending || len(got.Approvals) != 0 {
		t.Errorf("%s is %s with %d approvals, want it pending with none", r.ID, got.State, len(got.Approvals))
	}
}

// TestEarlierApproverUnchecked: when the groups that cannot be looked up
// are those of someone who approved earlier, the clicker is told so, not
// that their own groups could not be checked, and nothing is counted.
func TestEarlierApproverUnchecked(t *testing.T) {
	e := mustEnv(t, func(c *envConfig) { c.policy.MinApprovals = 3 })
	r := e.create(requester, "ins-web00001 earlier approver")
	if _, u := e.click(sreMember, "approve", r.ID); !strings.Contains(e.responseText(u, 1), "You approved "+r.ID) {
		t.Fatal("the first approval was not counted")
	}
	// The group's answer ages out, and Slack fails from now on.
	e.clock.Advance(2 * time.Minute)
	for range 20 {
		e.stub.Fail(slackstub.Fault{Method: "usergroups.users.list", Status: http.StatusInternalServerError})
	}
	_, responseURL := e.click(approverA, "approve", r.ID)
	got := e.responseText(responseURL, 1)
	if !strings.Contains(got, "couldn't check the user groups of the people who approved before you") {
		t.Errorf("clicker was told %q", got)
	}
	if strings.Contains(got, "your user groups") {
		t.Errorf("clicker, a direct approver, was told their own groups were unchecked: %q", got)
	}
	if got := e.request(r.ID); got.State != approval.Pending || len(got.Approvals) != 1 {
		t.Errorf("%s is %s with %d approvals, want it pending with the first one only", r.ID, got.State, len(got.Approvals))
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

// TestViewLookupsShareOneDeadline: whether someone may look requests up
// is decided with the groups of every list that would let them in looked up
// at once, under one deadline, not one list after another.
func TestViewLookupsShareOneDeadline(t *testing.T) {
	t.Parallel() // waits out real deadlines
	e := mustEnv(t, func(c *envConfig) {
		c.policy.Requesters = []string{requester}
		c.policy.Rules = append(c.policy.Rules, approval.Rule{Tags: map[string]string{"team": "db"}, Approvers: []string{dbaGroup}})
	})
	// One group answers late, without the user, the other hangs.
	e.stub.Fail(slackstub.Fault{Method: "usergroups.users.list", Delay: 1200 * time.Millisecond})
	e.stub.Fail(slackstub.Fault{Method: "usergroups.users.list", Delay: time.Minute})
	start := time.Now()
	ans, responseURL := e.command("U0DBAMEMBER", channel, "pending")
	got := ans.text()
	if ans.Raw == "" {
		got = e.responseText(responseURL, 1)
	}
	wantOneDeadline(t, time.Since(start))
	if !strings.Contains(got, "couldn't check your user groups; try again") {
		t.Errorf("pending answered %q", got)
	}
}

// wantOneDeadline fails t unless an answer that waited on hung user groups
// took about one GroupLookupTimeout, the one deadline all of a decision's
// lookups share, rather than one per list.
func wantOneDeadline(t *testing.T, took time.Duration) {
	t.Helper()
	if took >= 2*time.Second {
		t.Errorf("told after %v, want one lookup deadline (%v), not one per list", took, approval.GroupLookupTimeout)
	}
	t.Logf("told in %v", took.Round(time.Millisecond))
}
