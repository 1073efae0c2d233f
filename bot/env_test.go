package bot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/cloud"
	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
	"rebootbot/internal/testutil"
	"rebootbot/metrics"
	"rebootbot/store"
)

const (
	signingSecret = "test-signing-secret-0001"
	requester     = "U0REQUESTER"
	approverA     = "U0APPROVERA"
	approverB     = "U0APPROVERB"
	sreMember     = "U0SREMEMBER"
	outsider      = "U0OUTSIDER"
	sreGroup      = "S0SREGROUP"
	channel       = "C0OPS"
)

// waitLong bounds every wait for the bot's background work: generous,
// because the machine may be busy with other tests.
const waitLong = 20 * time.Second

// Seeded instances.
const (
	web1     = "ins-web00001"
	web2     = "ins-web00002"
	web3     = "ins-web00003"
	stopped  = "ins-stopped1"
	denied   = "ins-deny0001"
	evil     = "ins-evil0001"
	shanghai = "ins-sh000001"
)

func seed() []emulator.Instance {
	return []emulator.Instance{
		{ID: web1, Name: "web-1", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.0.1"}},
		{ID: web2, Name: "web-2", Zone: "ap-guangzhou-4", PrivateIPs: []string{"10.0.0.2"}},
		{ID: web3, Name: "web-3", Zone: "ap-guangzhou-4", PrivateIPs: []string{"10.0.0.3"}},
		{ID: stopped, Name: "batch", Zone: "ap-guangzhou-3", State: emulator.StateStopped, PrivateIPs: []string{"10.0.0.4"}},
		{ID: denied, Name: "ledger-db", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.0.5"}, Tags: map[string]string{"reboot": "deny"}},
		{ID: evil, Name: "<!everyone> & `tick` <@U0ATTACKER>", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.0.6"}},
		{ID: shanghai, Name: "sh-1", Zone: "ap-shanghai-2", PrivateIPs: []string{"10.1.0.1"}},
	}
}

func defaultPolicy() *approval.Policy {
	return &approval.Policy{
		Approvers:        []string{approverA, approverB, sreGroup},
		MinApprovals:     1,
		HardMinApprovals: 2,
		RequestTTL:       30 * time.Minute,
		MaxInstances:     100,
		Regions:          []string{"ap-guangzhou", "ap-shanghai"},
		DefaultRegion:    "ap-guangzhou",
		Rules:            []approval.Rule{{Tags: map[string]string{"reboot": "deny"}, Deny: true}},
	}
}

// env is the whole bot on loopback: the real handler behind an HTTP
// server, the real engine and store, the real cloud adapter against the
// CVM emulator, and a stand-in for Slack's Web API.
type env struct {
	t       *testing.T
	stub    *slackStub
	emu     *emulator.Emulator
	db      *store.DB
	engine  *approval.Engine
	slack   *bot.Slack
	handler *bot.Handler
	srv     *httptest.Server
	clock   *testutil.FakeClock
	metrics *metrics.Metrics
	logs    *testutil.SyncBuffer

	mu       sync.Mutex
	triggers int
}

// pollInterval is how often the test bot checks on a running reboot.
const pollInterval = 10 * time.Millisecond

type envConfig struct {
	policy *approval.Policy
	emu    emulator.Config
	hold   *cloudHold // nil: the bot talks to the emulator directly
	stub   *slackStub // nil: a new one; set: Slack as another env left it
	// store wraps the bbolt store the engine uses (nil: used as it is).
	store func(approval.Store) approval.Store
}

// cloudHold stands between the bot and the emulator and keeps the calls of
// one action waiting until the test lets them through (or waitLong has
// passed): a cloud as slow as the test needs, without waiting out a real
// delay.
type cloudHold struct {
	action  string
	arrived chan struct{} // closed when the first call of action arrives
	release chan struct{} // closed by the test to let the calls through
	once    sync.Once
}

func newCloudHold(action string) *cloudHold {
	return &cloudHold{action: action, arrived: make(chan struct{}), release: make(chan struct{})}
}

// front serves endpoint's API through the hold; the TC3 signature still
// checks because the Host header is passed on as the client signed it.
func (h *cloudHold) front(t *testing.T, endpoint string) string {
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-TC-Action") == h.action {
			h.once.Do(func() { close(h.arrived) })
			// Bounded, so that a bot that waits for the lookup before
			// answering fails the test instead of hanging it.
			select {
			case <-h.release:
			case <-time.After(waitLong):
			case <-r.Context().Done():
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(h.open) // before srv.Close, so that no call stays held
	return srv.URL
}

// open lets the held calls, and all later ones, through.
func (h *cloudHold) open() {
	select {
	case <-h.release:
	default:
		close(h.release)
	}
}

// mustEnv starts the whole bot for the test, torn down by t.Cleanup; cfgs
// adjust the policy, the emulator or the Slack client.
func mustEnv(t *testing.T, cfgs ...func(*envConfig)) *env {
	t.Helper()
	cfg := envConfig{policy: defaultPolicy(), emu: emulator.Config{RebootDuration: 50 * time.Millisecond, CallsPerSecond: -1}}
	for _, f := range cfgs {
		f(&cfg)
	}
	e := &env{t: t, stub: cfg.stub, clock: testutil.NewFakeClock(time.Now().UTC()), metrics: metrics.New(metrics.Options{CloudCodes: cloud.KnownCode}), logs: &testutil.SyncBuffer{}}
	if e.stub == nil {
		e.stub = mustSlackStub(t)
	}
	e.stub.SetGroup(sreGroup, sreMember)
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	var endpoint string
	e.emu, endpoint = emulatortest.Start(t, cfg.emu, seed()...)
	if cfg.hold != nil {
		endpoint = cfg.hold.front(t, endpoint)
	}
	cvm, err := cloud.New(cloud.Config{
		SecretID: emulatortest.SecretID, SecretKey: emulatortest.SecretKey, Endpoint: endpoint,
		DefaultRegion: "ap-guangzhou", BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond,
		Limiter: cloud.NewLimiter(10), DescribeLimiter: cloud.NewLimiter(40),
		OnCall: e.metrics.CloudCall, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.db, err = store.Open(filepath.Join(t.TempDir(), "rebootbot.db"), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.db.Close() })

	e.slack = bot.NewSlack(bot.SlackConfig{
		Token: stubToken, APIURL: e.stub.APIURL(), Logger: logger, Metrics: e.metrics,
		Clock: e.clock, Backoff: 10 * time.Millisecond,
	})
	var st approval.Store = e.db
	if cfg.store != nil {
		st = cfg.store(e.db)
	}
	e.engine, err = approval.NewEngine(approval.Config{
		Store: st, Cloud: cvm, Rebooter: cloud.NewDispatcher(cvm), Notifier: e.slack, Groups: e.slack, Policy: cfg.policy,
		Clock: e.clock, Logger: logger, PollInterval: pollInterval, RebootTimeout: 10 * time.Second,
		Observer: e.metrics.ObserveEvent,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.engine.Close(ctx); err != nil {
			t.Errorf("closing the engine: %v", err)
		}
	})
	e.handler = bot.NewHandler(bot.HandlerConfig{
		Engine: e.engine, Slack: e.slack, SigningSecret: signingSecret, Logger: logger,
		Metrics: e.metrics, Health: e.db.Check,
	})
	mux := http.NewServeMux() // as cmd/bot serves them
	mux.Handle("/metrics", e.metrics.Handler())
	mux.Handle("/", e.handler)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.handler.Close(ctx); err != nil {
			t.Errorf("closing the handler: %v", err)
		}
	})
	t.Cleanup(func() {
		// Runs last: nothing may have logged a secret.
		logs := e.logs.String()
		for _, secret := range []string{stubToken, signingSecret, emulatortest.SecretKey} {
			if strings.Contains(logs, secret) {
				t.Errorf("a secret appeared in the logs")
			}
		}
		if t.Failed() {
			t.Logf("bot log:\n%s", logs)
		}
	})
	return e
}

func (e *env) trigger() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.triggers++
	return fmt.Sprintf("%d.4744562912.trigger%04d", 1000+e.triggers, e.triggers)
}

// signedRequest builds a request to path signed like Slack signs.
func signedRequest(t testing.TB, base, path, body string, at time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(bot.HeaderTimestamp, ts)
	req.Header.Set(bot.HeaderSignature, bot.Sign(signingSecret, ts, []byte(body)))
	return req
}

// reply is the bot's HTTP answer to a delivery.
type reply struct {
	Status int
	Body   map[string]any
	Raw    string
}

func (r reply) text() string {
	s, _ := r.Body["text"].(string)
	return s
}

func do(t testing.TB, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := reply{Status: resp.StatusCode, Raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			t.Fatalf("answer is not JSON: %v", err)
		}
	}
	return out
}

// command types /reboot text as user in ch; it returns the answer and the
// command's response_url.
func (e *env) command(user, ch, text string) (reply, string) {
	e.t.Helper()
	return e.commandWithTrigger(user, ch, text, e.trigger())
}

func (e *env) commandWithTrigger(user, ch, text, trigger string) (reply, string) {
	e.t.Helper()
	responseURL := e.stub.ResponseURL()
	form := url.Values{
		"token": {"legacy"}, "team_id": {"T0TEAM"}, "team_domain": {"example"}, "channel_id": {ch},
		"channel_name": {"ops"}, "user_id": {user}, "user_name": {strings.ToLower(user)}, "command": {"/reboot"},
		"text": {text}, "response_url": {responseURL}, "trigger_id": {trigger}, "api_app_id": {"A0APP"},
	}
	return do(e.t, signedRequest(e.t, e.srv.URL, "/slack/commands", form.Encode(), time.Now())), responseURL
}

// click presses action on request id's card as user; it returns the
// answer and the click's response_url.
func (e *env) click(user, action, id string) (reply, string) {
	e.t.Helper()
	return e.clickWithTrigger(user, action, id, e.trigger())
}

func (e *env) clickWithTrigger(user, action, id, trigger string) (reply, string) {
	e.t.Helper()
	ts := tsOf(1)
	if e.engine != nil { // nil with a fake engine, which checks no card
		if r, err := e.engine.Get(context.Background(), id); err == nil && r.Card.TS != "" {
			ts = r.Card.TS
		}
	}
	return e.clickOn(user, action, id, trigger, ts)
}

// clickOn presses action with value id on the message ts of the channel.
func (e *env) clickOn(user, action, id, trigger, ts string) (reply, string) {
	e.t.Helper()
	responseURL := e.stub.ResponseURL()
	payload := map[string]any{
		"type": "block_actions", "trigger_id": trigger, "response_url": responseURL, "api_app_id": "A0APP",
		"user":      map[string]any{"id": user, "username": strings.ToLower(user), "team_id": "T0TEAM"},
		"team":      map[string]any{"id": "T0TEAM"},
		"container": map[string]any{"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
		"channel":   map[string]any{"id": channel, "name": "ops"},
		"actions": []any{map[string]any{
			"action_id": action, "block_id": "decide:" + id, "type": "button", "value": id, "action_ts": "1700000001.000100",
		}},
	}
	return e.interact(payload), responseURL
}

func (e *env) interact(payload map[string]any) reply {
	e.t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		e.t.Fatal(err)
	}
	body := url.Values{"payload": {string(raw)}}.Encode()
	return do(e.t, signedRequest(e.t, e.srv.URL, "/slack/interactions", body, time.Now()))
}

// responseText waits for the n-th (1-based) message to responseURL and
// returns its text.
func (e *env) responseText(responseURL string, n int) string {
	e.t.Helper()
	testutil.Eventually(e.t, waitLong, func() bool { return len(e.stub.responsesTo(responseURL)) >= n }, "message %d to the response_url", n)
	return e.stub.responsesTo(responseURL)[n-1].Text()
}

// request returns request id as stored.
func (e *env) request(id string) *approval.Request {
	e.t.Helper()
	r, err := e.engine.Get(context.Background(), id)
	if err != nil {
		e.t.Fatalf("get %s: %v", id, err)
	}
	return r
}

// waitState waits until request id reaches state.
func (e *env) waitState(id string, state approval.State) *approval.Request {
	e.t.Helper()
	return e.waitStateWithin(id, state, waitLong)
}

// waitStateWithin is waitState with its own deadline, for requests whose
// size makes waitLong too short (the race detector slows each of their
// thousands of store and cloud steps several times over).
func (e *env) waitStateWithin(id string, state approval.State, d time.Duration) *approval.Request {
	e.t.Helper()
	var r *approval.Request
	testutil.Eventually(e.t, d, func() bool {
		r = e.request(id)
		return r.State == state
	}, "%s to be %s", id, state)
	return r
}

// waitCard waits until request id's card shows text and returns the card's
// blocks JSON.
func (e *env) waitCard(id, text string) string {
	e.t.Helper()
	var blocks string
	testutil.Eventually(e.t, waitLong, func() bool {
		r := e.request(id)
		m, ok := e.stub.message(r.Card.TS)
		blocks = m.Blocks
		return ok && r.Card.TS != "" && strings.Contains(blocks, text)
	}, "%s's card to show %q", id, text)
	return blocks
}

// events returns the audit events of request id, oldest first.
func (e *env) events(q approval.AuditQuery) []approval.Event {
	e.t.Helper()
	q.Oldest = true
	evs, err := e.engine.Audit(context.Background(), q)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func eventTypes(evs []approval.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, string(ev.Type))
	}
	return out
}

// create files a request and waits until its card is posted.
func (e *env) create(user, text string) *approval.Request {
	e.t.Helper()
	ans, responseURL := e.command(user, channel, text)
	if ans.Status != http.StatusOK {
		e.t.Fatalf("command answered %d", ans.Status)
	}
	msg := e.responseText(responseURL, 1)
	id, _, ok := strings.Cut(msg, " ")
	if !ok || !strings.HasPrefix(id, "R-") {
		e.t.Fatalf("create answered %q", msg)
	}
	e.waitCard(id, `"action_id":"approve"`)
	return e.request(id)
}
