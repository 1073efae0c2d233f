// Package slackstub is a local stand-in for Slack's Web API and for the
// response_url endpoints Slack hands out with each command and click. The
// demo, the end-to-end tests and the crash tests point SLACK_API_URL at it.
// It keeps every message it was sent, threads included, answers like
// Slack does (ok/error JSON, 429 with Retry-After) and can be told to fail.
package slackstub

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Who the stand-in says the bot token belongs to (auth.test) and the
// poster it gives the messages posted with that token.
const (
	BotUserID   = "UREBOOTBOT"
	BotID       = "BREBOOTBOT"
	BotUserName = "rebootbot"
	TeamID      = "TDEMO"
	TeamName    = "rebootbot stand-in"
)

// Call is one request the stub received.
type Call struct {
	Method string         // chat.postMessage, chat.update, …, or "response_url"
	Path   string         // the URL path it was sent to
	Form   url.Values     // form fields (JSON bodies are flattened into it)
	JSON   map[string]any // the decoded body, for JSON bodies
	Body   []byte         // the raw body
	Status int            // the HTTP status it was answered with (0 while in flight)
	Error  string         // the Slack error code it was answered with, if any
}

// OK reports whether the call was answered with success.
func (c Call) OK() bool { return c.Status == http.StatusOK && c.Error == "" }

// Text returns the message text the call carried.
func (c Call) Text() string { return c.Form.Get("text") }

// Blocks returns the call's blocks as JSON without HTML escaping, so that
// Slack markup (<@U…>) reads as Slack reads it.
func (c Call) Blocks() string { return NormalJSON(c.Form.Get("blocks")) }

// NormalJSON re-encodes JSON without its HTML escaping (\u003c for <);
// it returns "" for what is not JSON.
func NormalJSON(raw string) string {
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

// Message is a message as it stands in a channel.
type Message struct {
	Channel  string
	TS       string
	ThreadTS string
	Text     string
	Blocks   string // JSON, without HTML escaping (see NormalJSON)
	Updates  int    // how many chat.update calls changed it
	Metadata string // JSON {"event_type": …, "event_payload": {…}}, as posted
	User     string // who posted it: BotUserID for the bot's own posts
	BotID    string // the posting app's bot ID: BotID for the bot's own posts
}

// Fault is a failure to answer the next matching calls with.
type Fault struct {
	Method     string        // "" = any method
	Status     int           // HTTP status, e.g. 429 or 503; 0 = 200 with Error
	Error      string        // Slack error code, e.g. not_in_channel
	RetryAfter int           // seconds, for 429
	Delay      time.Duration // wait before answering (the call may still succeed)
	Count      int           // how many calls it applies to; 0 = 1
	// Land performs the call before answering with Status, as when Slack
	// acts but the answer is lost or garbled.
	Land bool
}

// Server is the stand-in. Its zero value is not usable; call New.
type Server struct {
	mu         sync.Mutex
	calls      []Call
	messages   []*Message
	ephemeral  []Call
	responses  []Call
	faults     []Fault
	groups     map[string][]string
	notIn      map[string]bool
	noHistory  bool
	refusal    string // error code every bot-token call is answered with
	seq        int
	URL        string // base URL of the server, set by the caller (for response URLs)
	changed    chan struct{}
	viewsOpen  []Call
	responseID int

	// OnCall, when set before the server takes its first call, is called
	// once for every call it receives, from the goroutine serving it, after
	// the call took effect (a message stored, a fault chosen and waited
	// out) and before its answer is written. Crash tests stop the bot at
	// that instant: Slack has the message, the bot has no answer yet.
	OnCall func(Call)

	// Token, when set, is the only bot token Web API calls are accepted
	// with (invalid_auth otherwise); AppToken likewise for
	// apps.connections.open, which answers with the URL of /ws.
	Token, AppToken string
	socket          http.Handler // serves /ws, the Socket Mode websocket
}

// SetSocket makes /ws serve Socket Mode connections with h.
func (s *Server) SetSocket(h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.socket = h
}

// New returns an empty stand-in.
func New() *Server {
	return &Server{groups: map[string][]string{}, notIn: map[string]bool{}, changed: make(chan struct{})}
}

// SetGroup sets the members usergroups.users.list reports for group.
func (s *Server) SetGroup(group string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[group] = members
}

// NotInChannel makes posts to channel fail with not_in_channel.
func (s *Server) NotInChannel(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notIn[channel] = true
}

// RefuseHistory makes conversations.history and conversations.replies
// fail with missing_scope, as for an app without the history scopes.
func (s *Server) RefuseHistory() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noHistory = true
}

// RefuseToken makes every call made with the bot token fail with code
// (invalid_auth, token_revoked, account_inactive, …), as Slack answers
// once a token is no good; "" accepts it again.
func (s *Server) RefuseToken(code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refusal = code
}

// PostAs adds m to the channel as posted by someone other than the bot
// (set m.User and m.BotID to say who) and returns it with its timestamp.
func (s *Server) PostAs(m Message) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	m.TS = fmt.Sprintf("1800000000.%06d", s.seq)
	s.messages = append(s.messages, &m)
	s.notify()
	return m
}

// Delete removes message ts from its channel, as a person deleting it
// would; chat.update on it then answers message_not_found.
func (s *Server) Delete(ts string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.messages {
		if m.TS == ts {
			s.messages = append(s.messages[:i], s.messages[i+1:]...)
			s.notify()
			return true
		}
	}
	return false
}

// Fail queues a fault.
func (s *Server) Fail(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Count == 0 {
		f.Count = 1
	}
	s.faults = append(s.faults, f)
}

// ClearFaults drops every fault still queued: Slack answers again.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// ResponseURL returns a fresh response_url served by the stub.
func (s *Server) ResponseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.responseID++
	return fmt.Sprintf("%s/response/%d", strings.TrimSuffix(s.URL, "/"), s.responseID)
}

// Calls returns every call received, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Messages returns the channel messages (cards and thread replies) as they
// stand now.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = *m
	}
	return out
}

// Scan calls fn with each channel message as it stands, oldest first,
// until fn returns false: a look at many messages without copying them.
// fn runs under the server's lock; it must not keep m or call the server.
func (s *Server) Scan(fn func(m *Message) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.messages {
		if !fn(m) {
			return
		}
	}
}

// Responses returns the bodies posted to response URLs and the
// chat.postEphemeral calls, in order: what users saw privately.
func (s *Server) Responses() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.responses)
}

// Changed returns a channel closed at the next change, for waiting without
// sleeping.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// WaitFor waits until cond holds or timeout passes and reports whether it
// held.
func (s *Server) WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := s.Changed()
		if cond() {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return cond()
		}
	}
}

// ResponsesTo returns what was posted to one response URL, or
// ephemerally to user with chat.postEphemeral.
func (s *Server) ResponsesTo(responseURL, user string) []Call {
	path := responseURL
	if u, err := url.Parse(responseURL); err == nil {
		path = u.Path
	}
	var out []Call
	for _, c := range s.Responses() {
		if c.Method == "response_url" && c.Path == path || c.Method == "chat.postEphemeral" && c.Form.Get("user") == user {
			out = append(out, c)
		}
	}
	return out
}

// Thread returns the replies in the thread of the message ts.
func (s *Server) Thread(ts string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		if m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}

// Card returns the top-level message ts, if any.
func (s *Server) Card(ts string) (Message, bool) {
	for _, m := range s.Messages() {
		if m.TS == ts && m.ThreadTS == "" {
			return m, true
		}
	}
	return Message{}, false
}

func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// takeFault returns the fault for method, consuming it.
func (s *Server) takeFault(method string) (Fault, bool) {
	for i, f := range s.faults {
		if f.Method == "" || f.Method == method {
			f.Count--
			if f.Count <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			} else {
				s.faults[i] = f
			}
			return f, true
		}
	}
	return Fault{}, false
}

// ServeHTTP answers Web API methods under /api/ (or at the root) and
// response URLs under /response/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ws" {
		s.mu.Lock()
		socket := s.socket
		s.mu.Unlock()
		if socket != nil {
			socket.ServeHTTP(w, r)
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	method := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/api"), "/")
	if strings.HasPrefix(r.URL.Path, "/response/") {
		method = "response_url"
	}
	call := Call{Method: method, Path: r.URL.Path, Body: body}
	call.Form, call.JSON = decode(r.Header.Get("Content-Type"), body)

	s.mu.Lock()
	s.calls = append(s.calls, call)
	index := len(s.calls) - 1
	fault, faulty := s.takeFault(method)
	s.notify()
	s.mu.Unlock()

	// answered records how the call was answered and reports it.
	answered := func(status int, slackErr string) {
		s.mu.Lock()
		s.calls[index].Status, s.calls[index].Error = status, slackErr
		call = s.calls[index]
		s.notify()
		s.mu.Unlock()
		s.called(call)
	}
	if faulty && fault.Delay > 0 {
		select {
		case <-time.After(fault.Delay):
		case <-r.Context().Done():
			answered(0, "")
			return
		}
	}
	if faulty && (fault.Status == http.StatusTooManyRequests || fault.Status >= 500) {
		if fault.Land {
			s.perform(r, call)
		}
		answered(fault.Status, "")
		if fault.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(fault.RetryAfter))
		}
		w.WriteHeader(fault.Status)
		return
	}
	answer := map[string]any{"ok": false, "error": fault.Error}
	if !faulty || fault.Error == "" {
		answer = s.perform(r, call)
	}
	slackErr, _ := answer["error"].(string)
	answered(http.StatusOK, slackErr)
	writeJSON(w, answer)
}

// perform checks the call's token and carries it out.
func (s *Server) perform(r *http.Request, c Call) map[string]any {
	if c.Method == "response_url" {
		return s.answer(c, "http://"+r.Host)
	}
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if t := c.Form.Get("token"); t != "" {
		token = t
	}
	want := s.Token
	if c.Method == "apps.connections.open" {
		want = s.AppToken
	}
	s.mu.Lock()
	refusal := s.refusal
	s.mu.Unlock()
	switch {
	case token == "":
		return map[string]any{"ok": false, "error": "not_authed"}
	case want != "" && token != want:
		return map[string]any{"ok": false, "error": "invalid_auth"}
	case refusal != "" && c.Method != "apps.connections.open":
		return map[string]any{"ok": false, "error": refusal}
	}
	return s.answer(c, "http://"+r.Host)
}

// called reports c to the OnCall hook, if any.
func (s *Server) called(c Call) {
	if s.OnCall != nil {
		s.OnCall(c)
	}
}

// answer performs a successful call, c, made to the stand-in at base
// (scheme and host, as the caller reached it).
func (s *Server) answer(c Call, base string) map[string]any {
	s.mu.Lock()
	defer func() {
		s.notify()
		s.mu.Unlock()
	}()
	f := c.Form
	switch c.Method {
	case "apps.connections.open":
		return map[string]any{"ok": true, "url": "ws" + strings.TrimPrefix(base, "http") + "/ws"}
	case "auth.test":
		return map[string]any{"ok": true, "url": base + "/", "team": TeamName, "user": BotUserName,
			"team_id": TeamID, "user_id": BotUserID, "bot_id": BotID}
	case "chat.postMessage":
		ch := f.Get("channel")
		if s.notIn[ch] {
			return map[string]any{"ok": false, "error": "not_in_channel"}
		}
		s.seq++
		m := &Message{Channel: ch, TS: fmt.Sprintf("1800000000.%06d", s.seq), ThreadTS: f.Get("thread_ts"), Text: f.Get("text"), Blocks: NormalJSON(f.Get("blocks")), Metadata: f.Get("metadata"),
			User: BotUserID, BotID: BotID}
		s.messages = append(s.messages, m)
		return map[string]any{"ok": true, "channel": ch, "ts": m.TS, "message": map[string]any{"text": m.Text, "ts": m.TS}}
	case "chat.update":
		for _, m := range s.messages {
			if m.Channel == f.Get("channel") && m.TS == f.Get("ts") {
				if m.BotID != BotID {
					return map[string]any{"ok": false, "error": "cant_update_message"}
				}
				m.Text, m.Blocks = f.Get("text"), NormalJSON(f.Get("blocks"))
				if md := f.Get("metadata"); md != "" {
					m.Metadata = md
				}
				m.Updates++
				return map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS, "text": m.Text}
			}
		}
		return map[string]any{"ok": false, "error": "message_not_found"}
	case "chat.postEphemeral":
		s.responses = append(s.responses, c)
		return map[string]any{"ok": true, "message_ts": "1800000000.999999"}
	case "response_url":
		s.responses = append(s.responses, c)
		return map[string]any{"ok": true}
	case "usergroups.users.list":
		users := s.groups[f.Get("usergroup")]
		if users == nil {
			return map[string]any{"ok": false, "error": "no_such_subteam"}
		}
		return map[string]any{"ok": true, "users": users}
	case "views.open":
		s.viewsOpen = append(s.viewsOpen, c)
		return map[string]any{"ok": true, "view": map[string]any{"id": fmt.Sprintf("V%06d", len(s.viewsOpen))}}
	case "conversations.history", "conversations.replies":
		return s.history(c.Method, f)
	case "conversations.info":
		return map[string]any{"ok": true, "channel": map[string]any{"id": f.Get("channel"), "is_member": !s.notIn[f.Get("channel")]}}
	case "users.info":
		return map[string]any{"ok": true, "user": map[string]any{"id": f.Get("user"), "name": strings.ToLower(f.Get("user"))}}
	}
	return map[string]any{"ok": false, "error": "unknown_method"}
}

// history answers conversations.history (the channel's top-level
// messages, newest first) and conversations.replies (a thread: its parent,
// then the replies oldest first), paged by limit and cursor like Slack.
// s.mu must be held.
func (s *Server) history(method string, f url.Values) map[string]any {
	if s.noHistory {
		return map[string]any{"ok": false, "error": "missing_scope"}
	}
	ch := f.Get("channel")
	var list []*Message
	if method == "conversations.history" {
		for i := len(s.messages) - 1; i >= 0; i-- {
			if m := s.messages[i]; m.Channel == ch && m.ThreadTS == "" && inRange(m.TS, f.Get("oldest"), f.Get("latest")) {
				list = append(list, m)
			}
		}
	} else {
		ts := f.Get("ts")
		for _, m := range s.messages {
			if m.Channel == ch && (m.TS == ts && m.ThreadTS == "" || m.ThreadTS == ts) {
				list = append(list, m)
			}
		}
		if len(list) == 0 || list[0].TS != ts {
			return map[string]any{"ok": false, "error": "thread_not_found"}
		}
	}
	start, _ := strconv.Atoi(f.Get("cursor"))
	limit, _ := strconv.Atoi(f.Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	start = min(max(start, 0), len(list))
	end := min(start+limit, len(list))
	withMetadata := f.Get("include_all_metadata") == "1" || f.Get("include_all_metadata") == "true"
	out := make([]map[string]any, 0, end-start)
	for _, m := range list[start:end] {
		msg := map[string]any{"type": "message", "ts": m.TS, "text": m.Text, "user": m.User}
		if m.BotID != "" {
			msg["bot_id"] = m.BotID
		}
		if m.ThreadTS != "" {
			msg["thread_ts"] = m.ThreadTS
		}
		if withMetadata && m.Metadata != "" {
			var md any
			if json.Unmarshal([]byte(m.Metadata), &md) == nil {
				msg["metadata"] = md
			}
		}
		out = append(out, msg)
	}
	next := ""
	if end < len(list) {
		next = strconv.Itoa(end)
	}
	return map[string]any{"ok": true, "messages": out, "has_more": next != "", "response_metadata": map[string]any{"next_cursor": next}}
}

// inRange reports whether ts lies within the oldest and latest bounds
// (either may be empty), compared as Slack timestamps.
func inRange(ts, oldest, latest string) bool {
	t, err := strconv.ParseFloat(ts, 64)
	if err != nil {
		return false
	}
	if o, err := strconv.ParseFloat(oldest, 64); err == nil && t < o {
		return false
	}
	if l, err := strconv.ParseFloat(latest, 64); err == nil && t > l {
		return false
	}
	return true
}

// decode turns a form or JSON body into form values; a JSON body is also
// returned decoded.
func decode(contentType string, body []byte) (url.Values, map[string]any) {
	if strings.HasPrefix(contentType, "application/json") {
		var m map[string]any
		out := url.Values{}
		if json.Unmarshal(body, &m) == nil {
			for k, v := range m {
				if s, ok := v.(string); ok {
					out.Set(k, s)
				} else {
					b, _ := json.Marshal(v)
					out.Set(k, string(b))
				}
			}
		}
		return out, m
	}
	v, _ := url.ParseQuery(string(body))
	return v, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
