package bot_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const stubToken = "xoxb-test-token-0001"

// apiCall is one request the Slack stand-in received.
type apiCall struct {
	Method string // Web API method, or "response_url"
	Path   string // the response_url path for response_url posts
	Form   url.Values
	JSON   map[string]any
	Status int // what the stand-in answered
	Error  string
}

// Text returns the message text of a call, whichever encoding it used.
func (c apiCall) Text() string {
	if c.Form != nil {
		return c.Form.Get("text")
	}
	s, _ := c.JSON["text"].(string)
	return s
}

// Blocks returns the blocks JSON of a call, normalised by normalJSON.
func (c apiCall) Blocks() string {
	if c.Form != nil {
		return normalJSON(c.Form.Get("blocks"))
	}
	raw, _ := json.Marshal(c.JSON["blocks"])
	return normalJSON(string(raw))
}

// normalJSON re-encodes JSON without its HTML escaping (\u003c for <), so
// that tests can look for Slack markup as Slack reads it.
func normalJSON(raw string) string {
	var v any
	if err := json.Unmarshal([]byte(raw), &v); err != nil || v == nil {
		return ""
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSpace(buf.String())
}

// stubFault is a scripted misbehaviour for one call of a method.
type stubFault struct {
	Status     int           // HTTP status; 0 = 200
	RetryAfter string        // Retry-After header with a 429
	Error      string        // Slack error code in an ok:false answer
	Delay      time.Duration // answer this late (ends early if the client goes away)
	Land       bool          // do what was asked, then answer with Status anyway
}

// stubMessage is a message as it stands in a channel, updates applied.
type stubMessage struct {
	Channel, TS, ThreadTS, Text string
	Blocks                      string // normalised JSON
	Metadata                    map[string]any
	Updates                     int
}

// slackStub is a local stand-in for Slack's Web API and for response_url
// endpoints. It records every call and can be told to fail.
type slackStub struct {
	t   testing.TB
	srv *httptest.Server

	mu        sync.Mutex
	calls     []apiCall
	ts        int
	faults    map[string][]stubFault
	groups    map[string][]string
	notIn     map[string]bool // channels the bot is not in
	noHistory bool            // history reads answer missing_scope
	messages  []stubMessage
	responses int
	onConnect func(w http.ResponseWriter, r *http.Request) // serves /ws for Socket Mode
}

func mustSlackStub(t testing.TB) *slackStub {
	s := &slackStub{t: t, faults: map[string][]stubFault{}, groups: map[string][]string{}, notIn: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// APIURL is the base URL to configure as SLACK_API_URL.
func (s *slackStub) APIURL() string { return s.srv.URL + "/api/" }

// newResponseURL returns a fresh response_url served by the stand-in.
func (s *slackStub) newResponseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.responses++
	return fmt.Sprintf("%s/response/%d", s.srv.URL, s.responses)
}

func (s *slackStub) fail(method string, f ...stubFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], f...)
}

func (s *slackStub) setGroup(id string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[id] = members
}

// refuseHistory makes history reads fail as without the history scopes.
func (s *slackStub) refuseHistory() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noHistory = true
}

// serveSocket makes /ws serve Socket Mode connections with fn.
func (s *slackStub) serveSocket(fn func(w http.ResponseWriter, r *http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onConnect = fn
}

func (s *slackStub) botNotIn(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notIn[channel] = true
}

func (s *slackStub) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ws" {
		s.mu.Lock()
		connect := s.onConnect
		s.mu.Unlock()
		if connect != nil {
			connect(w, r)
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	call := apiCall{Status: http.StatusOK}
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/"):
		call.Method = strings.TrimPrefix(r.URL.Path, "/api/")
	case strings.HasPrefix(r.URL.Path, "/response/"):
		call.Method, call.Path = "response_url", r.URL.Path
	default:
		http.NotFound(w, r)
		return
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(body, &call.JSON)
	} else {
		call.Form, _ = url.ParseQuery(string(body))
	}

	s.mu.Lock()
	var fault stubFault
	if q := s.faults[call.Method]; len(q) > 0 {
		fault, s.faults[call.Method] = q[0], q[1:]
	}
	s.mu.Unlock()
	if fault.Delay > 0 {
		select {
		case <-time.After(fault.Delay):
		case <-r.Context().Done():
		}
	}
	if fault.Status != 0 && fault.Status != http.StatusOK {
		if fault.Land {
			s.answer(r, &call, stubFault{})
		}
		call.Status = fault.Status
		s.record(call)
		if fault.RetryAfter != "" {
			w.Header().Set("Retry-After", fault.RetryAfter)
		}
		http.Error(w, http.StatusText(fault.Status), fault.Status)
		return
	}
	answer := s.answer(r, &call, fault)
	s.record(call)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
}

func (s *slackStub) record(c apiCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

// answer builds the JSON answer of a Web API method.
func (s *slackStub) answer(r *http.Request, c *apiCall, fault stubFault) map[string]any {
	fail := func(code string) map[string]any {
		c.Error = code
		return map[string]any{"ok": false, "error": code}
	}
	if fault.Error != "" {
		return fail(fault.Error)
	}
	if c.Method == "response_url" {
		return map[string]any{"ok": true}
	}
	token := r.Header.Get("Authorization")
	if c.Form != nil && c.Form.Get("token") != "" {
		token = "Bearer " + c.Form.Get("token")
	}
	if c.Method != "apps.connections.open" && token != "Bearer "+stubToken {
		return fail("invalid_auth")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch c.Method {
	case "chat.postMessage":
		ch := c.Form.Get("channel")
		if s.notIn[ch] {
			return fail("not_in_channel")
		}
		s.ts++
		m := stubMessage{Channel: ch, TS: fmt.Sprintf("1700000000.%06d", s.ts), ThreadTS: c.Form.Get("thread_ts"),
			Text: c.Form.Get("text"), Blocks: normalJSON(c.Form.Get("blocks"))}
		_ = json.Unmarshal([]byte(c.Form.Get("metadata")), &m.Metadata)
		s.messages = append(s.messages, m)
		return map[string]any{"ok": true, "channel": ch, "ts": m.TS}
	case "chat.update":
		for i := range s.messages {
			if m := &s.messages[i]; m.Channel == c.Form.Get("channel") && m.TS == c.Form.Get("ts") {
				m.Text, m.Blocks = c.Form.Get("text"), normalJSON(c.Form.Get("blocks"))
				m.Updates++
				return map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS}
			}
		}
		return fail("message_not_found")
	case "conversations.history", "conversations.replies":
		if s.noHistory {
			return fail("missing_scope")
		}
		var out []map[string]any
		for i := len(s.messages) - 1; i >= 0; i-- { // newest first
			m := s.messages[i]
			if m.Channel != c.Form.Get("channel") {
				continue
			}
			if c.Method == "conversations.history" && m.ThreadTS != "" || c.Method == "conversations.replies" && m.ThreadTS != c.Form.Get("ts") {
				continue
			}
			out = append(out, map[string]any{"type": "message", "ts": m.TS, "thread_ts": m.ThreadTS, "text": m.Text, "metadata": m.Metadata})
		}
		return map[string]any{"ok": true, "messages": out, "has_more": false}
	case "chat.postEphemeral":
		return map[string]any{"ok": true, "message_ts": "1700000000.999999"}
	case "views.open":
		return map[string]any{"ok": true, "view": map[string]any{"id": "V0FORM"}}
	case "usergroups.users.list":
		members, ok := s.groups[c.Form.Get("usergroup")]
		if !ok {
			return fail("no_such_subteam")
		}
		return map[string]any{"ok": true, "users": members}
	case "apps.connections.open":
		if token != "Bearer xapp-test-token" {
			return fail("invalid_auth")
		}
		return map[string]any{"ok": true, "url": "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/ws"}
	}
	return fail("unknown_method")
}

// all returns the calls of method (every call when method is "").
func (s *slackStub) all(method string) []apiCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []apiCall
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// count returns how many calls of method were answered ok.
func (s *slackStub) count(method string) int {
	n := 0
	for _, c := range s.all(method) {
		if c.Status == http.StatusOK && c.Error == "" {
			n++
		}
	}
	return n
}

// responsesTo returns the messages posted to one response_url.
func (s *slackStub) responsesTo(responseURL string) []apiCall {
	u, _ := url.Parse(responseURL)
	var out []apiCall
	for _, c := range s.all("response_url") {
		if c.Path == u.Path {
			out = append(out, c)
		}
	}
	return out
}

// cards returns the messages standing in channel outside threads.
func (s *slackStub) cards(channel string) []stubMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []stubMessage
	for _, m := range s.messages {
		if m.Channel == channel && m.ThreadTS == "" {
			out = append(out, m)
		}
	}
	return out
}

// thread returns the replies standing in the thread of ts.
func (s *slackStub) thread(ts string) []stubMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []stubMessage
	for _, m := range s.messages {
		if m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}

// message returns the message ts as it stands.
func (s *slackStub) message(ts string) (stubMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.messages {
		if m.TS == ts {
			return m, true
		}
	}
	return stubMessage{}, false
}

// tsOf returns the ts the stand-in gave the n-th (1-based) posted message.
func tsOf(n int) string { return "1700000000." + fmt.Sprintf("%06d", n) }

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
