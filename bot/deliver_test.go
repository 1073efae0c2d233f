package bot_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
)

// TestForeignResponseURLLoggedOnce: an answer refused because its
// response_url is not Slack's is logged once, saying why, and not a second
// time as a generic failure to answer.
func TestForeignResponseURLLoggedOnce(t *testing.T) {
	e := mustEnv(t)
	r := e.create(requester, "ins-web00001 foreign response url")
	ans := e.interact(map[string]any{
		"type": "block_actions", "trigger_id": e.trigger(), "api_app_id": "A0APP",
		"response_url": "https://hooks.slack.com.example.net/commands/T0TEAM/1/secret-foreign",
		"user":         map[string]any{"id": approverA, "username": "approvera", "team_id": "T0TEAM"},
		"team":         map[string]any{"id": "T0TEAM"},
		"container":    map[string]any{"type": "message", "message_ts": r.Card.TS, "channel_id": channel},
		"channel":      map[string]any{"id": channel, "name": "ops"},
		"actions": []any{map[string]any{
			"action_id": "approve", "block_id": "decide:" + r.ID, "type": "button", "value": r.ID, "action_ts": "1700000001.000100",
		}},
	})
	if ans.Status != http.StatusOK {
		t.Fatalf("click answered %d", ans.Status)
	}
	e.waitState(r.ID, approval.Succeeded)
	// Closing the handler waits for the answer's delivery to end.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := e.handler.Close(ctx); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if got := strings.Count(logs, "ignored a response_url on a foreign host"); got != 1 {
		t.Errorf("foreign host logged %d times, want once:\n%s", got, logs)
	}
	if strings.Contains(logs, "could not answer the user") {
		t.Errorf("the refused answer was logged again as a generic failure:\n%s", logs)
	}
	if strings.Contains(logs, "secret-foreign") {
		t.Errorf("the response_url's path reached the log")
	}
}
