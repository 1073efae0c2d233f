package main

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
	"rebootbot/internal/testutil"
)

// TestServeStopsOnRefusedAppToken runs the real serve in Socket Mode
// against a Slack stand-in that refuses apps.connections.open: serve ends
// by itself with one line naming SLACK_APP_TOKEN and Slack's code, and
// never the token.
func TestServeStopsOnRefusedAppToken(t *testing.T) {
	tests := []struct {
		name, appToken, fault, want string
	}{
		{"InvalidAuth", "xapp-1-refused-token-value", "", "invalid_auth"},
		{"NotAllowedTokenType", "xapp-1-accepted-token-value", "not_allowed_token_type", "not_allowed_token_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, endpoint := emulatortest.Start(t, emulator.Config{SecretID: "AKIDtest", SecretKey: "test-key"})
			stub := slackstub.New()
			stub.AppToken = "xapp-1-accepted-token-value"
			if tt.fault != "" {
				stub.Fail(slackstub.Fault{Method: "apps.connections.open", Error: tt.fault, Count: 1000})
			}
			srv := httptest.NewServer(stub)
			t.Cleanup(srv.Close)
			stub.URL = srv.URL
			env := map[string]string{
				"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": tt.appToken, "SLACK_API_URL": srv.URL + "/api/",
				"BOT_APPROVERS": "UAPPROVER", "BOT_LISTEN_ADDR": "127.0.0.1:0", "BOT_DB": filepath.Join(t.TempDir(), "bot.db"),
				"TENCENTCLOUD_SECRET_ID": "AKIDtest", "TENCENTCLOUD_SECRET_KEY": "test-key", "TENCENTCLOUD_ENDPOINT": endpoint,
			}
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			var stdout, stderr testutil.SyncBuffer
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, []string{"bot", "serve"}, func(k string) string { return env[k] }, &stdout, &stderr)
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("serve is still running with a refused app token; log:\n%s", stderr.String())
			}
			if err == nil {
				t.Fatal("serve returned nil")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "SLACK_APP_TOKEN ") || !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("serve = %q, want one line naming SLACK_APP_TOKEN and %s", msg, tt.want)
			}
			if strings.Contains(msg, tt.appToken) || strings.Contains(stderr.String(), tt.appToken) {
				t.Error("the app token appears in the error or the log")
			}
		})
	}
}
