package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"rebootbot/bot"
	"rebootbot/internal/testutil"
)

// startStandin runs `bot slack-standin` with args until the test ends and
// returns what it prints.
func startStandin(t *testing.T, args ...string) *testutil.SyncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout testutil.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"bot", "slack-standin"}, args...), nil, &stdout, &stdout) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("slack-standin: %v", err)
		}
	})
	waitOutput(t, &stdout, "Every call the bot makes")
	return &stdout
}

// waitOutput waits until out contains want and returns it.
func waitOutput(t *testing.T, out *testutil.SyncBuffer, want string) string {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, func() bool { return strings.Contains(out.String(), want) }, "the output to contain %q", want)
	return out.String()
}

// printedLine returns the last line of out that starts with prefix (after
// its indentation).
func printedLine(t *testing.T, out, prefix string) string {
	t.Helper()
	found := ""
	for line := range strings.Lines(out) {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, prefix) {
			found = l
		}
	}
	if found == "" {
		t.Fatalf("no line starting %q in:\n%s", prefix, out)
	}
	return found
}

var printedVar = regexp.MustCompile(`\b([A-Z][A-Z_]+)=(\S+)`)

// TestSlackStandinDrivesServe follows what `bot slack-standin` prints: it
// starts `bot serve` with the printed environment against `bot emulator`,
// sends the printed /reboot and then the printed Approve click, each
// signed the way the printed shell function signs (with bash, openssl and
// curl when the machine has them), and sees the reboot succeed in the
// stand-in's log.
func TestSlackStandinDrivesServe(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_ID", "")
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "")
	emuURL, _, _ := mustRun(t, []string{"bot", "emulator", "--listen", "127.0.0.1:0", "--reboot-duration", "300ms"}, nil)
	out := startStandin(t, "--listen", "127.0.0.1:0")
	printed := out.String()

	env := map[string]string{}
	start := strings.Index(printed, "SLACK_API_URL=")
	end := strings.Index(printed, "./bot serve")
	for _, m := range printedVar.FindAllStringSubmatch(printed[start:end], -1) {
		env[m[1]] = m[2]
	}
	for _, k := range []string{"SLACK_API_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "BOT_APPROVERS", "TENCENTCLOUD_ENDPOINT", "TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"} {
		if env[k] == "" {
			t.Fatalf("slack-standin did not print %s:\n%s", k, printed)
		}
	}
	// This test's own addresses and a quick poll; the rest as printed.
	env["BOT_LISTEN_ADDR"] = "127.0.0.1:0"
	env["TENCENTCLOUD_ENDPOINT"] = emuURL
	env["BOT_DB"] = filepath.Join(t.TempDir(), "rebootbot.db")
	env["BOT_POLL_INTERVAL"] = "200ms"
	botURL, stopBot, _ := mustRun(t, []string{"bot", "serve"}, env)
	t.Cleanup(func() { // before the stand-in stops
		if err := stopBot(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	function := printedLine(t, printed, "slack() {")
	function = strings.ReplaceAll(function, "http://127.0.0.1:8080", botURL)
	send := func(line string) string {
		t.Helper()
		return sendSigned(t, env["SLACK_SIGNING_SECRET"], function, botURL, line)
	}
	if got := send(printedLine(t, printed, "slack /slack/commands ")); !strings.Contains(got, "Checking `"+defaultStandinInstance()+"`") {
		t.Fatalf("the command was answered %q", got)
	}
	after := waitOutput(t, out, "To approve R-1 as U0BOB")
	if got := send(printedLine(t, after, "slack /slack/interactions ")); got != "" {
		t.Errorf("the click was answered %q, want an empty acknowledgement", got)
	}
	// The summary in the thread and the card's last update are two calls
	// that may reach Slack in either order: wait for both.
	waitOutput(t, out, "*Succeeded*: 1 of 1 instance rebooted.")
	final := waitOutput(t, out, "Reboot request R-1 (Succeeded)")
	for _, want := range []string{"slack: auth.test ok", "slack: chat.postMessage ok channel=C0OPS", "You approved R-1", "Reboot request R-1 (Succeeded)"} {
		if !strings.Contains(final, want) {
			t.Errorf("stand-in log lacks %q:\n%s", want, final)
		}
	}
}

// sendSigned sends what one printed `slack PATH 'BODY'` line sends: with
// bash, openssl and curl through the printed function itself, else the same
// request signed here. It returns the bot's answer.
func sendSigned(t *testing.T, secret, function, botURL, line string) string {
	t.Helper()
	_, bashErr := exec.LookPath("bash")
	_, sslErr := exec.LookPath("openssl")
	_, curlErr := exec.LookPath("curl")
	if bashErr == nil && sslErr == nil && curlErr == nil {
		cmd := exec.Command("bash", "-c", function+"\n"+line)
		cmd.Env = []string{"SLACK_SIGNING_SECRET=" + secret, "PATH=" + os.Getenv("PATH")}
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, got)
		}
		return strings.TrimSpace(string(got))
	}
	path, body, ok := strings.Cut(strings.TrimPrefix(line, "slack "), " ")
	if !ok {
		t.Fatalf("cannot read %q", line)
	}
	body = strings.Trim(body, "'")
	req, err := http.NewRequest(http.MethodPost, botURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(bot.HeaderTimestamp, ts)
	req.Header.Set(bot.HeaderSignature, bot.Sign(secret, ts, []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(got))
}
