package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
	"rebootbot/internal/testutil"
)

var listening = regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)

// mustRun starts run in the background and returns the URL it announces
// and a function that stops it and returns its error.
func mustRun(t *testing.T, args []string, env map[string]string) (string, func() error, *testutil.SyncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testutil.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr) }()
	t.Cleanup(cancel)
	var base string
	testutil.Eventually(t, 10*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("%v exited early: %v\nstderr: %s", args, err, stderr.String())
		default:
		}
		m := listening.FindStringSubmatch(stdout.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}, "%v to announce its address", args)
	return base, func() error { cancel(); return <-done }, &stderr
}

func TestVersionAndUsage(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"bot", "version"}, nil, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "rebootbot ") {
		t.Errorf("version: %q, %v", out.String(), err)
	}
	err := run(context.Background(), []string{"bot", "frobnicate"}, nil, io.Discard, io.Discard)
	var exit *exitError
	if !errors.As(err, &exit) || exit.Code != 2 || !strings.Contains(exit.Msg, "frobnicate") {
		t.Errorf("unknown command: %v", err)
	}
}

func TestServeConfigErrors(t *testing.T) {
	base := map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cr3t-value", "BOT_APPROVERS": "U1"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"NoBotToken", with("SLACK_BOT_TOKEN", ""), "SLACK_BOT_TOKEN is required"},
		{"UserToken", with("SLACK_BOT_TOKEN", "xoxp-123"), "SLACK_BOT_TOKEN must be a bot token"},
		{"NoSigningSecret", with("SLACK_SIGNING_SECRET", ""), "SLACK_SIGNING_SECRET is required in HTTP mode"},
		{"BadAppToken", with("SLACK_APP_TOKEN", "xoxb-oops"), "SLACK_APP_TOKEN must be an app-level token"},
		{"NoPolicy", with("BOT_APPROVERS", ""), "BOT_POLICY or BOT_APPROVERS must be set"},
		{"BadMin", with("BOT_MIN_APPROVALS", "0"), "BOT_MIN_APPROVALS"},
		{"BadTTL", with("BOT_REQUEST_TTL", "forever"), "BOT_REQUEST_TTL"},
		{"BadPoll", with("BOT_POLL_INTERVAL", "5"), "BOT_POLL_INTERVAL"},
		{"BadTimeout", with("BOT_REBOOT_TIMEOUT", "-1m"), "BOT_REBOOT_TIMEOUT"},
		{"BadAPIURL", with("SLACK_API_URL", "slack.com/api"), "SLACK_API_URL"},
		{"BadEndpoint", with("TENCENTCLOUD_ENDPOINT", "ftp://x"), "TENCENTCLOUD_ENDPOINT"},
		{"MissingPolicyFile", with("BOT_POLICY", "/nonexistent/policy.yml"), "BOT_POLICY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), []string{"bot", "serve"}, func(k string) string { return tt.env[k] }, io.Discard, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cr3t-value") || strings.Contains(stderr.String(), "s3cr3t-value") {
				t.Errorf("the signing secret leaked: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestServeHealthMetricsAndLock(t *testing.T) {
	_, endpoint := emulatortest.Start(t, emulator.Config{SecretID: "AKIDtest", SecretKey: "test-key"})
	stub := slackstub.New()
	stub.Token = "xoxb-test"
	slackSrv := httptest.NewServer(stub)
	t.Cleanup(slackSrv.Close)
	stub.URL = slackSrv.URL
	env := map[string]string{
		"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "signing-secret-value", "SLACK_API_URL": slackSrv.URL + "/api/",
		"BOT_APPROVERS": "UAPPROVER", "BOT_LISTEN_ADDR": "127.0.0.1:0", "BOT_DB": filepath.Join(t.TempDir(), "bot.db"),
		"TENCENTCLOUD_SECRET_ID": "AKIDtest", "TENCENTCLOUD_SECRET_KEY": "test-key", "TENCENTCLOUD_ENDPOINT": endpoint,
	}
	base, stop, stderr := mustRun(t, []string{"bot", "serve"}, env)
	// Start-up logs are JSON lines, durations written as durations.
	for line := range strings.Lines(stderr.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("start-up log line is not JSON: %q", line)
		}
		if rec["msg"] == "rebootbot started" {
			cfg, _ := rec["config"].(map[string]any)
			if cfg["request_ttl"] != "30m0s" || cfg["poll_interval"] != "5s" || cfg["reboot_timeout"] != "10m0s" {
				t.Errorf("start-up log writes durations as %v, %v, %v; want 30m0s, 5s, 10m0s", cfg["request_ttl"], cfg["poll_interval"], cfg["reboot_timeout"])
			}
		}
	}
	if !strings.Contains(stderr.String(), `"msg":"rebootbot started"`) {
		t.Errorf("no start-up line in:\n%s", stderr.String())
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %s", path, resp.StatusCode, body)
		}
	}
	// An unsigned command is refused.
	resp, err := http.Post(base+"/slack/commands", "application/x-www-form-urlencoded", strings.NewReader("text=help"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned command = %d, want 401", resp.StatusCode)
	}
	// A second bot on the same database fails fast with a clear line.
	err = run(context.Background(), []string{"bot", "serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second bot: %v", err)
	}
	// The audit CLI still works, through the running bot.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"bot", "audit", "verify"}, func(k string) string { return env[k] }, &out, io.Discard); err != nil {
		t.Errorf("audit verify while serving: %v (%s)", err, out.String())
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if !strings.Contains(stderr.String(), `"team":"`+slackstub.TeamName+`"`) || !strings.Contains(stderr.String(), `"bot_id":"`+slackstub.BotID+`"`) {
		t.Errorf("start-up did not log the workspace and bot auth.test answered with:\n%s", stderr.String())
	}
	for _, secret := range []string{"signing-secret-value", "test-key", "xoxb-test"} {
		if strings.Contains(stderr.String(), secret) {
			t.Errorf("a secret appears in the log")
		}
	}
}

// TestServeRefusedBotToken: a bot token Slack refuses stops start-up with
// one line naming SLACK_BOT_TOKEN and Slack's error code, never the token.
func TestServeRefusedBotToken(t *testing.T) {
	_, endpoint := emulatortest.Start(t, emulator.Config{SecretID: "AKIDtest", SecretKey: "test-key"})
	tests := []struct {
		name    string
		token   string // the token the bot is given; the stand-in takes xoxb-good-one
		refusal string // what the stand-in answers every call with
		want    string
	}{
		{"WrongToken", "xoxb-wrong-one", "", "invalid_auth"},
		{"Revoked", "xoxb-good-one", "token_revoked", "token_revoked"},
		{"AccountInactive", "xoxb-good-one", "account_inactive", "account_inactive"},
		{"WrongTokenType", "xoxb-good-one", "not_allowed_token_type", "not_allowed_token_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stub := slackstub.New()
			stub.Token = "xoxb-good-one"
			stub.RefuseToken(tt.refusal)
			srv := httptest.NewServer(stub)
			t.Cleanup(srv.Close)
			stub.URL = srv.URL
			env := map[string]string{
				"SLACK_BOT_TOKEN": tt.token, "SLACK_SIGNING_SECRET": "signing-secret-value", "SLACK_API_URL": srv.URL + "/api/",
				"BOT_APPROVERS": "UAPPROVER", "BOT_LISTEN_ADDR": "127.0.0.1:0", "BOT_DB": filepath.Join(t.TempDir(), "bot.db"),
				"TENCENTCLOUD_SECRET_ID": "AKIDtest", "TENCENTCLOUD_SECRET_KEY": "test-key", "TENCENTCLOUD_ENDPOINT": endpoint,
			}
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), []string{"bot", "serve"}, func(k string) string { return env[k] }, &stdout, &stderr)
			if err == nil {
				t.Fatalf("serve started with a refused token; stdout: %s", stdout.String())
			}
			msg := err.Error()
			if !strings.Contains(msg, "SLACK_BOT_TOKEN") || !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("err = %q, want one line naming SLACK_BOT_TOKEN and %s", msg, tt.want)
			}
			if strings.Contains(msg+stderr.String()+stdout.String(), tt.token) {
				t.Error("the bot token appears in the error or the output")
			}
			if strings.Contains(stdout.String(), "listening") {
				t.Error("serve announced an address before failing")
			}
		})
	}
}

func TestEmulatorSubcommand(t *testing.T) {
	base, stop, _ := mustRun(t, []string{"bot", "emulator", "--listen", "127.0.0.1:0", "--instances", "3",
		"--secret-id", "AKIDsub", "--secret-key", "sub-key"}, nil)
	client := emulatortest.Client(t, base, "ap-guangzhou", "AKIDsub", "sub-key")
	req := cvm.NewDescribeInstancesRequest()
	req.Limit = common.Int64Ptr(100)
	resp, err := client.DescribeInstances(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := *resp.Response.TotalCount; got != 3 {
		t.Errorf("TotalCount = %d, want 3", got)
	}
	bad := emulatortest.Client(t, base, "ap-guangzhou", "AKIDsub", "wrong-key")
	if _, err := bad.DescribeInstances(cvm.NewDescribeInstancesRequest()); err == nil || !strings.Contains(err.Error(), "AuthFailure") {
		t.Errorf("wrong key: %v", err)
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes a few seconds")
	}
	rebootTime := demoRebootTime
	demoRebootTime = 400 * time.Millisecond
	t.Cleanup(func() { demoRebootTime = rebootTime })
	var out testutil.SyncBuffer
	if err := run(context.Background(), []string{"bot", "demo"}, nil, &out, io.Discard); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"ins-db000001 is STOPPED", "Reboot request R-1: Pending", "[Approve] [Deny]",
		"You asked for R-1, so you can't approve it", "You are not one of the approvers of R-1",
		"You approved R-1", "Reboot request R-1: Succeeded", "audit log intact", "ins-web00001 1, ins-web00002 1, ins-db000001 0",
		"*Waves* 4 of at most 10", "[Stop]", "Wave *1 of 4* done: 10 of 10 rebooted, 0 failed.", "Wave *2 of 4* done: 9 of 10 rebooted, 1 failed.",
		"Reboot request R-2: Stopped", "stopped by the failure budget (1 failure, budget 0, after wave 2 of 4)",
		"accepted for the 40 web instances: 20"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
}
