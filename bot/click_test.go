package bot_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/internal/testutil"
)

// TestRefusedClicks: clicks that change nothing get a short ephemeral
// explanation and are audited; the request stays as it was.
func TestRefusedClicks(t *testing.T) {
	tests := []struct {
		name      string
		requester string
		user      string
		action    string
		id        string
		want      string
	}{
		{"Outsider", requester, outsider, "approve", "R-1", "You are not one of the approvers of R-1."},
		{"OutsiderDenies", requester, outsider, "deny", "R-1", "Only an approver of R-1 can deny it."},
		{"SelfApproval", approverA, approverA, "approve", "R-1", "You asked for R-1, so you can't approve it"},
		{"UnknownRequest", requester, approverA, "approve", "R-99", "There is no request R-99"},
		{"GarbageValue", requester, approverA, "approve", "<!channel>", "There is no request that request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEnv(t)
			e.create(tt.requester, "ins-web00001 hung")
			ans, responseURL := e.click(tt.user, tt.action, tt.id)
			if ans.Status != http.StatusOK {
				t.Fatalf("click answered %d", ans.Status)
			}
			if got := e.responseText(responseURL, 1); !strings.Contains(got, tt.want) {
				t.Errorf("clicker was told %q, want %q", got, tt.want)
			}
			if r := e.request("R-1"); r.State != approval.Pending || len(r.Approvals) != 0 {
				t.Errorf("R-1 is %s with %d approvals, want it untouched", r.State, len(r.Approvals))
			}
			evs := e.events(approval.AuditQuery{User: tt.user})
			if len(evs) == 0 || evs[len(evs)-1].Type != approval.EventApprovalRefused {
				t.Errorf("refusal not audited: %v", eventTypes(evs))
			}
		})
	}
}

// TestGroupMemberApproves: approvers listed as a user group are resolved
// with usergroups.users.list.
func TestGroupMemberApproves(t *testing.T) {
	e := mustEnv(t)
	e.create(requester, "ins-web00001 hung")
	_, responseURL := e.click(sreMember, "approve", "R-1")
	if got := e.responseText(responseURL, 1); !strings.Contains(got, "You approved R-1") {
		t.Fatalf("group member was told %q", got)
	}
	if e.stub.count("usergroups.users.list") == 0 {
		t.Error("the group was not looked up")
	}
	e.waitState("R-1", approval.Succeeded)
}

// TestDoubleClick: the same click delivered twice acts once and is answered
// the same way; a second click by the same approver is refused.
func TestDoubleClick(t *testing.T) {
	e := mustEnv(t, func(c *envConfig) { c.policy.MinApprovals = 2 })
	e.create(requester, "ins-web00001 hung")
	trigger := e.trigger()
	_, first := e.clickWithTrigger(approverA, "approve", "R-1", trigger)
	_, again := e.clickWithTrigger(approverA, "approve", "R-1", trigger)
	got1, got2 := e.responseText(first, 1), e.responseText(again, 1)
	if got1 != got2 || !strings.Contains(got1, "You approved R-1 (1 of 2 approvals)") {
		t.Errorf("answers %q and %q, want the same approval answer twice", got1, got2)
	}
	_, third := e.click(approverA, "approve", "R-1")
	if got := e.responseText(third, 1); !strings.Contains(got, "You have already approved R-1") {
		t.Errorf("second approval answered %q", got)
	}
	r := e.request("R-1")
	if len(r.Approvals) != 1 || r.State != approval.Pending {
		t.Errorf("R-1 is %s with %d approvals, want pending with 1", r.State, len(r.Approvals))
	}
	var approved int
	for _, ev := range e.events(approval.AuditQuery{RequestID: "R-1"}) {
		if ev.Type == approval.EventApproved {
			approved++
		}
	}
	if approved != 1 {
		t.Errorf("%d approved events, want 1", approved)
	}
	e.waitCard("R-1", "1 of 2")
}

// TestConcurrentClicks: several approvers click at once on a request that
// needs one approval; it is executed exactly once.
func TestConcurrentClicks(t *testing.T) {
	e := mustEnv(t)
	e.create(requester, "ins-web00001 ins-web00002 hung")
	users := []string{approverA, approverB, sreMember, approverA}
	urls := make([]string, len(users))
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			ans, responseURL := e.click(u, "approve", "R-1")
			if ans.Status != http.StatusOK {
				t.Errorf("click answered %d", ans.Status)
			}
			urls[i] = responseURL
		})
	}
	wg.Wait()
	var won int
	for _, u := range urls {
		msg := e.responseText(u, 1)
		switch {
		case strings.Contains(msg, "that was the last approval needed"):
			won++
		case strings.Contains(msg, "R-1 is already"), strings.Contains(msg, "already approved"):
		default:
			t.Errorf("clicker was told %q", msg)
		}
	}
	if won != 1 {
		t.Errorf("%d clicks approved R-1, want exactly 1", won)
	}
	e.waitState("R-1", approval.Succeeded)
	for _, id := range []string{web1, web2} {
		if n := e.emu.RebootCalls(id); n != 1 {
			t.Errorf("%s rebooted %d times, want 1", id, n)
		}
	}
}

func TestDeny(t *testing.T) {
	e := mustEnv(t)
	e.create(requester, "ins-web00001 hung")
	_, responseURL := e.click(approverB, "deny", "R-1")
	if got := e.responseText(responseURL, 1); got != "You denied R-1." {
		t.Errorf("denier was told %q", got)
	}
	e.waitState("R-1", approval.Denied)
	blocks := e.waitCard("R-1", "*Denied* by <@"+approverB+">")
	if strings.Contains(blocks, `"action_id"`) {
		t.Error("denied card still has buttons")
	}
	_, late := e.click(approverA, "approve", "R-1")
	if got := e.responseText(late, 1); !strings.Contains(got, "R-1 is already denied") {
		t.Errorf("late approval answered %q", got)
	}
	if n := e.emu.Calls("RebootInstances"); n != 0 {
		t.Errorf("%d reboot calls after a denial", n)
	}
}

func TestCancel(t *testing.T) {
	e := mustEnv(t)
	e.create(requester, "ins-web00001 hung")
	ans, responseURL := e.command(approverA, channel, "cancel R-1")
	got := ans.text()
	if got == "" {
		got = e.responseText(responseURL, 1)
	}
	if !strings.Contains(got, "can cancel it") {
		t.Errorf("someone else's cancel answered %q", got)
	}
	ans, responseURL = e.command(requester, channel, "cancel R-1")
	got = ans.text()
	if got == "" {
		got = e.responseText(responseURL, 1)
	}
	if got != "You cancelled R-1." {
		t.Errorf("cancel answered %q", got)
	}
	e.waitState("R-1", approval.Cancelled)
	e.waitCard("R-1", "*Cancelled* by <@"+requester+">")
	e.create(requester, "ins-web00001 the instance is free again")
}

// TestExpiry: when the TTL passes, the card says Expired without a click.
func TestExpiry(t *testing.T) {
	e := mustEnv(t)
	e.create(requester, "ins-web00001 hung")
	e.clock.Advance(31 * time.Minute)
	e.waitState("R-1", approval.Expired)
	blocks := e.waitCard("R-1", "*Expired*")
	if strings.Contains(blocks, `"action_id"`) {
		t.Error("expired card still has buttons")
	}
	_, responseURL := e.click(approverA, "approve", "R-1")
	if got := e.responseText(responseURL, 1); !strings.Contains(got, "R-1 is already expired") {
		t.Errorf("late click answered %q", got)
	}
}

// TestPartialFailure: one instance's reboot ends FAILED.
func TestPartialFailure(t *testing.T) {
	e := mustEnv(t)
	r := e.create(requester, "ins-web00001 ins-web00002 hung")
	e.emu.FailNextReboot(web2)
	e.click(approverA, "approve", "R-1")
	e.waitState("R-1", approval.PartiallyFailed)
	e.waitCard("R-1", "*Partially failed*")
	testutil.Eventually(t, waitLong, func() bool {
		th := e.stub.Thread(r.Card.TS)
		return len(th) > 0 && strings.HasPrefix(th[len(th)-1].Text, "*Partially failed*")
	}, "the summary in the thread")
	var failure string
	for _, c := range e.stub.Thread(r.Card.TS) {
		if strings.Contains(c.Text, web2) && strings.Contains(c.Text, "did not reboot") {
			failure = c.Text
		}
	}
	if failure == "" || !strings.Contains(failure, "RequestId") {
		t.Errorf("thread report of the failure = %q, want words, code and RequestId", failure)
	}
}

// TestInjection: text users control (reasons, instance names) pings
// nobody and breaks nothing, wherever it is shown.
func TestInjection(t *testing.T) {
	e := mustEnv(t)
	// As Slack sends it: typed markup escaped, real mentions as markup.
	text := "ins-evil0001 &lt;!channel&gt; <!here> <@U0ATTACKER|eve> <!subteam^S0SREGROUP|@sre> &amp; ```x```"
	r := e.create(requester, text)
	if want := "<!channel> @here @eve @sre & ```x```"; r.Reason != want {
		t.Errorf("reason stored as %q, want %q", r.Reason, want)
	}
	e.click(approverA, "approve", r.ID)
	e.waitState(r.ID, approval.Succeeded)
	e.waitCard(r.ID, "*Succeeded*")
	ans, statusURL := e.command(requester, channel, "status "+r.ID)
	if ans.text() == "" {
		e.responseText(statusURL, 1)
	}
	ans2, auditURL := e.command(requester, channel, "audit "+r.ID)
	if ans2.text() == "" {
		e.responseText(auditURL, 1)
	}
	var texts []string
	for _, c := range e.stub.all("") {
		texts = append(texts, c.Text(), c.Blocks())
	}
	texts = append(texts, ans.Raw, ans2.Raw)
	for _, s := range texts {
		for _, bad := range []string{"<!channel", "<!here", "<!everyone", "<!subteam", "<@U0ATTACKER", "```"} {
			if strings.Contains(s, bad) {
				t.Errorf("Slack was sent %q: %.300s", bad, s)
			}
		}
	}
}

// TestSlowCloud: while DescribeInstances has not answered, the command is
// already acknowledged and nothing else has been sent; the card follows
// the answer.
func TestSlowCloud(t *testing.T) {
	hold := newCloudHold("DescribeInstances")
	e := mustEnv(t, func(c *envConfig) { c.hold = hold })
	ans, responseURL := e.command(requester, channel, "ins-web00001 hung")
	if ans.Status != http.StatusOK || !strings.HasPrefix(ans.text(), "Checking") {
		t.Fatalf("command answered %d %q", ans.Status, ans.Raw)
	}
	select {
	case <-hold.arrived:
	case <-time.After(waitLong):
		t.Fatal("the bot never looked the instance up")
	}
	if n := len(e.stub.cards(channel)); n != 0 {
		t.Fatalf("a card was posted before the lookup answered")
	}
	if n := len(e.stub.responsesTo(responseURL)); n != 0 {
		t.Fatalf("the outcome was sent before the lookup answered")
	}
	hold.open()
	if got := e.responseText(responseURL, 1); !strings.HasPrefix(got, "R-1 is waiting") {
		t.Errorf("requester was told %q", got)
	}
	if n := len(e.stub.cards(channel)); n != 1 {
		t.Errorf("%d cards, want 1", n)
	}
}

// TestSlackRateLimitOnUpdate: chat.update answered 429 is retried after
// Retry-After and the card ends current.
func TestSlackRateLimitOnUpdate(t *testing.T) {
	t.Parallel() // waits out real deadlines
	e := mustEnv(t)
	e.create(requester, "ins-web00001 hung")
	e.stub.Fail(slackstub.Fault{Method: "chat.update", Status: http.StatusTooManyRequests, RetryAfter: 1})
	e.click(approverA, "deny", "R-1")
	e.waitCard("R-1", "*Denied*")
	calls := e.stub.all("chat.update")
	if len(calls) < 2 || calls[0].Status != http.StatusTooManyRequests {
		t.Errorf("chat.update calls %d, first answered %d; want a 429 then a retry", len(calls), calls[0].Status)
	}
}

// TestSlackServerErrors: a 5xx and a network-level failure of
// chat.postMessage are retried.
func TestSlackServerErrors(t *testing.T) {
	e := mustEnv(t)
	e.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: http.StatusInternalServerError})
	e.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: http.StatusServiceUnavailable})
	r := e.create(requester, "ins-web00001 hung")
	if r.Card.TS == "" {
		t.Fatal("no card")
	}
	if n := len(e.stub.all("chat.postMessage")); n != 3 {
		t.Errorf("%d chat.postMessage calls, want 2 failures and 1 success", n)
	}
}

// TestPostAnswerLost: Slack takes the card and a thread report but answers
// 500; the bot finds them in the channel and thread instead of posting
// them twice.
func TestPostAnswerLost(t *testing.T) {
	e := mustEnv(t)
	e.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: http.StatusInternalServerError, Land: true})
	r := e.create(requester, "ins-web00001 hung")
	if n := len(e.stub.cards(channel)); n != 1 {
		t.Fatalf("%d cards, want 1", n)
	}
	e.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: http.StatusBadGateway, Land: true})
	e.click(approverA, "approve", r.ID)
	e.waitState(r.ID, approval.Succeeded)
	testutil.Eventually(t, waitLong, func() bool {
		th := e.stub.Thread(r.Card.TS)
		return len(th) > 0 && strings.HasPrefix(th[len(th)-1].Text, "*Succeeded*")
	}, "the summary")
	if n := len(e.stub.Thread(r.Card.TS)); n != 3 {
		t.Errorf("%d messages in the thread, want 3 (start, instance, summary)", n)
	}
}

// TestRestartDoesNotRepeat: a new process re-sending the reports and the
// card of a request finds them in Slack and adds nothing.
func TestRestartDoesNotRepeat(t *testing.T) {
	e := mustEnv(t)
	r := e.create(requester, "ins-web00001 hung")
	e.click(approverA, "approve", r.ID)
	r = e.waitState(r.ID, approval.Succeeded)
	testutil.Eventually(t, waitLong, func() bool { return len(e.stub.Thread(r.Card.TS)) == 3 }, "the summary")

	e.clock.Advance(time.Second)
	again := bot.NewSlack(bot.SlackConfig{Token: stubToken, APIURL: e.stub.APIURL(), Clock: e.clock})
	for _, rep := range []approval.Report{{Kind: approval.ReportStarted}, {Kind: approval.ReportInstance, Run: &r.Runs[0]}, {Kind: approval.ReportFinished}} {
		if err := again.Report(t.Context(), r, rep); err != nil {
			t.Fatal(err)
		}
	}
	lost := r.Clone()
	lost.Card = approval.Card{}
	card, err := again.PostCard(t.Context(), lost)
	if err != nil || card != r.Card {
		t.Fatalf("PostCard after a restart = %+v, %v; want the existing card %+v", card, err, r.Card)
	}
	if n := len(e.stub.Thread(r.Card.TS)); n != 3 {
		t.Errorf("%d messages in the thread, want still 3", n)
	}
	if n := len(e.stub.cards(channel)); n != 1 {
		t.Errorf("%d cards, want still 1", n)
	}
}
