//go:build e2e

// The harness's side of Slack: the people, the deliveries Slack would send,
// and reading the channel and threads back from the stand-in.

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"rebootbot/bot"
	"rebootbot/bot/slackstub"
)

// The people of the harness. Every approver is in BOT_APPROVERS.
const (
	requester = "UREQUESTER"
	approver1 = "UAPPROVER1"
	approver2 = "UAPPROVER2"
	approver3 = "UAPPROVER3"
	outsider  = "UOUTSIDER"
	channel   = "COPS"
)

// delivery is one signed HTTP request as Slack sends it.
type delivery struct {
	path        string
	form        url.Values
	trigger     string
	responseURL string
	user        string
}

func (w *world) nextTrigger() string {
	return fmt.Sprintf("%d.%d.harness", time.Now().UnixNano(), w.trigger.Add(1))
}

// command builds a /reboot slash command typed by user in the channel.
func (w *world) command(user, text string) delivery {
	d := delivery{path: "/slack/commands", trigger: w.nextTrigger(), responseURL: w.stub.ResponseURL(), user: user}
	d.form = url.Values{
		"team_id": {"THARNESS"}, "channel_id": {channel}, "channel_name": {"ops"}, "user_id": {user},
		"user_name": {strings.ToLower(user)}, "command": {"/reboot"}, "text": {text},
		"response_url": {d.responseURL}, "trigger_id": {d.trigger}, "api_app_id": {"AREBOOTBOT"},
	}
	return d
}

// click builds a block_actions payload: user clicks action (bot.ActionApprove
// or bot.ActionDeny) on the card of requestID at ts.
func (w *world) click(user, action, requestID, ts string) delivery {
	d := delivery{path: "/slack/interactions", trigger: w.nextTrigger(), responseURL: w.stub.ResponseURL(), user: user}
	payload := map[string]any{
		"type": "block_actions", "trigger_id": d.trigger, "response_url": d.responseURL, "api_app_id": "AREBOOTBOT",
		"user":      map[string]any{"id": user, "username": strings.ToLower(user), "team_id": "THARNESS"},
		"team":      map[string]any{"id": "THARNESS"},
		"channel":   map[string]any{"id": channel, "name": "ops"},
		"container": map[string]any{"type": "message", "message_ts": ts, "channel_id": channel},
		"message":   map[string]any{"ts": ts},
		"actions": []map[string]any{{"action_id": action, "block_id": "decide:" + requestID, "type": "button",
			"value": requestID, "action_ts": fmt.Sprintf("%d.%06d", time.Now().Unix(), w.trigger.Add(1)%1000000)}},
	}
	b, _ := json.Marshal(payload)
	d.form = url.Values{"payload": {string(b)}}
	return d
}

// send signs d now and posts it to the running bot, returning the status
// and body of the answer.
func (w *world) send(d delivery) (int, string, error) {
	body := d.form.Encode()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	h := http.Header{}
	h.Set(bot.HeaderTimestamp, ts)
	h.Set(bot.HeaderSignature, bot.Sign(w.secret, ts, []byte(body)))
	return w.post(d.path, body, h)
}

// post sends body to the running bot with the given headers.
func (w *world) post(path, body string, h http.Header) (int, string, error) {
	p := w.current()
	if p == nil {
		return 0, "", errors.New("no bot")
	}
	req, err := http.NewRequest(http.MethodPost, p.base+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), nil
}

// mustSend sends d and fails unless the bot answers 200.
func (w *world) mustSend(d delivery) string {
	w.t.Helper()
	status, body, err := w.send(d)
	if err != nil || status != http.StatusOK {
		w.t.Fatalf("%s: %d %s %v", d.path, status, body, err)
	}
	return body
}

// sendUntilKilled sends d while a hook is set to kill the bot at a point
// that d sets off. On a busy machine that point can come before the bot
// has written d's answer, and the kill cuts the answer off: only an answer
// that arrives must be a 200. Whether the kill point was reached is for
// awaitDeath to say.
func (w *world) sendUntilKilled(d delivery) {
	w.t.Helper()
	if status, body, err := w.send(d); err == nil && status != http.StatusOK {
		w.t.Fatalf("%s: %d %s", d.path, status, body)
	}
}

var requestIDPattern = regexp.MustCompile(`\bR-\d+\b`)

// replies returns the texts the bot sent to d's response URL (or
// ephemerally to its user).
func (w *world) replies(d delivery) []string {
	var out []string
	for _, c := range w.stub.ResponsesTo(d.responseURL, d.user) {
		out = append(out, responseText(c))
	}
	return out
}

// mustRequest files `/reboot ids… harness reboot` as the requester and
// returns the request ID once the bot says its card is in the channel.
func (w *world) mustRequest(ids []string) string {
	w.t.Helper()
	d := w.command(requester, strings.Join(ids, " ")+" harness reboot")
	w.mustSend(d)
	reply := w.waitReply(d, "the card is in the channel")
	id := requestIDPattern.FindString(reply)
	if id == "" {
		w.t.Fatalf("no request ID in %q", reply)
	}
	return id
}

// cardTitle matches a card's text: "Reboot request R-1 (Pending): …".
var cardTitle = regexp.MustCompile(`^Reboot request (R-\d+) \(([^)]*)\)`)

// cards returns the top-level messages that are cards of request id.
func (w *world) cards(id string) []slackstub.Message {
	var out []slackstub.Message
	for _, m := range w.stub.Messages() {
		if g := cardTitle.FindStringSubmatch(m.Text); m.ThreadTS == "" && g != nil && g[1] == id {
			out = append(out, m)
		}
	}
	return out
}

// cardOutcome returns the word a card shows: Pending, Succeeded, ….
func cardOutcome(m slackstub.Message) string {
	if g := cardTitle.FindStringSubmatch(m.Text); g != nil {
		return g[2]
	}
	return ""
}

// Thread messages: the start, one report per instance, the summary.
func summaries(thread []slackstub.Message) int {
	n := 0
	for _, m := range thread {
		if strings.HasPrefix(m.Text, "*") {
			n++
		}
	}
	return n
}

func starts(thread []slackstub.Message) int {
	n := 0
	for _, m := range thread {
		if strings.HasPrefix(m.Text, "Rebooting ") {
			n++
		}
	}
	return n
}

// instanceReports counts the thread messages reporting instance id.
func instanceReports(thread []slackstub.Message, id string) int {
	n := 0
	for _, m := range thread {
		if (strings.HasPrefix(m.Text, "✅") || strings.HasPrefix(m.Text, "❌")) && strings.Contains(m.Text, "`"+id+"`") {
			n++
		}
	}
	return n
}
