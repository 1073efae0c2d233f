package bot_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
)

func TestHappyPath(t *testing.T) {
	e := mustEnv(t)
	ans, responseURL := e.command(requester, channel, "ins-web00001 ins-web00002 kernel update &amp; restart")
	if ans.Status != http.StatusOK || ans.Body["response_type"] != "ephemeral" || !strings.HasPrefix(ans.text(), "Checking `ins-web00001`, `ins-web00002` in ap-guangzhou") {
		t.Fatalf("command answered %d %q", ans.Status, ans.Raw)
	}
	if got := e.responseText(responseURL, 1); !strings.HasPrefix(got, "R-1 is waiting for 1 approval") {
		t.Fatalf("requester was told %q", got)
	}
	r := e.request("R-1")
	if r.Reason != "kernel update & restart" {
		t.Errorf("reason stored as %q, want it as typed", r.Reason)
	}
	cards := e.stub.cards(channel)
	if len(cards) != 1 {
		t.Fatalf("%d cards posted, want 1", len(cards))
	}
	card := cards[0]
	for _, want := range []string{"R-1", "<@" + requester + ">", "kernel update &amp; restart", "SOFT", "ap-guangzhou",
		web1, "web-1", "RUNNING", "ap-guangzhou-3", "10.0.0.1", web2, "1 more approval", "<@" + approverA + ">",
		"`" + sreGroup + "`", "<!date^", `"action_id":"approve"`, `"action_id":"deny"`} {
		if !strings.Contains(card.Blocks, want) {
			t.Errorf("card lacks %q", want)
		}
	}
	if card.Text == "" {
		t.Error("card has no text fallback")
	}
	if strings.Contains(card.Blocks, "<!subteam") {
		t.Error("card pings the approver group")
	}

	ans, clickURL := e.click(approverA, "approve", "R-1")
	if ans.Status != http.StatusOK {
		t.Fatalf("click answered %d", ans.Status)
	}
	if got := e.responseText(clickURL, 1); !strings.Contains(got, "You approved R-1") {
		t.Errorf("approver was told %q", got)
	}
	if c := e.stub.responsesTo(clickURL)[0]; c.JSON["response_type"] != "ephemeral" || c.JSON["replace_original"] != false {
		t.Errorf("click answer is not an ephemeral reply that keeps the card: %v", c.JSON)
	}

	r = e.waitState("R-1", approval.Succeeded)
	blocks := e.waitCard("R-1", "*Succeeded*")
	if strings.Contains(blocks, `"action_id":"approve"`) {
		t.Error("decided card still has buttons")
	}
	if !strings.Contains(blocks, "<@"+approverA+">") {
		t.Error("final card does not say who approved")
	}
	for _, id := range []string{web1, web2} {
		if n := e.emu.RebootCalls(id); n != 1 {
			t.Errorf("%s rebooted %d times, want 1", id, n)
		}
	}
	testutil.Eventually(t, waitLong, func() bool { return len(e.stub.Thread(r.Card.TS)) >= 4 }, "the thread reports")
	var thread []string
	for _, m := range e.stub.Thread(r.Card.TS) {
		thread = append(thread, m.Text)
	}
	if len(thread) != 4 || !strings.HasPrefix(thread[0], "Rebooting 2 instances") || !strings.HasPrefix(thread[3], "*Succeeded*") {
		t.Errorf("thread = %q", thread)
	}
	for _, id := range []string{web1, web2} {
		if !slices.ContainsFunc(thread, func(s string) bool { return strings.Contains(s, id) && strings.Contains(s, "running again after") }) {
			t.Errorf("thread does not report %s", id)
		}
	}
	got := eventTypes(e.events(approval.AuditQuery{RequestID: "R-1"}))
	for _, want := range []string{"requested", "approved", "executing", "reboot_called", "instance_succeeded", "completed"} {
		if !slices.Contains(got, want) {
			t.Errorf("audit trail %v lacks %s", got, want)
		}
	}

	resp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`rebootbot_requests_total{outcome="succeeded"} 1`,
		`rebootbot_approvals_total 1`,
		`rebootbot_slack_api_calls_total{method="chat.postMessage",result="ok"}`,
		`rebootbot_cloud_calls_total{action="RebootInstances",code="ok"} 1`,
		`rebootbot_ack_seconds_count{kind="command"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestHealthz(t *testing.T) {
	e := mustEnv(t)
	resp, err := http.Get(e.srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz = %d, want 200", resp.StatusCode)
	}
	e.db.Close()
	resp, err = http.Get(e.srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz with a closed store = %d, want 503", resp.StatusCode)
	}
}
