package bot_test

import (
	"net/http"
	"strings"
	"testing"

	"rebootbot/approval"
)

// TestRequestsCreatedCountsPostedCards: a request counts as created only
// once Slack has taken its card, so one filed in a channel that refuses the
// bot is not counted.
func TestRequestsCreatedCountsPostedCards(t *testing.T) {
	e := mustEnv(t)
	const refusing = "C0NOTIN"
	e.stub.NotInChannel(refusing)
	_, responseURL := e.command(requester, refusing, "ins-web00001 hung")
	if got := e.responseText(responseURL, 1); !strings.Contains(got, "can't post in this channel") {
		t.Fatalf("requester was told %q", got)
	}
	if r := e.request("R-1"); r.State != approval.Rejected {
		t.Fatalf("R-1 is %s, want %s", r.State, approval.Rejected)
	}
	body := metricsText(t, e)
	if !strings.Contains(body, `rebootbot_audit_events_total{type="requested"} 1`) {
		t.Fatalf("the refused request was not audited as requested:\n%s", body)
	}
	if strings.Contains(body, "rebootbot_requests_created_total 1") {
		t.Error("a request whose card was never posted counts as created")
	}
	e.create(requester, "ins-web00001 hung")
	if body := metricsText(t, e); !strings.Contains(body, "rebootbot_requests_created_total 1\n") {
		t.Errorf("a posted card is not counted:\n%s", body)
	}
}

// TestUnknownInteractionTypeCountsAsOther: a correctly signed interaction
// of a type the bot does not know is counted under a fixed label, so a
// sender cannot mint series.
func TestUnknownInteractionTypeCountsAsOther(t *testing.T) {
	e := mustEnv(t)
	ans := e.interact(map[string]any{
		"type": "made_up_type_0001", "api_app_id": "A0APP",
		"user": map[string]any{"id": requester, "team_id": "T0TEAM"},
	})
	if ans.Status != http.StatusOK {
		t.Fatalf("interaction answered %d %q", ans.Status, ans.Raw)
	}
	body := metricsText(t, e)
	if strings.Contains(body, "made_up_type") {
		t.Errorf("the interaction's type became a label value:\n%s", body)
	}
	if !strings.Contains(body, `rebootbot_slack_deliveries_total{kind="interaction:other"} 1`) {
		t.Errorf("the interaction is not counted as interaction:other:\n%s", body)
	}
}
