package bot_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/internal/testutil"
)

// TestRejectedDeliveries: requests that fail verification get 401,
// oversize ones 413, malformed ones 400; none reaches the engine.
func TestRejectedDeliveries(t *testing.T) {
	e := mustEnv(t)
	form := url.Values{"channel_id": {channel}, "user_id": {requester}, "command": {"/reboot"},
		"text": {"ins-web00001 hung"}, "response_url": {e.stub.ResponseURL()}, "trigger_id": {"1.2.3"}}.Encode()
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	good := bot.Sign(signingSecret, ts, []byte(form))
	tests := []struct {
		name   string
		path   string
		body   string
		header map[string]string
		want   int
		reason string
	}{
		{"MissingSignature", "/slack/commands", form, map[string]string{bot.HeaderTimestamp: ts}, 401, "missing"},
		{"MissingTimestamp", "/slack/commands", form, map[string]string{bot.HeaderSignature: good}, 401, "missing"},
		{"MalformedSignature", "/slack/commands", form, map[string]string{bot.HeaderTimestamp: ts, bot.HeaderSignature: "v0=nothex"}, 401, "malformed"},
		{"WrongVersion", "/slack/commands", form, map[string]string{bot.HeaderTimestamp: ts, bot.HeaderSignature: "v1=" + good[3:]}, 401, "malformed"},
		{"Stale", "/slack/commands", form, signed(form, now.Add(-6*time.Minute)), 401, "stale"},
		{"Future", "/slack/commands", form, signed(form, now.Add(6*time.Minute)), 401, "future"},
		{"BodyAltered", "/slack/commands", strings.Replace(form, "hung", "gone", 1), map[string]string{bot.HeaderTimestamp: ts, bot.HeaderSignature: good}, 401, "mismatch"},
		{"WrongSecret", "/slack/interactions", "payload=%7B%7D", map[string]string{bot.HeaderTimestamp: ts, bot.HeaderSignature: bot.Sign("guess", ts, []byte("payload=%7B%7D"))}, 401, "mismatch"},
		{"Oversize", "/slack/commands", "text=" + strings.Repeat("a", bot.MaxBodyBytes), signed("", now), 413, ""},
		{"CommandWithoutUser", "/slack/commands", "text=help&channel_id=C1", signed("text=help&channel_id=C1", now), 400, ""},
		{"BadForm", "/slack/commands", "a=%zz", signed("a=%zz", now), 400, ""},
		{"InteractionNoPayload", "/slack/interactions", "x=1", signed("x=1", now), 400, ""},
		{"InteractionNotJSON", "/slack/interactions", "payload=%7Bnope", signed("payload=%7Bnope", now), 400, ""},
		{"InteractionNoUser", "/slack/interactions", "payload=%7B%22type%22%3A%22block_actions%22%7D", signed("payload=%7B%22type%22%3A%22block_actions%22%7D", now), 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, e.srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			if tt.name == "Oversize" {
				// Signed correctly: the size alone refuses it.
				req.Header.Set(bot.HeaderSignature, bot.Sign(signingSecret, req.Header.Get(bot.HeaderTimestamp), []byte(tt.body)))
			}
			if got := do(t, req).Status; got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
		})
	}
	if n := len(e.stub.all("")); n != 0 {
		t.Errorf("%d Slack calls after refused deliveries, want none", n)
	}
	if evs := e.events(approval.AuditQuery{}); len(evs) != 0 {
		t.Errorf("audit events %v after refused deliveries, want none", eventTypes(evs))
	}
	body := metricsText(t, e)
	for _, want := range []string{
		`rebootbot_signature_rejections_total{reason="missing"} 2`,
		`rebootbot_signature_rejections_total{reason="mismatch"} 2`,
		`rebootbot_signature_rejections_total{reason="stale"} 1`,
		`rebootbot_bad_requests_total{reason="oversize"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func signed(body string, at time.Time) map[string]string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return map[string]string{bot.HeaderTimestamp: ts, bot.HeaderSignature: bot.Sign(signingSecret, ts, []byte(body))}
}

func metricsText(t *testing.T, e *env) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/metrics", nil)
	return do(t, req).Raw
}

func TestRoutes(t *testing.T) {
	e := mustEnv(t)
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/slack/commands", http.StatusMethodNotAllowed},
		{http.MethodGet, "/nowhere", http.StatusNotFound},
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodGet, "/healthz", http.StatusOK},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, e.srv.URL+tt.path, nil)
		if got := do(t, req).Status; got != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, got, tt.want)
		}
	}
}

// TestLookups covers help, status, pending and audit from Slack.
func TestLookups(t *testing.T) {
	e := mustEnv(t)
	e.create(requester, "ins-web00001 first")
	e.create(requester, "ins-web00002 --hard second")
	e.click(approverA, "approve", "R-1")
	e.waitState("R-1", approval.Succeeded)

	answer := func(user, text string) string {
		t.Helper()
		ans, responseURL := e.command(user, channel, text)
		if ans.Status != http.StatusOK {
			t.Fatalf("%q answered %d", text, ans.Status)
		}
		if ans.Raw == "" {
			return e.responseText(responseURL, 1)
		}
		if ans.Body["response_type"] != "ephemeral" {
			t.Errorf("%q answered in the channel", text)
		}
		return ans.Raw
	}
	tests := []struct {
		user, text string
		want       []string
	}{
		{requester, "help", []string{"/reboot status R-42", "--soft-first"}},
		{requester, "status R-1", []string{"Reboot request R-1: Succeeded", "*Succeeded*"}},
		{approverA, "status R-2", []string{"Reboot request R-2: Pending", "HARD"}},
		{requester, "status R-9", []string{"R-9"}},
		{requester, "pending", []string{"Waiting for approval (1)", "*R-2*", "0 of 2 approvals"}},
		{requester, "audit R-1", []string{"Audit log for R-1", "requested", "approved", "completed"}},
		{requester, "audit ins-web00002 --limit 1", []string{"latest 1", "requested"}},
		{requester, "audit <@" + approverA + "|ana>", []string{"approved by <@" + approverA + ">"}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got := answer(tt.user, tt.text)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("answer lacks %q:\n%.600s", w, got)
				}
			}
		})
	}
}

// TestLookupsNeedAccess: with a list of requesters, someone neither on it
// nor an approver cannot look requests up.
func TestLookupsNeedAccess(t *testing.T) {
	e := mustEnv(t, func(c *envConfig) { c.policy.Requesters = []string{requester} })
	for _, text := range []string{"pending", "status R-1", "audit R-1"} {
		ans, responseURL := e.command(outsider, channel, text)
		got := ans.text()
		if ans.Raw == "" {
			got = e.responseText(responseURL, 1)
		}
		if !strings.Contains(got, "Only people who may request or approve") {
			t.Errorf("%q by an outsider answered %q", text, got)
		}
	}
	ans, _ := e.command(approverB, channel, "pending")
	if got := ans.text(); got != "No request is waiting for approval." {
		t.Errorf("pending by an approver answered %q", got)
	}
}

// TestForm: a bare /reboot opens the form; a submission with a mistake
// is answered with errors in the form; a good one posts the card in the
// channel the command was typed in.
func TestForm(t *testing.T) {
	e := mustEnv(t)
	trigger := e.trigger()
	ans, responseURL := e.commandWithTrigger(requester, channel, "", trigger)
	if ans.Status != http.StatusOK || ans.Raw != "" {
		t.Fatalf("bare /reboot answered %d %q, want an empty acknowledgement", ans.Status, ans.Raw)
	}
	testutil.Eventually(t, waitLong, func() bool { return e.stub.count("views.open") == 1 }, "views.open")
	open := e.stub.all("views.open")[0]
	if open.JSON["trigger_id"] != trigger {
		t.Errorf("views.open trigger_id = %v, want %s", open.JSON["trigger_id"], trigger)
	}
	view, _ := open.JSON["view"].(map[string]any)
	meta, _ := view["private_metadata"].(string)
	if view["callback_id"] != bot.FormCallbackID || !strings.Contains(meta, channel) {
		t.Fatalf("form callback_id %v, private_metadata %q", view["callback_id"], meta)
	}

	submit := func(instances, stop, reason string) reply {
		t.Helper()
		return e.interact(map[string]any{
			"type": "view_submission", "trigger_id": e.trigger(), "api_app_id": "A0APP",
			"user": map[string]any{"id": requester}, "team": map[string]any{"id": "T0TEAM"},
			"view": map[string]any{
				"id": "V0FORM", "type": "modal", "callback_id": bot.FormCallbackID, "private_metadata": meta, "hash": "h1",
				"state": map[string]any{"values": map[string]any{
					bot.BlockInstances: map[string]any{"value": map[string]any{"type": "plain_text_input", "value": instances}},
					bot.BlockStopType:  map[string]any{"value": map[string]any{"type": "radio_buttons", "selected_option": map[string]any{"value": stop}}},
					bot.BlockRegion:    map[string]any{"value": map[string]any{"type": "static_select", "selected_option": map[string]any{"value": "ap-guangzhou"}}},
					bot.BlockReason:    map[string]any{"value": map[string]any{"type": "plain_text_input", "value": reason}},
				}},
			},
		})
	}
	bad := submit("ins-web00001 ins-nope", "SOFT", "")
	if bad.Status != http.StatusOK || bad.Body["response_action"] != "errors" {
		t.Fatalf("bad submission answered %d %q, want response_action errors", bad.Status, bad.Raw)
	}
	errs, _ := bad.Body["errors"].(map[string]any)
	if !strings.Contains(toString(errs[bot.BlockInstances]), "ins-nope") || errs[bot.BlockReason] == nil {
		t.Errorf("errors = %v, want the bad instance and the missing reason named", errs)
	}
	if n := len(e.stub.cards(channel)); n != 0 {
		t.Fatalf("a card was posted for an invalid form")
	}

	good := submit("ins-web00001, ins-web00002\nins-web00001", "HARD", "disk <!channel> & full")
	if good.Status != http.StatusOK || good.Raw != "" {
		t.Fatalf("good submission answered %d %q, want an empty acknowledgement", good.Status, good.Raw)
	}
	if got := e.responseText(responseURL, 1); !strings.HasPrefix(got, "R-1 is waiting for 2 approvals") {
		t.Errorf("requester was told %q", got)
	}
	r := e.request("R-1")
	if r.Channel != channel || r.StopType != approval.Hard || len(r.Instances) != 2 || r.Reason != "disk <!channel> & full" {
		t.Errorf("request = channel %s, %s, %d instances, reason %q", r.Channel, r.StopType, len(r.Instances), r.Reason)
	}
	blocks := e.waitCard("R-1", `"confirm"`)
	if strings.Contains(blocks, "<!channel>") {
		t.Error("the form's reason pings the channel")
	}
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
