package bot_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/internal/testutil"
)

// socketPeer is Slack's end of a Socket Mode connection.
type socketPeer struct {
	t    *testing.T
	conn *websocket.Conn
}

func (p *socketPeer) send(v any) {
	p.t.Helper()
	if err := p.conn.WriteJSON(v); err != nil {
		p.t.Fatalf("sending to the bot: %v", err)
	}
}

// ack reads the next ack, which must be for envelope id.
func (p *socketPeer) ack(id string) map[string]any {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var ack map[string]any
	if err := p.conn.ReadJSON(&ack); err != nil {
		p.t.Fatalf("reading the ack of %s: %v", id, err)
	}
	if ack["envelope_id"] != id {
		p.t.Fatalf("ack for %v, want %s", ack["envelope_id"], id)
	}
	return ack
}

func TestSocketMode(t *testing.T) {
	e := mustEnv(t)
	conns := make(chan *websocket.Conn, 1)
	e.stub.SetSocket(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// slack-go dials with Slack's own origin.
		up := websocket.Upgrader{CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == "https://api.slack.com" }}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		conns <- c
	}))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.handler.RunSocketMode(ctx, "xapp-test-token") }()
	var conn *websocket.Conn
	select {
	case conn = <-conns:
	case err := <-done:
		t.Fatalf("RunSocketMode ended before connecting: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("the bot did not connect")
	}
	defer conn.Close()
	if n := e.stub.count("apps.connections.open"); n != 1 {
		t.Fatalf("apps.connections.open called %d times, want 1", n)
	}
	peer := &socketPeer{t: t, conn: conn}
	peer.send(map[string]any{"type": "hello", "num_connections": 1, "connection_info": map[string]any{"app_id": "A0APP"}})

	responseURL := e.stub.ResponseURL()
	peer.send(map[string]any{
		"envelope_id": "env-1", "type": "slash_commands", "accepts_response_payload": true,
		"payload": map[string]any{
			"team_id": "T0TEAM", "channel_id": channel, "user_id": requester, "command": "/reboot",
			"text": "ins-web00001 over the socket", "response_url": responseURL, "trigger_id": "9.9.socket1",
		},
	})
	ack := peer.ack("env-1")
	payload, _ := ack["payload"].(map[string]any)
	if payload["response_type"] != "ephemeral" || !strings.HasPrefix(payload["text"].(string), "Checking `ins-web00001`") {
		t.Fatalf("slash command ack payload = %v", ack["payload"])
	}
	if got := e.responseText(responseURL, 1); !strings.HasPrefix(got, "R-1 is waiting") {
		t.Fatalf("requester was told %q", got)
	}

	peer.send(map[string]any{
		"envelope_id": "env-2", "type": "slash_commands", "accepts_response_payload": true,
		"payload": map[string]any{"channel_id": channel, "user_id": requester, "command": "/reboot", "text": "ins-oops hung",
			"response_url": e.stub.ResponseURL(), "trigger_id": "9.9.socket2"},
	})
	if p, _ := peer.ack("env-2")["payload"].(map[string]any); !strings.Contains(toString(p), "is not a valid instance ID") {
		t.Errorf("syntax error ack payload = %v", p)
	}

	clickURL := e.stub.ResponseURL()
	peer.send(map[string]any{
		"envelope_id": "env-3", "type": "interactive", "accepts_response_payload": false,
		"payload": map[string]any{
			"type": "block_actions", "trigger_id": "9.9.socket3", "response_url": clickURL,
			"user": map[string]any{"id": approverA}, "channel": map[string]any{"id": channel},
			"container": map[string]any{"type": "message", "message_ts": e.request("R-1").Card.TS, "channel_id": channel},
			"actions":   []any{map[string]any{"action_id": bot.ActionApprove, "block_id": "decide:R-1", "type": "button", "value": "R-1", "action_ts": "1.2"}},
		},
	})
	if ack := peer.ack("env-3"); ack["payload"] != nil {
		t.Errorf("click ack carries a payload: %v", ack["payload"])
	}
	if got := e.responseText(clickURL, 1); !strings.Contains(got, "You approved R-1") {
		t.Errorf("approver was told %q", got)
	}
	e.waitState("R-1", approval.Succeeded)
	e.waitCard("R-1", "*Succeeded*")

	peer.send(map[string]any{
		"envelope_id": "env-4", "type": "interactive",
		"payload": map[string]any{
			"type": "view_submission", "trigger_id": "9.9.socket4", "user": map[string]any{"id": requester},
			"view": map[string]any{"id": "V1", "callback_id": bot.FormCallbackID, "private_metadata": `{"channel":"` + channel + `"}`,
				"state": map[string]any{"values": map[string]any{}}},
		},
	})
	var resp struct {
		Payload struct {
			ResponseAction string            `json:"response_action"`
			Errors         map[string]string `json:"errors"`
		} `json:"payload"`
	}
	raw, _ := json.Marshal(peer.ack("env-4"))
	if err := json.Unmarshal(raw, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Payload.ResponseAction != "errors" || resp.Payload.Errors[bot.BlockInstances] == "" || resp.Payload.Errors[bot.BlockReason] == "" {
		t.Errorf("empty form ack = %s", raw)
	}

	// A payload that is not a known shape is acknowledged and ignored.
	peer.send(map[string]any{"envelope_id": "env-5", "type": "interactive", "payload": map[string]any{"type": "block_actions"}})
	if ack := peer.ack("env-5"); ack["payload"] != nil {
		t.Errorf("malformed envelope ack carries %v", ack["payload"])
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunSocketMode = %v after its context ended, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunSocketMode did not return after its context ended")
	}
	if n := e.emu.RebootCalls(web1); n != 1 {
		t.Errorf("%s rebooted %d times, want 1", web1, n)
	}
}

// TestSocketModeRefusedToken: an app token Slack refuses ends Socket Mode
// with the code and without the token, also for the codes slack-go would
// retry for ever.
func TestSocketModeRefusedToken(t *testing.T) {
	tests := []struct {
		name, token, fault, want string
	}{
		{"WrongToken", "xapp-wrong", "", "invalid_auth"},
		{"NotAnAppToken", "xapp-test-token", "not_allowed_token_type", "not_allowed_token_type"},
		{"Revoked", "xapp-test-token", "token_revoked", "token_revoked"},
		// apps.connections.open needs connections:write alone: without
		// it the token can never connect.
		{"MissingScope", "xapp-test-token", "missing_scope", "missing_scope"},
		{"Inactive", "xapp-test-token", "account_inactive", "account_inactive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEnv(t)
			if tt.fault != "" {
				e.stub.Fail(slackstub.Fault{Method: "apps.connections.open", Error: tt.fault, Count: 100})
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			err := e.handler.RunSocketMode(ctx, tt.token)
			var refused *bot.AppTokenRefusedError
			if !errors.As(err, &refused) || refused.Code != tt.want {
				t.Fatalf("RunSocketMode = %v, want an *AppTokenRefusedError with %s", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.token) {
				t.Errorf("the error %q carries the token", err)
			}
		})
	}
}

// TestSocketModeHealth: /healthz turns 503 once the socket has been down
// for more than SocketDownLimit, on the handler's clock, and 200 again
// when it is back.
func TestSocketModeHealth(t *testing.T) {
	e := mustEnv(t)
	clock := testutil.NewFakeClock(time.Now())
	logs := &testutil.SyncBuffer{}
	h := bot.NewHandler(bot.HandlerConfig{
		Engine: e.engine, Slack: e.slack, Clock: clock, Health: e.db.Check,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	t.Cleanup(func() { h.Close(context.Background()) })
	health := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code
	}
	conns := make(chan *websocket.Conn, 4)
	e.stub.SetSocket(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
		if c, err := up.Upgrade(w, r, nil); err == nil {
			conns <- c
		}
	}))
	awaitConn := func() *websocket.Conn {
		t.Helper()
		select {
		case c := <-conns:
			t.Cleanup(func() { c.Close() })
			return c
		case <-time.After(20 * time.Second):
			t.Fatal("the bot did not connect")
			return nil
		}
	}

	// Never connected yet: Slack may take a moment, then it is a failure.
	e.stub.Fail(slackstub.Fault{Method: "apps.connections.open", Status: http.StatusServiceUnavailable, Count: 1000})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.RunSocketMode(ctx, "xapp-test-token") }()
	testutil.Eventually(t, waitLong, func() bool { return strings.Contains(logs.String(), "socket mode connection failed") }, "a failed connection")
	if got := health(); got != http.StatusOK {
		t.Errorf("healthz right after start = %d, want 200", got)
	}
	clock.Advance(bot.SocketDownLimit + time.Second)
	if got := health(); got != http.StatusServiceUnavailable {
		t.Errorf("healthz after %s without a connection = %d, want 503", bot.SocketDownLimit, got)
	}

	e.stub.ClearFaults()
	conn := awaitConn()
	testutil.Eventually(t, waitLong, func() bool { return health() == http.StatusOK }, "healthz 200 once connected")

	// The connection drops and cannot be opened again.
	before := strings.Count(logs.String(), "socket mode connection failed")
	e.stub.Fail(slackstub.Fault{Method: "apps.connections.open", Status: http.StatusServiceUnavailable, Count: 1000})
	conn.Close()
	testutil.Eventually(t, waitLong, func() bool {
		return strings.Count(logs.String(), "socket mode connection failed") > before
	}, "another failed connection")
	clock.Advance(bot.SocketDownLimit - time.Second)
	if got := health(); got != http.StatusOK {
		t.Errorf("healthz %s after the drop = %d, want 200", bot.SocketDownLimit-time.Second, got)
	}
	clock.Advance(2 * time.Second)
	if got := health(); got != http.StatusServiceUnavailable {
		t.Errorf("healthz %s after the drop = %d, want 503", bot.SocketDownLimit+time.Second, got)
	}

	e.stub.ClearFaults()
	awaitConn()
	testutil.Eventually(t, waitLong, func() bool { return health() == http.StatusOK }, "healthz 200 once reconnected")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunSocketMode = %v after its context ended", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunSocketMode did not return")
	}
}
