package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud"
	"rebootbot/cloud/emulator"
)

// demoTimeout bounds the whole demo.
const demoTimeout = 30 * time.Second

// The demo's people and places.
const (
	demoRequester = "UALICE" // also an approver, so that her own click shows self-approval refused
	demoApprover  = "UBOB"
	demoOutsider  = "UCAROL"
	demoChannel   = "COPS"
	demoGroup     = "SSRE"
)

// demoRebootTime is how long the demo's emulated reboots take: long enough
// to follow by eye. The demo's test makes it shorter.
var demoRebootTime = 1500 * time.Millisecond

// demo runs the real bot against the CVM emulator and a Slack stand-in,
// drives it through its signed HTTP endpoints like Slack would, and prints
// the conversation and the audit trail.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bot demo", flag.ContinueOnError)
	replicas := fs.Int("replicas", 0, "")
	if ok, err := parseFlags(fs, args, demoHelp, stdout); !ok {
		return err
	}
	if *replicas != 0 {
		if *replicas < 2 || *replicas > 5 {
			return usageError("bot demo", fmt.Errorf("--replicas %d: say 2 to 5", *replicas))
		}
		bin, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the bot binary to run as replicas: %w", err)
		}
		return demoReplicas(ctx, bin, *replicas, stdout, stderr)
	}
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "rebootbot-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	say("rebootbot demo: the real bot with a CVM emulator and a Slack stand-in on 127.0.0.1, no credentials.\n")

	// Tencent Cloud: the emulator with a demo key pair and three instances.
	secretID, secretKey := "AKIDrebootbotDEMO0000000000000000000", randomHex(16)
	emu := emulator.New(emulator.Config{SecretID: secretID, SecretKey: secretKey, RebootDuration: demoRebootTime})
	if err := emu.Add(
		emulator.Instance{ID: "ins-web00001", Name: "web-1", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.1.11"}, Tags: map[string]string{"env": "prod", "team": "web"}},
		emulator.Instance{ID: "ins-web00002", Name: "web-2", Zone: "ap-guangzhou-4", PrivateIPs: []string{"10.0.1.12"}, Tags: map[string]string{"env": "prod", "team": "web"}},
		emulator.Instance{ID: "ins-db000001", Name: "db-1", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.2.21"}, State: "STOPPED"},
	); err != nil {
		return err
	}
	if err := emu.Add(demoFleetInstances()...); err != nil {
		return err
	}
	emuURL, stopEmu, err := serveLocal(emu)
	if err != nil {
		return err
	}
	defer stopEmu()

	// Slack: the stand-in for the Web API and the response URLs.
	stub := slackstub.New()
	stub.SetGroup(demoGroup, demoApprover)
	stubURL, stopStub, err := serveLocal(stub)
	if err != nil {
		return err
	}
	defer stopStub()
	stub.URL = stubURL

	secret := randomHex(16)
	cfg := &config{
		BotToken: "xoxb-rebootbot-demo", SigningSecret: secret, APIURL: stubURL + "/api/",
		ListenAddr: "127.0.0.1:0", DBPath: filepath.Join(dir, "rebootbot.db"),
		PollInterval: 250 * time.Millisecond, RebootTimeout: time.Minute,
		Policy: &approval.Policy{
			Approvers: []string{demoGroup, demoRequester}, MinApprovals: 1, HardMinApprovals: 2, RequestTTL: 30 * time.Minute,
			MaxInstances: approval.MaxInstancesPerRequest, DefaultRegion: approval.DefaultRegion,
		},
		Cloud: cloud.Config{SecretID: secretID, SecretKey: secretKey, Endpoint: emuURL, BaseDelay: 50 * time.Millisecond},
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	app, err := start(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	defer app.stop()
	d := &driver{stub: stub, send: &slackSender{base: "http://" + app.addr, secret: secret,
		team: "TDEMO", channel: demoChannel, channelName: "ops", tag: "demo"}}
	say("bot listening on http://%s, CVM emulator on %s, Slack stand-in on %s", app.addr, emuURL, stubURL)
	say("policy: approvers = members of %s (%s) and %s, 1 approval (2 for --hard), requests expire after 30m\n", demoGroup, demoApprover, demoRequester)

	// 1. A request that cannot be honoured: db-1 is stopped.
	say("── <@%s> in #ops: /reboot ins-db000001 disk full", demoRequester)
	refused, err := d.command(ctx, say, demoRequester, "ins-db000001 disk full")
	if err != nil {
		return err
	}
	if !d.reply(say, demoRequester, refused, 10*time.Second) {
		return errors.New("no answer to the refused request")
	}

	// 2. A real request: the card.
	say("── <@%s> in #ops: /reboot ins-web00001 ins-web00002 apply kernel 5.15.0-91 <!channel>", demoRequester)
	if _, err := d.command(ctx, say, demoRequester, "ins-web00001 ins-web00002 apply kernel 5.15.0-91 &lt;!channel&gt;"); err != nil {
		return err
	}
	card, err := awaitCard(stub)
	if err != nil {
		return err
	}
	say("   rebootbot posts the approval card in #ops:")
	say("%s\n", indent(cardText(card), "   │ "))

	// 3. The requester, an approver herself, tries to approve her own
	// request; then someone who is no approver tries.
	say("── <@%s> (an approver, but the requester) clicks Approve on R-1", demoRequester)
	if err := d.click(ctx, say, demoRequester, bot.ActionApprove, "R-1", card.TS); err != nil {
		return err
	}
	say("── <@%s> (not an approver) clicks Approve on R-1", demoOutsider)
	if err := d.click(ctx, say, demoOutsider, bot.ActionApprove, "R-1", card.TS); err != nil {
		return err
	}
	// 4. Bob approves.
	say("── <@%s> clicks Approve on R-1", demoApprover)
	if err := d.click(ctx, say, demoApprover, bot.ActionApprove, "R-1", card.TS); err != nil {
		return err
	}
	say("   (rebootbot calls RebootInstances and waits for both instances to be RUNNING again)\n")
	if !stub.WaitFor(20*time.Second, func() bool {
		m, _ := stub.Card(card.TS)
		return strings.Contains(m.Text, "Succeeded") && len(stub.Thread(card.TS)) >= 4
	}) {
		return fmt.Errorf("the reboot did not finish in time; thread so far: %d messages", len(stub.Thread(card.TS)))
	}
	say("   rebootbot in the card's thread:")
	for _, m := range stub.Thread(card.TS) {
		say("%s", indent(m.Text, "   │ "))
	}
	final, _ := stub.Card(card.TS)
	say("\n   the card now reads:")
	say("%s\n", indent(cardText(final), "   │ "))

	// 5. The audit trail, from Slack and from the store.
	say("── <@%s> in #ops: /reboot audit R-1", demoApprover)
	if _, err := d.command(ctx, say, demoApprover, "audit R-1"); err != nil {
		return err
	}
	n, err := app.state.answering().Verify(ctx)
	if err != nil {
		return fmt.Errorf("audit chain: %w", err)
	}
	say("── bot audit verify: audit log intact: %d events, each linked to the one before by SHA-256", n)
	say("\nreboot calls the emulator received: ins-web00001 %d, ins-web00002 %d, ins-db000001 %d",
		emu.RebootCalls("ins-web00001"), emu.RebootCalls("ins-web00002"), emu.RebootCalls("ins-db000001"))
	say("")
	if err := demoFleet(ctx, say, d, app.engine, emu); err != nil {
		return err
	}
	say("demo finished: request R-1 succeeded; fleet request R-2 stopped by its failure budget after wave 2 of 4.")
	return nil
}

// driver sends signed requests to the bot the way Slack does and prints
// what the people in the demo see.
type driver struct {
	send *slackSender
	stub *slackstub.Server
}

// answer checks a delivery's answer: an error unless it came within
// Slack's 3 seconds with 200 OK.
func answer(path string, status int, body string, took time.Duration, err error) error {
	switch {
	case err != nil:
		return err
	case took > 3*time.Second:
		return fmt.Errorf("%s took %s to answer, longer than Slack's 3 s", path, took.Round(time.Millisecond))
	case status != http.StatusOK:
		return fmt.Errorf("%s answered %d: %s", path, status, body)
	}
	return nil
}

// command sends a /reboot slash command, prints the immediate answer and
// returns the command's response URL.
func (d *driver) command(ctx context.Context, say func(string, ...any), user, text string) (string, error) {
	responseURL := d.stub.ResponseURL()
	status, body, took, err := d.send.command(ctx, user, text, responseURL)
	if err := answer("/slack/commands", status, body, took, err); err != nil {
		return "", err
	}
	if t := messageText([]byte(body)); t != "" {
		say("   rebootbot (only to %s, at once):\n%s", strings.ToLower(user[1:]), indent(t, "   │ "))
	}
	return responseURL, nil
}

// reply waits for the first message posted to responseURL and prints it.
func (d *driver) reply(say func(string, ...any), user, responseURL string, timeout time.Duration) bool {
	var got []slackstub.Call
	if !d.stub.WaitFor(timeout, func() bool { got = d.stub.ResponsesTo(responseURL, user); return len(got) > 0 }) {
		return false
	}
	say("   rebootbot (only to %s):\n%s\n", strings.ToLower(user[1:]), indent(responseText(got[0]), "   │ "))
	return true
}

// click sends a block_actions payload for a card button.
func (d *driver) click(ctx context.Context, say func(string, ...any), user, action, requestID, ts string) error {
	responseURL := d.stub.ResponseURL()
	status, body, took, err := d.send.click(ctx, user, action, requestID, ts, responseURL)
	if err := answer("/slack/interactions", status, body, took, err); err != nil {
		return err
	}
	d.reply(say, user, responseURL, 5*time.Second)
	return nil
}

// serveLocal serves h on a free loopback port.
func serveLocal(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// responseText is the text of an ephemeral reply (response_url body or
// chat.postEphemeral form).
func responseText(c slackstub.Call) string {
	if c.Method == "chat.postEphemeral" {
		return blocksText(c.Form.Get("blocks"), c.Form.Get("text"))
	}
	return messageText(c.Body)
}

// messageText renders a JSON message body (text and blocks) as lines.
func messageText(body []byte) string {
	var m struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	return blocksText(string(m.Blocks), m.Text)
}

// cardText renders a card's blocks as plain lines for the transcript.
func cardText(m slackstub.Message) string { return blocksText(m.Blocks, m.Text) }

// blocksText renders Block Kit JSON as plain lines, or returns fallback.
func blocksText(raw, fallback string) string {
	var blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Text string `json:"text"`
		} `json:"text"`
		Fields []struct {
			Text string `json:"text"`
		} `json:"fields"`
		Elements []struct {
			Type string `json:"type"`
			Text any    `json:"text"`
		} `json:"elements"`
	}
	if json.Unmarshal([]byte(raw), &blocks) != nil || len(blocks) == 0 {
		return fallback
	}
	var lines []string
	for _, b := range blocks {
		if b.Text != nil {
			lines = append(lines, b.Text.Text)
		}
		for _, f := range b.Fields {
			lines = append(lines, f.Text)
		}
		var buttons []string
		for _, e := range b.Elements {
			switch t := e.Text.(type) {
			case string:
				lines = append(lines, t)
			case map[string]any:
				if s, ok := t["text"].(string); ok && e.Type == "button" {
					buttons = append(buttons, "["+s+"]")
				}
			}
		}
		if len(buttons) > 0 {
			lines = append(lines, strings.Join(buttons, " "))
		}
	}
	return strings.Join(lines, "\n")
}

// indent prefixes each line of s, shown as a terminal would: Slack's
// markup (dates, mentions, entities) turned into the words Slack shows.
func indent(s, prefix string) string {
	s = terminalText(s)
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// slackMarkup matches <!date^…|fallback>, <@U…> and <#C…> in mrkdwn.
var slackMarkup = regexp.MustCompile(`<!date\^[^|>]*\|([^>]*)>|<@([UW][A-Z0-9]+)(?:\|[^>]*)?>|<#([CG][A-Z0-9]+)(?:\|[^>]*)?>`)

func terminalText(s string) string {
	s = slackMarkup.ReplaceAllStringFunc(s, func(m string) string {
		g := slackMarkup.FindStringSubmatch(m)
		switch {
		case g[1] != "":
			return g[1]
		case g[2] != "":
			return "@" + g[2]
		default:
			return "#" + g[3]
		}
	})
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}

// awaitCard waits for the first message the bot posts outside a thread,
// the approval card, and returns it.
func awaitCard(stub *slackstub.Server) (slackstub.Message, error) {
	var card slackstub.Message
	if !stub.WaitFor(10*time.Second, func() bool {
		for _, m := range stub.Messages() {
			if m.ThreadTS == "" {
				card = m
				return true
			}
		}
		return false
	}) {
		return card, errors.New("the approval card was not posted")
	}
	return card, nil
}
