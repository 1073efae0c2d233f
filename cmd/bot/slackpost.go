package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"rebootbot/bot"
)

// slackSender signs deliveries with the signing secret and sends them to
// the bot's HTTP endpoints the way Slack does, from one workspace and
// channel. The demo and the benchmark drive the bot through it.
type slackSender struct {
	base, secret string // the bot's base URL and signing secret
	team         string // workspace ID
	channel      string // channel ID
	channelName  string
	tag          string // marks the trigger IDs it makes

	mu  sync.Mutex
	seq int
}

// trigger returns a fresh trigger ID.
func (s *slackSender) trigger() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%d.1000.%s%06d", time.Now().UnixNano(), s.tag, s.seq)
}

// senderClient carries every slackSender's deliveries. Go's default
// transport keeps two idle connections per host, so with twenty
// deliveries in flight most of them would dial a new connection (and the
// bot accept one): keep as many as the benchmark's widest concurrency,
// the way Slack's own senders hold theirs open.
var senderClient = &http.Client{Transport: func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 100
	return t
}()}

// post signs form and sends it to path. It returns the bot's status and
// body (at most 1 MiB of it) and how long the whole answer took.
func (s *slackSender) post(ctx context.Context, path string, form url.Values) (status int, body string, took time.Duration, err error) {
	enc := form.Encode()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+path, strings.NewReader(enc))
	if err != nil {
		return 0, "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", bot.Sign(s.secret, ts, []byte(enc)))
	start := time.Now()
	resp, err := senderClient.Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	took = time.Since(start)
	if err != nil {
		return 0, "", 0, fmt.Errorf("%s: read the answer: %w", path, err)
	}
	return resp.StatusCode, string(b), took, nil
}

// command sends a /reboot slash command by user with text, whose late
// answers go to responseURL.
func (s *slackSender) command(ctx context.Context, user, text, responseURL string) (status int, body string, took time.Duration, err error) {
	return s.post(ctx, "/slack/commands", url.Values{
		"team_id": {s.team}, "channel_id": {s.channel}, "channel_name": {s.channelName}, "user_id": {user},
		"user_name": {strings.ToLower(user[1:])}, "command": {"/reboot"}, "text": {text},
		"response_url": {responseURL}, "trigger_id": {s.trigger()}, "api_app_id": {"AREBOOTBOT"},
	})
}

// click sends a block_actions payload: user pressing the action button of
// request requestID on the card posted at ts.
func (s *slackSender) click(ctx context.Context, user, action, requestID, ts, responseURL string) (status int, body string, took time.Duration, err error) {
	form, err := s.clickForm(user, action, requestID, ts, s.trigger(), responseURL)
	if err != nil {
		return 0, "", 0, err
	}
	return s.post(ctx, "/slack/interactions", form)
}

// clickForm is the form of a click with trigger ID trigger; Slack sends
// the same form again when it redelivers the click.
func (s *slackSender) clickForm(user, action, requestID, ts, trigger, responseURL string) (url.Values, error) {
	payload, err := json.Marshal(map[string]any{
		"type": "block_actions", "trigger_id": trigger, "response_url": responseURL, "api_app_id": "AREBOOTBOT",
		"user":      map[string]any{"id": user, "username": strings.ToLower(user[1:]), "team_id": s.team},
		"team":      map[string]any{"id": s.team},
		"channel":   map[string]any{"id": s.channel, "name": s.channelName},
		"container": map[string]any{"type": "message", "message_ts": ts, "channel_id": s.channel},
		"message":   map[string]any{"ts": ts},
		"actions": []map[string]any{{"action_id": action, "block_id": "decide:" + requestID, "type": "button",
			"value": requestID, "action_ts": fmt.Sprintf("%d.000100", time.Now().Unix())}},
	})
	if err != nil {
		return nil, err
	}
	return url.Values{"payload": {string(payload)}}, nil
}
