package cloud

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
	"rebootbot/internal/testutil"
)

// callLog records what OnCall reports.
type callLog struct {
	mu    sync.Mutex
	calls []string // "Action:code"
}

func (l *callLog) record(action, code string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, action+":"+code)
}

func (l *callLog) of(action string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, c := range l.calls {
		if len(c) > len(action) && c[:len(action)+1] == action+":" {
			out = append(out, c[len(action)+1:])
		}
	}
	return out
}

// rig is an adapter wired to its own emulator.
type rig struct {
	emu   *emulator.Emulator
	url   string
	cvm   *CVM
	log   *testutil.SyncBuffer
	calls *callLog
	// emuCalls are the calls the emulator answered, in order.
	emuMu    sync.Mutex
	emuCalls []emulator.Call
}

// testConfig is a Config for tests: fast backoff, its own limiters, logs
// and OnCall recorded.
func (r *rig) testConfig(endpoint string) Config {
	return Config{
		SecretID:        emulatortest.SecretID,
		SecretKey:       emulatortest.SecretKey,
		Endpoint:        endpoint,
		MaxAttempts:     6,
		BaseDelay:       time.Millisecond,
		MaxDelay:        5 * time.Millisecond,
		Limiter:         NewLimiter(RebootCallsPerSecond),
		DescribeLimiter: NewLimiter(DescribeCallsPerSecond),
		Logger:          slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnCall:          r.calls.record,
		RequestTimeout:  5 * time.Second,
	}
}

// mustRig starts an emulator with ins and an adapter for it; mod adjusts
// the adapter's Config.
func mustRig(t *testing.T, ecfg emulator.Config, mod func(*Config), ins ...emulator.Instance) *rig {
	t.Helper()
	r := &rig{log: &testutil.SyncBuffer{}, calls: &callLog{}}
	if ecfg.RebootDuration == 0 {
		ecfg.RebootDuration = 100 * time.Millisecond
	}
	user := ecfg.OnCall
	ecfg.OnCall = func(c emulator.Call) {
		r.emuMu.Lock()
		r.emuCalls = append(r.emuCalls, c)
		r.emuMu.Unlock()
		if user != nil {
			user(c)
		}
	}
	r.emu, r.url = emulatortest.Start(t, ecfg, ins...)
	cfg := r.testConfig(r.url)
	if mod != nil {
		mod(&cfg)
	}
	r.cvm = mustNew(t, cfg)
	return r
}

func mustNew(t *testing.T, cfg Config) *CVM {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// answered returns the emulator's answered calls of action.
func (r *rig) answered(action string) []emulator.Call {
	r.emuMu.Lock()
	defer r.emuMu.Unlock()
	var out []emulator.Call
	for _, c := range r.emuCalls {
		if c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// status returns the emulator's view of id.
func (r *rig) status(t *testing.T, id string) emulator.Status {
	t.Helper()
	s, ok := r.emu.Status(id)
	if !ok {
		t.Fatalf("emulator has no instance %s", id)
	}
	return s
}

// running returns n RUNNING instances in ap-guangzhou named ins-0000000N.
func running(n int) []emulator.Instance {
	out := make([]emulator.Instance, n)
	for i := range out {
		out[i] = emulator.Instance{ID: fmt.Sprintf("ins-%08d", i+1), Zone: "ap-guangzhou-3"}
	}
	return out
}

func idsOf(ins []emulator.Instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.ID
	}
	return out
}

// mustReboot reboots ids and fails the test on a call-level error.
func mustReboot(t *testing.T, c *CVM, ids []string, stop approval.StopType) []approval.RebootResult {
	t.Helper()
	res, err := c.Reboot(t.Context(), "", ids, stop)
	if err != nil {
		t.Fatalf("Reboot: %v", err)
	}
	if len(res) != len(ids) {
		t.Fatalf("Reboot returned %d results for %d IDs", len(res), len(ids))
	}
	return res
}

// proxy is an httptest server in front of the emulator; intercept may
// answer a request itself (returning true) instead of forwarding it.
type proxy struct {
	srv       *httptest.Server
	mu        sync.Mutex
	intercept func(w http.ResponseWriter, r *http.Request) bool
	headers   []http.Header // of every request, in order
}

func mustProxy(t *testing.T, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.headers = append(p.headers, r.Header.Clone())
		intercept := p.intercept
		p.mu.Unlock()
		if intercept != nil && intercept(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *proxy) setIntercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intercept = f
}

// requests returns the headers of the requests for action.
func (p *proxy) requests(action string) []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []http.Header
	for _, h := range p.headers {
		if h.Get("X-TC-Action") == action {
			out = append(out, h)
		}
	}
	return out
}
