package bot_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/internal/testutil"
)

// fakeEngine answers like the engine; calls block while its gate is
// closed, so tests can hold the engine in the middle of a call.
type fakeEngine struct {
	gate    chan struct{}  // closed: calls proceed
	lull    chan struct{}  // closed: work given to AfterLull runs
	entered chan string    // receives the method name as each call starts
	later   sync.WaitGroup // work given to AfterLull, as the engine's Close waits for it

	mu      sync.Mutex
	creates []approval.CreateInput
}

func newFakeEngine() *fakeEngine {
	f := &fakeEngine{gate: make(chan struct{}), lull: make(chan struct{}), entered: make(chan string, 16)}
	close(f.gate)
	close(f.lull)
	return f
}

// holdLull makes work given to AfterLull wait until the returned release
// is called.
func (f *fakeEngine) holdLull() (release func()) { return f.shut(&f.lull) }

// hold makes the next calls wait until the returned release is called.
func (f *fakeEngine) hold() (release func()) { return f.shut(&f.gate) }

// shut puts a closed gate in *g and returns what opens it (see pass).
func (f *fakeEngine) shut(g *chan struct{}) (open func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	*g = gate
	f.mu.Unlock()
	return func() { close(gate) }
}

func (f *fakeEngine) wait(ctx context.Context, method string) error {
	select {
	case f.entered <- method:
	default: // nobody is watching
	}
	if !f.pass(ctx, &f.gate) {
		return ctx.Err()
	}
	return nil
}

// pass waits until the gate *g holds is closed; it reports false when
// ctx ends first.
func (f *fakeEngine) pass(ctx context.Context, g *chan struct{}) bool {
	f.mu.Lock()
	gate := *g
	f.mu.Unlock()
	select {
	case <-gate:
		return true
	case <-ctx.Done():
		return false
	}
}

func (f *fakeEngine) Create(ctx context.Context, in approval.CreateInput) (*approval.Request, error) {
	if err := f.wait(ctx, "Create"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.creates = append(f.creates, in)
	f.mu.Unlock()
	return &approval.Request{ID: "R-1", Required: 1, Card: approval.Card{Channel: in.Channel, TS: "1.1"}}, nil
}

func (f *fakeEngine) RejectCommand(ctx context.Context, in approval.CreateInput, cause error) error {
	return cause
}

func (f *fakeEngine) Approve(ctx context.Context, key, id, user string, from approval.Card) (approval.Result, error) {
	if err := f.wait(ctx, "Approve"); err != nil {
		return approval.Result{}, err
	}
	return approval.Result{Message: "You approved " + id + "."}, nil
}

func (f *fakeEngine) Deny(ctx context.Context, key, id, user string, from approval.Card) (approval.Result, error) {
	return approval.Result{}, approval.Errorf(approval.Forbidden, "Only an approver of %s can deny it.", id)
}

func (f *fakeEngine) Cancel(ctx context.Context, key, id, user string) (approval.Result, error) {
	return approval.Result{Message: "You cancelled " + id + "."}, nil
}

func (f *fakeEngine) Stop(ctx context.Context, key, id, user string, from *approval.Card) (approval.Result, error) {
	return approval.Result{Message: "You stopped " + id + "."}, nil
}

func (f *fakeEngine) Get(ctx context.Context, id string) (*approval.Request, error) {
	if err := f.wait(ctx, "Get"); err != nil {
		return nil, err
	}
	return &approval.Request{ID: id, State: approval.Pending, Region: "ap-guangzhou", StopType: approval.Soft, Requester: requester, Reason: "r"}, nil
}

func (f *fakeEngine) Pending(ctx context.Context) ([]*approval.Request, error) { return nil, nil }

func (f *fakeEngine) Audit(ctx context.Context, q approval.AuditQuery) ([]approval.Event, error) {
	return nil, nil
}

func (f *fakeEngine) MayView(ctx context.Context, user, channel string) error    { return nil }
func (f *fakeEngine) MayRequest(ctx context.Context, user, channel string) error { return nil }
func (f *fakeEngine) Policy() *approval.Policy                                   { return defaultPolicy() }

func (f *fakeEngine) AfterLull(fn func(ctx context.Context)) bool {
	f.later.Go(func() {
		ctx := context.Background()
		if f.pass(ctx, &f.lull) {
			fn(ctx)
		}
	})
	return true
}

type fakeEnv struct {
	*env
	fake *fakeEngine
}

// mustFakeEnv serves the real handler in front of a fake engine.
func mustFakeEnv(t *testing.T, budget time.Duration) *fakeEnv {
	fake := newFakeEngine()
	e := &env{t: t, stub: mustSlackStub(t), logs: &testutil.SyncBuffer{}}
	e.slack = bot.NewSlack(bot.SlackConfig{Token: stubToken, APIURL: e.stub.APIURL()})
	e.handler = bot.NewHandler(bot.HandlerConfig{Engine: fake, Slack: e.slack, SigningSecret: signingSecret, AckBudget: budget})
	e.srv = httptest.NewServer(e.handler)
	t.Cleanup(func() {
		e.srv.Close()
		e.handler.Close(context.Background())
	})
	return &fakeEnv{env: e, fake: fake}
}

// TestNoSigningSecret: without a signing secret (Socket Mode) the HTTP
// endpoints accept nothing, not even requests signed with an empty key.
func TestNoSigningSecret(t *testing.T) {
	e := mustFakeEnv(t, time.Second)
	h := bot.NewHandler(bot.HandlerConfig{Engine: e.fake, Slack: e.slack})
	defer h.Close(context.Background())
	srv := httptest.NewServer(h)
	defer srv.Close()
	body := "user_id=" + requester + "&channel_id=" + channel + "&text=help"
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/slack/commands", strings.NewReader(body))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set(bot.HeaderTimestamp, ts)
	req.Header.Set(bot.HeaderSignature, bot.Sign("", ts, []byte(body)))
	if got := do(t, req).Status; got != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", got)
	}
}

// TestSlowLookupAnsweredLater: a status lookup slower than the ack budget
// is acknowledged empty and answered through response_url when done.
func TestSlowLookupAnsweredLater(t *testing.T) {
	e := mustFakeEnv(t, time.Millisecond)
	release := e.fake.hold()
	ans, responseURL := e.command(requester, channel, "status R-3")
	if ans.Status != http.StatusOK || ans.Raw != "" {
		t.Fatalf("slow status answered %d %q, want an empty acknowledgement", ans.Status, ans.Raw)
	}
	if n := len(e.stub.responsesTo(responseURL)); n != 0 {
		t.Fatalf("answered through response_url before the engine returned")
	}
	release()
	if got := e.responseText(responseURL, 1); !strings.Contains(got, "Reboot request R-3") {
		t.Errorf("late answer %q", got)
	}
}

// TestClickAckedAfterStore: a click is acknowledged only once the engine
// returned (it returns after storing the effect).
func TestClickAckedAfterStore(t *testing.T) {
	e := mustFakeEnv(t, time.Second)
	release := e.fake.hold()
	answered := make(chan reply, 1)
	go func() {
		ans, _ := e.click(approverA, "approve", "R-1")
		answered <- ans
	}()
	if got := <-e.fake.entered; got != "Approve" {
		t.Fatalf("engine got %s", got)
	}
	select {
	case <-answered:
		t.Fatal("the click was acknowledged before the engine returned")
	default:
	}
	release()
	if ans := <-answered; ans.Status != http.StatusOK {
		t.Fatalf("click answered %d", ans.Status)
	}
}

// TestClickAnswerWaitsForALull: the clicker's ephemeral answer is sent
// once the engine says commands and clicks let it, not while they are
// being answered; the click itself is acknowledged at once.
func TestClickAnswerWaitsForALull(t *testing.T) {
	e := mustFakeEnv(t, time.Second)
	release := e.fake.holdLull()
	ans, responseURL := e.click(approverA, "approve", "R-1")
	if ans.Status != http.StatusOK {
		t.Fatalf("click answered %d", ans.Status)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(e.stub.responsesTo(responseURL)); n != 0 {
		t.Fatal("the answer was sent before the lull")
	}
	release()
	if got := e.responseText(responseURL, 1); got != "You approved R-1." {
		t.Errorf("clicker was told %q", got)
	}
}

// TestRefusalFromEngine: an engine refusal reaches the clicker as its
// message, ephemerally.
func TestRefusalFromEngine(t *testing.T) {
	e := mustFakeEnv(t, time.Second)
	_, responseURL := e.click(outsider, "deny", "R-1")
	if got := e.responseText(responseURL, 1); got != "Only an approver of R-1 can deny it." {
		t.Errorf("clicker was told %q", got)
	}
}

// TestCloseDrains: Close waits for background work, whose answers go to
// the engine (sent before the engine closes), and afterwards new work is
// refused politely.
func TestCloseDrains(t *testing.T) {
	e := mustFakeEnv(t, time.Second)
	release := e.fake.hold()
	ans, responseURL := e.command(requester, channel, "ins-web00001 hung")
	if !strings.HasPrefix(ans.text(), "Checking") {
		t.Fatalf("command answered %q", ans.Raw)
	}
	<-e.fake.entered
	closed := make(chan error, 1)
	go func() { closed <- e.handler.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a request was being created", err)
	default:
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v", err)
	}
	e.fake.later.Wait()
	if n := len(e.stub.responsesTo(responseURL)); n != 1 {
		t.Errorf("%d answers to the requester, want the one handed to the engine before Close returned", n)
	}
	ans, _ = e.command(requester, channel, "ins-web00001 again")
	if !strings.Contains(ans.text(), "restarting") {
		t.Errorf("command after Close answered %q", ans.Raw)
	}
}

// TestCloseGivesUp: Close with an expired context cancels what runs.
func TestCloseGivesUp(t *testing.T) {
	e := mustFakeEnv(t, time.Second)
	e.fake.hold() // never released: only cancellation ends the call
	e.command(requester, channel, "ins-web00001 hung")
	<-e.fake.entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.handler.Close(ctx); err != context.Canceled {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
}

// BenchmarkAckHelp measures the answer to a signed /reboot help, from
// verification to the written response.
func BenchmarkAckHelp(b *testing.B) {
	h := bot.NewHandler(bot.HandlerConfig{Engine: newFakeEngine(), Slack: bot.NewSlack(bot.SlackConfig{Token: stubToken}), SigningSecret: signingSecret})
	defer h.Close(context.Background())
	body := "team_id=T1&channel_id=" + channel + "&user_id=" + requester + "&command=%2Freboot&text=help&trigger_id=1.2.3"
	for b.Loop() {
		req := signedRequest(b, "http://bot", "/slack/commands", body, time.Now())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkAckStatus measures a status lookup answered within the ack.
func BenchmarkAckStatus(b *testing.B) {
	h := bot.NewHandler(bot.HandlerConfig{Engine: newFakeEngine(), Slack: bot.NewSlack(bot.SlackConfig{Token: stubToken}), SigningSecret: signingSecret})
	defer h.Close(context.Background())
	body := "team_id=T1&channel_id=" + channel + "&user_id=" + requester + "&command=%2Freboot&text=status+R-1&trigger_id=1.2.3"
	for b.Loop() {
		req := signedRequest(b, "http://bot", "/slack/commands", body, time.Now())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.Len() == 0 {
			b.Fatalf("status %d, %d bytes", rec.Code, rec.Body.Len())
		}
	}
}
