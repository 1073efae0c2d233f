package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
)

const standinHelp = `usage: bot slack-standin [flags]

Serves a local stand-in for Slack's Web API, so that bot serve can be tried
without a Slack workspace. It prints the environment to start bot serve
with (a bot token and a signing secret the bot will accept), a shell
function that signs requests as Slack does, and a first /reboot to send;
then one line for every call the bot makes. When the bot posts an approval
card, it prints the line that clicks Approve on it.

flags:
  --listen ADDRESS        where the stand-in listens (default 127.0.0.1:8091)
  --bot URL               where bot serve listens, for the printed lines
                          (default http://127.0.0.1:8080)
  --signing-secret TEXT   the signing secret to print (default: a random one)
  --channel ID            the channel of the printed commands (default C0OPS)
  --requester ID          who types the printed /reboot (default U0ALICE)
  --instance ID           the instance it asks to reboot (default %s,
                          the first that bot emulator generates by default)
  --approver ID           who clicks Approve, the printed BOT_APPROVERS
                          (default U0BOB)
`

// defaultStandinInstance returns the first instance `bot emulator`
// serves by default, the one the printed /reboot asks for unless told
// otherwise.
func defaultStandinInstance() string {
	return emulator.Generate(1, emulator.DefaultGenerateSeed)[0].ID
}

// standinToken is the only bot token the stand-in accepts.
const standinToken = "xoxb-slack-standin"

// slackStandin runs `bot slack-standin` until ctx ends.
func slackStandin(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bot slack-standin", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8091", "")
	botURL := fs.String("bot", "http://127.0.0.1:8080", "")
	secret := fs.String("signing-secret", "", "")
	channel := fs.String("channel", "C0OPS", "")
	requester := fs.String("requester", "U0ALICE", "")
	approver := fs.String("approver", "U0BOB", "")
	instance := fs.String("instance", defaultStandinInstance(), "")
	if ok, err := parseFlags(fs, args, fmt.Sprintf(standinHelp, defaultStandinInstance()), stdout); !ok {
		return err
	}
	if u, err := url.Parse(*botURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError("bot slack-standin", fmt.Errorf("--bot %q is not an http(s) URL such as http://127.0.0.1:8080", *botURL))
	}
	for name, id := range map[string]string{"--channel": *channel, "--requester": *requester, "--approver": *approver, "--instance": *instance} {
		if id == "" || strings.ContainsAny(id, " &=%+\"'\\") {
			return usageError("bot slack-standin", fmt.Errorf("%s %q is not a Slack ID", name, id))
		}
	}
	if *secret == "" {
		*secret = randomHex(16)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("slack-standin: %w", err)
	}
	stub := slackstub.New()
	stub.URL = "http://" + ln.Addr().String()
	stub.Token = standinToken
	p := &standinPrinter{w: stdout, bot: strings.TrimSuffix(*botURL, "/"), server: stub, approver: *approver}
	stub.OnCall = p.call
	srv := &http.Server{Handler: stub, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	command := url.Values{
		"command": {"/reboot"}, "text": {*instance + " kernel patch"}, "user_id": {*requester},
		"channel_id": {*channel}, "trigger_id": {"standin.1"}, "response_url": {stub.URL + "/response/1"},
	}
	fmt.Fprintf(stdout, `Slack stand-in listening on %[1]s (Web API under %[1]s/api/)

1. Start the bot against it, here with bot emulator's demo key pair on its
   default port (run "bot emulator" in another terminal first):

  SLACK_API_URL=%[1]s/api/ \
  SLACK_BOT_TOKEN=%[2]s \
  SLACK_SIGNING_SECRET=%[3]s \
  BOT_APPROVERS=%[4]s \
  BOT_LISTEN_ADDR=%[5]s \
  TENCENTCLOUD_ENDPOINT=http://%[6]s \
  TENCENTCLOUD_SECRET_ID=%[7]s TENCENTCLOUD_SECRET_KEY=%[8]s \
  ./bot serve

2. In a third terminal, define a function that signs what it sends as Slack
   does (bash, openssl and curl):

  export SLACK_SIGNING_SECRET=%[3]s
  slack() { ts=$(date +%%s); sig=$(printf 'v0:%%s:%%s' "$ts" "$2" | openssl dgst -sha256 -hmac "$SLACK_SIGNING_SECRET" | sed 's/^.*= //'); curl -sS -H "X-Slack-Request-Timestamp: $ts" -H "X-Slack-Signature: v0=$sig" --data "$2" "%[9]s$1"; echo; }

3. Type /reboot as %[10]s in %[11]s:

  slack /slack/commands '%[12]s'

Every call the bot makes to Slack appears below; when it posts a card, the
line that clicks Approve on it as %[4]s follows.

`, stub.URL, standinToken, *secret, *approver, hostPort(*botURL), emulator.DefaultListen,
		emulator.DemoSecretID, emulator.DemoSecretKey, p.bot, *requester, *channel, command.Encode())

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("slack-standin: %w", err)
	}
	// A bot still running keeps calling; its calls are cut after a grace.
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, http.ErrServerClosed) {
		srv.Close()
	}
	return nil
}

// hostPort returns the host:port of an http(s) URL, for BOT_LISTEN_ADDR.
func hostPort(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Port() == "" {
		if u.Scheme == "https" {
			return u.Hostname() + ":443"
		}
		return u.Hostname() + ":80"
	}
	return u.Host
}

// standinPrinter prints the calls the stand-in receives, one line each.
type standinPrinter struct {
	mu       sync.Mutex
	w        io.Writer
	bot      string // the bot's base URL
	server   *slackstub.Server
	approver string
	clicks   int
}

func (p *standinPrinter) call(c slackstub.Call) {
	p.mu.Lock()
	defer p.mu.Unlock()
	result := "ok"
	switch {
	case c.Error != "":
		result = c.Error
	case c.Status != http.StatusOK:
		result = fmt.Sprintf("HTTP %d", c.Status)
	}
	text := c.Text()
	if c.Method == "response_url" {
		if t, ok := c.JSON["text"].(string); ok {
			text = t
		}
	}
	line := fmt.Sprintf("slack: %s %s", c.Method, result)
	if ch := c.Form.Get("channel"); ch != "" {
		line += " channel=" + ch
	}
	if ts := c.Form.Get("thread_ts"); ts != "" {
		line += " thread=" + ts
	}
	if text != "" {
		line += " " + fmt.Sprintf("%q", firstLine(text, 100))
	}
	fmt.Fprintln(p.w, line)
	if c.Method == "chat.postMessage" && result == "ok" && c.Form.Get("thread_ts") == "" {
		p.printClick(c)
	}
}

// printClick prints the command that clicks Approve on the card c posted.
func (p *standinPrinter) printClick(c slackstub.Call) {
	var md struct {
		EventPayload struct {
			RequestID string `json:"request_id"`
		} `json:"event_payload"`
	}
	if json.Unmarshal([]byte(c.Form.Get("metadata")), &md) != nil || md.EventPayload.RequestID == "" {
		return
	}
	ts := p.cardTS(c.Form.Get("channel"), c.Form.Get("metadata"))
	if ts == "" {
		return
	}
	p.clicks++
	id := md.EventPayload.RequestID
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "trigger_id": fmt.Sprintf("standin.click.%d", p.clicks),
		"response_url": fmt.Sprintf("%s/response/click-%d", p.server.URL, p.clicks),
		"user":         map[string]any{"id": p.approver},
		"channel":      map[string]any{"id": c.Form.Get("channel")},
		"container":    map[string]any{"type": "message", "message_ts": ts, "channel_id": c.Form.Get("channel")},
		"actions": []map[string]any{{"action_id": bot.ActionApprove, "block_id": "decide:" + id, "type": "button",
			"value": id, "action_ts": fmt.Sprintf("%d.000100", time.Now().Unix())}},
	})
	fmt.Fprintf(p.w, "\nTo approve %s as %s:\n\n  slack /slack/interactions '%s'\n\n", id, p.approver, url.Values{"payload": {string(payload)}}.Encode())
}

// cardTS returns the timestamp of the newest card in channel posted with
// metadata.
func (p *standinPrinter) cardTS(channel, metadata string) string {
	ts := ""
	for _, m := range p.server.Messages() {
		if m.Channel == channel && m.ThreadTS == "" && m.Metadata == metadata {
			ts = m.TS
		}
	}
	return ts
}

// firstLine returns s up to its first line break, at most n runes.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
