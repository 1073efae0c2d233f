package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
)

var slackRateLimited = slack.RateLimitedError{RetryAfter: time.Second}

func slackStatus(code int) error {
	return slack.StatusCodeError{Code: code, Status: http.StatusText(code)}
}

func slackErr(code string) error { return slack.SlackErrorResponse{Err: code} }

const testToken = "xoxb-unit-test-token"

// scriptedSlack answers Web API calls from a script, one answer per call,
// and records the waits the client asks for instead of sleeping.
type scriptedSlack struct {
	mu      sync.Mutex
	answers map[string][]func(w http.ResponseWriter)
	calls   []string
}

// botIdentity answers auth.test for the bot whose messages the scripted
// histories hold (bot_id BBOT, user UBOT).
var botIdentity = okJSON(`{"ok":true,"url":"https://example.slack.com/","team":"Example","user":"rebootbot","team_id":"T1","user_id":"UBOT","bot_id":"BBOT"}`)

// noMessages answers a history read that finds nothing.
var noMessages = okJSON(`{"ok":true,"messages":[],"has_more":false}`)

func okJSON(body string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}
}

func status(code int, retryAfter string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(code)
	}
}

func (s *scriptedSlack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	s.mu.Lock()
	s.calls = append(s.calls, method)
	var answer func(http.ResponseWriter)
	if q := s.answers[method]; len(q) > 0 {
		answer, s.answers[method] = q[0], q[1:]
	}
	s.mu.Unlock()
	switch {
	case answer != nil:
	case method == "conversations.history" || method == "conversations.replies":
		answer = noMessages
	case method == "auth.test":
		answer = botIdentity
	default:
		answer = okJSON(`{"ok":false,"error":"unscripted"}`)
	}
	answer(w)
}

func (s *scriptedSlack) count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c == method {
			n++
		}
	}
	return n
}

// mustSlack returns a client of a scripted Slack whose waits are recorded.
func mustSlack(t *testing.T, script map[string][]func(http.ResponseWriter), cfg SlackConfig) (*Slack, *scriptedSlack, *[]time.Duration, *bytes.Buffer) {
	t.Helper()
	stub := &scriptedSlack{answers: script}
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	var logs bytes.Buffer
	cfg.Token = testToken
	cfg.APIURL = srv.URL + "/api" // without the trailing slash on purpose
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := NewSlack(cfg)
	var waits []time.Duration
	var mu sync.Mutex
	s.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return s, stub, &waits, &logs
}

func TestSlackRetries(t *testing.T) {
	card := okJSON(`{"ok":true,"channel":"C1","ts":"1.1"}`)
	tests := []struct {
		name      string
		script    []func(http.ResponseWriter)
		wantCalls int
		wantWaits []time.Duration
		wantErr   string // "" for success
		wantKind  approval.Kind
	}{
		{"OK", []func(http.ResponseWriter){card}, 1, nil, "", ""},
		{"RateLimitedWaitsRetryAfter", []func(http.ResponseWriter){status(429, "7"), card}, 2, []time.Duration{7 * time.Second}, "", ""},
		{"ServerErrorsBackOff", []func(http.ResponseWriter){status(500, ""), status(502, ""), status(503, ""), card}, 4,
			[]time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}, "", ""},
		{"ServerErrorsNextRound", []func(http.ResponseWriter){status(500, ""), status(500, ""), status(500, ""), status(500, ""), card}, 5,
			[]time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 500 * time.Millisecond}, "", ""},
		{"SlackSaysRatelimited", []func(http.ResponseWriter){okJSON(`{"ok":false,"error":"ratelimited"}`), card}, 2, []time.Duration{250 * time.Millisecond}, "", ""},
		{"NotInChannel", []func(http.ResponseWriter){okJSON(`{"ok":false,"error":"not_in_channel"}`)}, 1, nil, "not_in_channel", approval.Forbidden},
		{"ChannelNotFound", []func(http.ResponseWriter){okJSON(`{"ok":false,"error":"channel_not_found"}`)}, 1, nil, "channel_not_found", approval.Forbidden},
		{"Archived", []func(http.ResponseWriter){okJSON(`{"ok":false,"error":"is_archived"}`)}, 1, nil, "is_archived", approval.Forbidden},
		{"PermanentErrorNotRetried", []func(http.ResponseWriter){okJSON(`{"ok":false,"error":"invalid_blocks"}`)}, 1, nil, "invalid_blocks", approval.Gone},
		{"TokenRevoked", []func(http.ResponseWriter){okJSON(`{"ok":false,"error":"token_revoked"}`)}, 1, nil, "token_revoked", approval.Gone},
		{"UnknownErrorNotRetried", []func(http.ResponseWriter){okJSON(`{"ok":false,"error":"something_new"}`)}, 1, nil, "something_new", approval.Internal},
		{"ClientErrorNotRetried", []func(http.ResponseWriter){status(404, "")}, 1, nil, "404", approval.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, stub, waits, logs := mustSlack(t, map[string][]func(http.ResponseWriter){"chat.postMessage": tt.script}, SlackConfig{})
			card, err := s.PostCard(t.Context(), &approval.Request{ID: "R-1", Channel: "C1", State: approval.Pending})
			if got := stub.count("chat.postMessage"); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
			if !slices.Equal(*waits, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", *waits, tt.wantWaits)
			}
			if tt.wantErr == "" {
				if err != nil || card.TS != "1.1" || card.Channel != "C1" {
					t.Fatalf("PostCard = %+v, %v", card, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("PostCard error %v, want one mentioning %q", err, tt.wantErr)
			}
			if got := approval.ErrorKind(err); got != tt.wantKind {
				t.Errorf("error kind %s, want %s", got, tt.wantKind)
			}
			if tt.wantKind == approval.Forbidden && approval.ErrorMessage(err) != cantPost {
				t.Errorf("message %q, want %q", approval.ErrorMessage(err), cantPost)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(logs.String(), testToken) {
				t.Error("the token leaked into an error or the log")
			}
		})
	}
}

func TestSlackRetryStopsWithContext(t *testing.T) {
	s, stub, _, _ := mustSlack(t, map[string][]func(http.ResponseWriter){"chat.update": {status(429, "30"), status(200, "")}}, SlackConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	s.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	err := s.UpdateCard(ctx, &approval.Request{ID: "R-1", Card: approval.Card{Channel: "C1", TS: "1.1"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("UpdateCard = %v, want the context's error", err)
	}
	if n := stub.count("chat.update"); n != 1 {
		t.Errorf("chat.update called %d times, want 1", n)
	}
}

func TestSlackMembersCache(t *testing.T) {
	clock := testutil.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	members := okJSON(`{"ok":true,"users":["U1","U2"]}`)
	s, stub, _, _ := mustSlack(t, map[string][]func(http.ResponseWriter){
		"usergroups.users.list": {members, members, status(500, ""), status(500, ""), status(500, ""), status(500, "")},
	}, SlackConfig{Clock: clock, GroupTTL: time.Minute})
	get := func() ([]string, error) { return s.Members(t.Context(), "S1") }

	steps := []struct {
		advance   time.Duration
		wantCalls int
		wantErr   bool
	}{
		{0, 1, false},                // fetched
		{30 * time.Second, 1, false}, // cached
		{31 * time.Second, 2, false}, // expired: fetched again
		{2 * time.Minute, 6, true},   // Slack fails: the old answer is not trusted
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		got, err := get()
		if (err != nil) != st.wantErr {
			t.Fatalf("step %d: Members error %v, want error %v", i, err, st.wantErr)
		}
		if !st.wantErr && !slices.Equal(got, []string{"U1", "U2"}) {
			t.Errorf("step %d: Members = %v", i, got)
		}
		if n := stub.count("usergroups.users.list"); n != st.wantCalls {
			t.Errorf("step %d: %d lookups, want %d", i, n, st.wantCalls)
		}
	}
}

func TestSlackRespond(t *testing.T) {
	var (
		mu   sync.Mutex
		got  []map[string]any
		fail = 1
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/gone" {
			http.Error(w, "used_url", http.StatusNotFound)
			return
		}
		if fail > 0 {
			fail--
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		var m map[string]any
		_ = json.NewDecoder(r.Body).Decode(&m)
		got = append(got, m)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	s, _, waits, logs := mustSlack(t, nil, SlackConfig{HTTPClient: toHooks(t, srv.URL)})

	if err := s.Respond(t.Context(), "https://hooks.slack.com/hooks/secret-part", Ephemeral("hello &amp; welcome")); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0]["response_type"] != "ephemeral" || got[0]["text"] != "hello &amp; welcome" || got[0]["replace_original"] != false {
		t.Errorf("posted %v", got)
	}
	if len(*waits) != 1 {
		t.Errorf("waits %v, want one retry after the 502", *waits)
	}
	err := s.Respond(t.Context(), "https://hooks.slack.com/gone", Ephemeral("late"))
	if err == nil || strings.Contains(err.Error(), "/gone") || strings.Contains(logs.String(), "/gone") {
		t.Errorf("Respond to a used URL = %v; want an error that does not carry the URL", err)
	}
	for _, bad := range []string{"", "ftp://x/y", "::"} {
		if err := s.Respond(t.Context(), bad, Ephemeral("x")); err == nil {
			t.Errorf("Respond(%q) accepted it", bad)
		}
	}
}

// toHooks returns an HTTP client that carries requests for
// hooks.slack.com to the loopback server at base instead, so that Slack's
// own response URLs can be answered without leaving the machine; other
// loopback requests go where they are sent.
func toHooks(t *testing.T, base string) *http.Client {
	t.Helper()
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host != "hooks.slack.com" {
			if !strings.HasPrefix(r.URL.Host, "127.0.0.1:") {
				return nil, fmt.Errorf("test transport: unexpected host %s", r.URL.Host)
			}
			return http.DefaultTransport.RoundTrip(r)
		}
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
		return http.DefaultTransport.RoundTrip(r)
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestRespondOnlyToSlackHosts: a response_url is answered only on
// https://hooks.slack.com/ or on the host of the configured API URL (the
// stand-in); any other is ignored with a log line that carries no part of
// the URL's path.
func TestRespondOnlyToSlackHosts(t *testing.T) {
	var (
		mu   sync.Mutex
		hits []string
	)
	record := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, r.Host+r.URL.Path)
		mu.Unlock()
		io.WriteString(w, "ok")
	}
	hooks := httptest.NewServer(http.HandlerFunc(record))
	t.Cleanup(hooks.Close)
	foreign := httptest.NewServer(http.HandlerFunc(record))
	t.Cleanup(foreign.Close)
	api := httptest.NewServer(http.HandlerFunc(record))
	t.Cleanup(api.Close)
	apiHost := strings.TrimPrefix(api.URL, "http://")
	var logs bytes.Buffer
	s := NewSlack(SlackConfig{Token: testToken, APIURL: api.URL + "/api/", HTTPClient: toHooks(t, hooks.URL),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	s.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }

	tests := []struct {
		name string
		url  string
		sent bool
	}{
		{"SlackHooks", "https://hooks.slack.com/commands/T1/2/secret-hooks", true},
		{"StandIn", api.URL + "/response/secret-standin", true},
		{"ForeignHost", foreign.URL + "/commands/secret-foreign", false},
		{"HooksOverPlainHTTP", "http://hooks.slack.com/commands/secret-plain", false},
		{"LookAlikeHost", "https://hooks.slack.com.example.net/commands/secret-lookalike", false},
		{"StandInOverOtherScheme", "https://" + apiHost + "/response/secret-scheme", false},
		{"Credentials", "https://user:pw@hooks.slack.com/commands/secret-userinfo", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			before := len(hits)
			mu.Unlock()
			err := s.Respond(t.Context(), tt.url, Ephemeral("hi"))
			mu.Lock()
			sent := len(hits) > before
			mu.Unlock()
			if sent != tt.sent || (err == nil) != tt.sent {
				t.Errorf("Respond: sent %v, err %v; want sent %v", sent, err, tt.sent)
			}
			if !tt.sent && !errors.Is(err, errForeignResponseURL) {
				t.Errorf("Respond error %v, want the foreign-host refusal", err)
			}
		})
	}
	if !strings.Contains(logs.String(), "ignored a response_url on a foreign host") {
		t.Errorf("no log line for the ignored response URLs:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "secret-") {
		t.Errorf("a response_url path reached the log:\n%s", logs.String())
	}
}

func TestSlackNetworkErrorRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more
	s := NewSlack(SlackConfig{Token: testToken, APIURL: base + "/api/", Attempts: 3})
	var waits []time.Duration
	s.sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	if err := s.PostEphemeral(t.Context(), "C1", "U1", "hello"); err == nil {
		t.Fatal("PostEphemeral to nowhere succeeded")
	}
	if len(waits) != 2 {
		t.Errorf("waits %v, want 2 retries", waits)
	}
}

// TestNoticeRounds: a report Slack never takes is tried in a bounded
// number of rounds, the pause between rounds growing, and is then left
// owed (Unavailable), not dropped.
func TestNoticeRounds(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more
	s := NewSlack(SlackConfig{Token: testToken, APIURL: base + "/api/", Attempts: 3})
	var waits []time.Duration
	s.sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil }
	err := s.Report(t.Context(), &approval.Request{ID: "R-1", Card: approval.Card{Channel: "C1", TS: "1.1"}}, approval.Report{Kind: approval.ReportStarted})
	if err == nil || approval.ErrorKind(err) != approval.Unavailable {
		t.Fatalf("Report = %v, want an Unavailable error", err)
	}
	var pauses []time.Duration
	for i := 2; i < len(waits); i += 3 {
		pauses = append(pauses, waits[i])
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	if len(waits) != noticeRounds*2+noticeRounds-1 || !slices.Equal(pauses, want) {
		t.Errorf("waits %v: want %d rounds of 3 tries with pauses %v between them", waits, noticeRounds, want)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err    error
		result string
		retry  bool
	}{
		{nil, "ok", false},
		{context.Canceled, "canceled", false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), "timeout", true},
		{&url.Error{Op: "Post", URL: "http://x", Err: errors.New("connection refused")}, "network", true},
		{errors.New("json: bad"), "error", false},
	}
	for _, tt := range tests {
		result, retry, _ := classify(tt.err)
		if result != tt.result || retry != tt.retry {
			t.Errorf("classify(%v) = %s, %v; want %s, %v", tt.err, result, retry, tt.result, tt.retry)
		}
	}
}

// cardMessage is a history answer holding r's card.
func cardMessage(id, ts string) func(http.ResponseWriter) {
	return okJSON(fmt.Sprintf(`{"ok":true,"messages":[{"type":"message","ts":"0.1","metadata":{"event_type":"other","event_payload":{}}},`+
		`{"type":"message","ts":%q,"user":"UBOT","bot_id":"BBOT","metadata":{"event_type":"rebootbot_card","event_payload":{"request_id":%q}}}]}`, ts, id))
}

func TestPostCardAnswerLost(t *testing.T) {
	s, stub, _, _ := mustSlack(t, map[string][]func(http.ResponseWriter){
		"chat.postMessage":      {status(500, "")},
		"conversations.history": {cardMessage("R-7", "9.9")},
	}, SlackConfig{})
	card, err := s.PostCard(t.Context(), &approval.Request{ID: "R-7", Channel: "C1", State: approval.Pending})
	if err != nil || card.TS != "9.9" {
		t.Fatalf("PostCard = %+v, %v; want the card that landed", card, err)
	}
	if n := stub.count("chat.postMessage"); n != 1 {
		t.Errorf("chat.postMessage called %d times, want 1", n)
	}
}

func TestPostCardAfterRestart(t *testing.T) {
	clock := testutil.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s, stub, _, _ := mustSlack(t, map[string][]func(http.ResponseWriter){
		"conversations.history": {cardMessage("R-7", "9.9"), noMessages},
		"chat.postMessage":      {okJSON(`{"ok":true,"channel":"C1","ts":"10.1"}`)},
	}, SlackConfig{Clock: clock})
	old := clock.Now().Add(-time.Minute)
	card, err := s.PostCard(t.Context(), &approval.Request{ID: "R-7", Channel: "C1", State: approval.Pending, CreatedAt: old})
	if err != nil || card.TS != "9.9" {
		t.Fatalf("PostCard = %+v, %v; want the card posted before the restart", card, err)
	}
	card, err = s.PostCard(t.Context(), &approval.Request{ID: "R-8", Channel: "C1", State: approval.Pending, CreatedAt: old})
	if err != nil || card.TS != "10.1" {
		t.Fatalf("PostCard = %+v, %v; want a new card", card, err)
	}
	// A request of this process is posted without looking first.
	clock.Advance(time.Second)
	if _, err := s.PostCard(t.Context(), &approval.Request{ID: "R-9", Channel: "C1", State: approval.Pending, CreatedAt: clock.Now()}); err == nil {
		t.Fatal("PostCard succeeded with nothing left in the script")
	}
	if n := stub.count("conversations.history"); n != 2 {
		t.Errorf("conversations.history called %d times, want 2", n)
	}
}

// TestPostCardLateLooksFirst posts the card of a request this process
// created but that is older than a first post takes, as the leader does
// for a card another replica has not stored yet: it finds the card that
// replica posted instead of posting a second one.
func TestPostCardLateLooksFirst(t *testing.T) {
	clock := testutil.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s, stub, _, _ := mustSlack(t, map[string][]func(http.ResponseWriter){
		"conversations.history": {cardMessage("R-7", "9.9")},
	}, SlackConfig{Clock: clock})
	created := clock.Now().Add(time.Second)
	clock.Advance(time.Second + lateCardAge + time.Millisecond)
	card, err := s.PostCard(t.Context(), &approval.Request{ID: "R-7", Channel: "C1", State: approval.Pending, CreatedAt: created})
	if err != nil || card.TS != "9.9" {
		t.Fatalf("PostCard = %+v, %v; want the card already posted", card, err)
	}
	if n := stub.count("chat.postMessage"); n != 0 {
		t.Errorf("chat.postMessage called %d times, want none", n)
	}
}

func TestReportAfterRestart(t *testing.T) {
	clock := testutil.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	replies := okJSON(`{"ok":true,"messages":[` +
		`{"type":"message","ts":"1.1","text":"card"},` +
		`{"type":"message","ts":"1.2","user":"UBOT","bot_id":"BBOT","metadata":{"event_type":"rebootbot_report","event_payload":{"request_id":"R-7","report":"started"}}},` +
		`{"type":"message","ts":"1.3","user":"UBOT","bot_id":"BBOT","metadata":{"event_type":"rebootbot_report","event_payload":{"request_id":"R-7","report":"instance:ins-00000001"}}},` +
		`{"type":"message","ts":"1.4","user":"UBOT","bot_id":"BBOT","metadata":{"event_type":"rebootbot_report","event_payload":{"request_id":"R-6","report":"instance:ins-00000002"}}}]}`)
	posted := okJSON(`{"ok":true,"channel":"C1","ts":"2.1"}`)
	s, stub, _, _ := mustSlack(t, map[string][]func(http.ResponseWriter){
		"conversations.replies": {replies},
		"chat.postMessage":      {posted, posted},
	}, SlackConfig{Clock: clock})
	r := &approval.Request{ID: "R-7", State: approval.Executing, Card: approval.Card{Channel: "C1", TS: "1.1"}, StartedAt: clock.Now().Add(-time.Minute),
		Runs: []approval.Run{{InstanceID: "ins-00000001", State: approval.RunSucceeded}, {InstanceID: "ins-00000002", State: approval.RunSucceeded}}}
	for _, rep := range []approval.Report{
		{Kind: approval.ReportStarted},
		{Kind: approval.ReportInstance, Run: &r.Runs[0]},
		{Kind: approval.ReportInstance, Run: &r.Runs[1]}, // only R-6 has this one
		{Kind: approval.ReportInstance, Run: &r.Runs[1]}, // known now
		{Kind: approval.ReportFinished},
	} {
		if err := s.Report(t.Context(), r, rep); err != nil {
			t.Fatalf("Report %s: %v", reportKey(rep), err)
		}
	}
	if n := stub.count("conversations.replies"); n != 1 {
		t.Errorf("thread read %d times, want once", n)
	}
	if n := stub.count("chat.postMessage"); n != 2 {
		t.Errorf("%d reports posted, want 2 (ins-00000002 and the summary)", n)
	}
}

func TestHistoryRefused(t *testing.T) {
	clock := testutil.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	posted := okJSON(`{"ok":true,"channel":"C1","ts":"2.1"}`)
	s, stub, _, logs := mustSlack(t, map[string][]func(http.ResponseWriter){
		"conversations.history": {okJSON(`{"ok":false,"error":"missing_scope"}`)},
		"chat.postMessage":      {posted, posted},
	}, SlackConfig{Clock: clock})
	old := clock.Now().Add(-time.Minute)
	for _, id := range []string{"R-1", "R-2"} {
		if _, err := s.PostCard(t.Context(), &approval.Request{ID: id, Channel: "C1", State: approval.Pending, CreatedAt: old}); err != nil {
			t.Fatalf("PostCard %s: %v", id, err)
		}
	}
	if n := stub.count("conversations.history"); n != 1 {
		t.Errorf("history read %d times after Slack refused it, want 1", n)
	}
	if n := strings.Count(logs.String(), "cannot read channel history"); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}
}

func TestMayHaveLanded(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"ServerError", slackStatus(502), true},
		{"RateLimited", &slackRateLimited, false},
		{"ClientError", slackStatus(400), false},
		{"Timeout", context.DeadlineExceeded, true},
		{"Refused", &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, false},
		{"Reset", &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "read", Err: errors.New("connection reset")}}, true},
		{"NotInChannel", slackErr("not_in_channel"), false},
	}
	for _, tt := range tests {
		if got := mayHaveLanded(tt.err); got != tt.want {
			t.Errorf("%s: mayHaveLanded = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestReportHistoryRefused: when the thread cannot be read, every report
// is posted (best effort) and nothing breaks.
func TestReportHistoryRefused(t *testing.T) {
	clock := testutil.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	posted := okJSON(`{"ok":true,"channel":"C1","ts":"2.1"}`)
	s, stub, _, _ := mustSlack(t, map[string][]func(http.ResponseWriter){
		"conversations.replies": {okJSON(`{"ok":false,"error":"missing_scope"}`)},
		"chat.postMessage":      {posted, posted, posted},
	}, SlackConfig{Clock: clock})
	r := &approval.Request{ID: "R-7", State: approval.Executing, Card: approval.Card{Channel: "C1", TS: "1.1"}, StartedAt: clock.Now().Add(-time.Minute),
		Runs: []approval.Run{{InstanceID: "ins-00000001", State: approval.RunSucceeded}}}
	for _, rep := range []approval.Report{{Kind: approval.ReportStarted}, {Kind: approval.ReportInstance, Run: &r.Runs[0]}, {Kind: approval.ReportFinished}} {
		if err := s.Report(t.Context(), r, rep); err != nil {
			t.Fatalf("Report %s: %v", reportKey(rep), err)
		}
	}
	if n := stub.count("chat.postMessage"); n != 3 {
		t.Errorf("%d reports posted, want 3", n)
	}
}

// TestSlackKeepsConnections sends a burst of calls, twenty at a time, as
// a burst of clicks does, and checks that the client reuses its
// connections rather than opening one for almost every call.
func TestSlackKeepsConnections(t *testing.T) {
	stub := &scriptedSlack{answers: map[string][]func(http.ResponseWriter){}}
	srv := httptest.NewUnstartedServer(stub)
	var opened atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	ok := okJSON(`{"ok":true}`)
	const workers, each = 20, 10
	for range workers * each {
		stub.answers["chat.postEphemeral"] = append(stub.answers["chat.postEphemeral"], ok)
	}
	s := NewSlack(SlackConfig{Token: testToken, APIURL: srv.URL + "/api/"})
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				errs <- s.PostEphemeral(t.Context(), "C0CHAN", "U0USER", "hello")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("post: %v", err)
		}
	}
	// A call that finds no idle connection dials one, and uses whichever
	// comes first, the new one or one freed meanwhile; so a few more
	// connections than calls at a time may open, never one per call.
	if n, most := opened.Load(), 2*workers; n > int64(most) {
		t.Errorf("%d calls, %d at a time, opened %d connections; want at most %d", workers*each, workers, n, most)
	}
}
