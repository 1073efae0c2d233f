//go:build e2e

// The harness runs the real bot binary as a separate process against a CVM
// emulator and a Slack stand-in served by the test process on 127.0.0.1,
// drives it with signed slash commands and clicks the way Slack does, kills
// and restarts it on the same database, and reads the outcome back from
// Slack's messages, the emulator's counters, the audit CLI and the store.
// This file holds the processes: building the bot, the world around it,
// starting, killing and stopping it.

package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

// harnessParallel is how many tests run at once unless -parallel says
// otherwise: the harness's tests spend their time waiting on the bot's
// process, the emulator and the Slack stand-in, not on the CPU.
const harnessParallel = 8

func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", strconv.Itoa(harnessParallel))
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// raceBuild reports whether this test binary runs with the race detector;
// the bot is then built with it too, so that its races fail the tests.
func raceBuild() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// mustBotBinary builds ./cmd/bot once per test process and returns the
// binary's path.
func mustBotBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		// go test puts its own GOROOT/bin first on PATH.
		goTool, err := exec.LookPath("go")
		if err != nil && os.Getenv("GOROOT") != "" {
			goTool, err = filepath.Join(os.Getenv("GOROOT"), "bin", "go"), nil
		}
		if err != nil {
			buildErr = fmt.Errorf("the go command is not on PATH: %w", err)
			return
		}
		if buildDir, err = os.MkdirTemp("", "rebootbot-harness-"); err != nil {
			buildErr = err
			return
		}
		args := []string{"build", "-o", filepath.Join(buildDir, "bot")}
		if raceBuild() {
			args = append(args, "-race")
		}
		cmd := exec.Command(goTool, append(args, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/bot: %v\n%s", err, out)
			return
		}
		buildPath = filepath.Join(buildDir, "bot")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// worldConfig sets up a world.
type worldConfig struct {
	Instances      []emulator.Instance
	RebootDuration time.Duration     // 0: 500ms
	Env            map[string]string // added to or replacing the bot's environment
	Seed           int64             // of the emulator's fault injection
}

// world is everything outside the bot: the CVM emulator, the Slack
// stand-in, the database and the people who type and click.
type world struct {
	t       testing.TB
	bin     string
	emu     *emulator.Emulator
	stub    *slackstub.Server
	dir     string
	db      string
	logPath string
	env     map[string]string
	secret  string   // the signing secret
	secrets []string // what must never show in the bot's log

	emuHook  atomic.Pointer[func(emulator.Call)]
	stubHook atomic.Pointer[func(slackstub.Call)]
	trigger  atomic.Int64
	client   *http.Client

	mu     sync.Mutex
	bot    *botProcess // the current process, running or not
	starts int
}

// newWorld starts the emulator and the Slack stand-in; start runs the bot.
func newWorld(t testing.TB, cfg worldConfig) *world {
	t.Helper()
	w := &world{t: t, bin: mustBotBinary(t), dir: t.TempDir(), client: &http.Client{Timeout: waitLong}}
	w.db = filepath.Join(w.dir, "bot.db")
	w.logPath = filepath.Join(w.dir, "bot.log")
	if cfg.RebootDuration == 0 {
		cfg.RebootDuration = 500 * time.Millisecond
	}
	secretID, secretKey := "AKIDharness"+randomHex(8), randomHex(16)
	var emuURL string
	w.emu, emuURL = emulatortest.Start(t, emulator.Config{
		SecretID: secretID, SecretKey: secretKey, RebootDuration: cfg.RebootDuration, Seed: cfg.Seed,
		OnCall: func(c emulator.Call) {
			if h := w.emuHook.Load(); h != nil {
				(*h)(c)
			}
		},
	}, cfg.Instances...)
	w.stub = slackstub.New()
	w.stub.OnCall = func(c slackstub.Call) {
		if h := w.stubHook.Load(); h != nil {
			(*h)(c)
		}
	}
	stubSrv := httptest.NewServer(w.stub)
	t.Cleanup(stubSrv.Close)
	w.stub.URL = stubSrv.URL

	w.secret = randomHex(16)
	token := "xoxb-harness-" + randomHex(8)
	w.secrets = []string{w.secret, token, secretKey}
	w.env = map[string]string{
		"SLACK_BOT_TOKEN": token, "SLACK_SIGNING_SECRET": w.secret, "SLACK_API_URL": stubSrv.URL + "/api/",
		"BOT_LISTEN_ADDR": "127.0.0.1:0", "BOT_DB": w.db,
		"BOT_APPROVERS":     strings.Join([]string{approver1, approver2, approver3}, ","),
		"BOT_POLL_INTERVAL": "100ms", "BOT_REBOOT_TIMEOUT": "30s",
		"TENCENTCLOUD_SECRET_ID": secretID, "TENCENTCLOUD_SECRET_KEY": secretKey, "TENCENTCLOUD_ENDPOINT": emuURL,
		"HOME": w.dir,
	}
	for k, v := range cfg.Env {
		w.env[k] = v
	}
	t.Cleanup(w.cleanup)
	return w
}

// onEmulator sets the hook called after each emulator call (nil: none).
func (w *world) onEmulator(fn func(emulator.Call)) {
	if fn == nil {
		w.emuHook.Store(nil)
		return
	}
	w.emuHook.Store(&fn)
}

// onSlack sets the hook called for each Slack call before it is answered
// (nil: none).
func (w *world) onSlack(fn func(slackstub.Call)) {
	if fn == nil {
		w.stubHook.Store(nil)
		return
	}
	w.stubHook.Store(&fn)
}

// cleanup stops a bot still running, and checks the whole log for
// secrets, races and panics.
func (w *world) cleanup() {
	w.onEmulator(nil)
	w.onSlack(nil)
	if p := w.current(); p != nil && p.running() {
		p.cmd.Process.Kill()
		<-p.done
	}
	log, err := os.ReadFile(w.logPath)
	if err != nil {
		return
	}
	for _, s := range w.secrets {
		if bytes.Contains(log, []byte(s)) {
			w.t.Errorf("a secret appears in the bot's log %s", w.logPath)
		}
	}
	for _, bad := range []string{"WARNING: DATA RACE", "\npanic: ", "\nfatal error: "} {
		if i := bytes.Index(log, []byte(bad)); i >= 0 {
			w.t.Errorf("the bot's log has %q:\n%s", strings.TrimSpace(bad), log[i:min(len(log), i+6000)])
		}
	}
	if w.t.Failed() {
		w.t.Logf("bot log (last lines):\n%s", tail(log, 60))
	}
}

func (w *world) current() *botProcess {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bot
}

// botProcess is one run of the bot binary.
type botProcess struct {
	cmd   *exec.Cmd
	base  string // http://127.0.0.1:port
	pid   int
	n     int // which start of the world this is, from 1
	done  chan struct{}
	state *os.ProcessState
}

func (p *botProcess) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

var listeningLine = regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)

// start runs the bot on the world's database and waits until it listens.
func (w *world) start() *botProcess {
	w.t.Helper()
	if p := w.current(); p != nil && p.running() {
		w.t.Fatalf("start: bot %d is still running", p.n)
	}
	w.mu.Lock()
	w.starts++
	n := w.starts
	w.mu.Unlock()
	logFile, err := os.OpenFile(w.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		w.t.Fatal(err)
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "=== harness: start %d\n", n)
	cmd := exec.Command(w.bin, "serve")
	for k, v := range w.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if g := os.Getenv("GORACE"); g != "" {
		cmd.Env = append(cmd.Env, "GORACE="+g)
	}
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		w.t.Fatalf("start the bot: %v", err)
	}
	p := &botProcess{cmd: cmd, pid: cmd.Process.Pid, n: n, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listeningLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	select {
	case p.base = <-addr:
	case <-p.done:
		w.t.Fatalf("bot start %d exited before listening: %v", n, p.state)
	case <-time.After(waitLong):
		cmd.Process.Kill()
		w.t.Fatalf("bot start %d did not announce its address", n)
	}
	// Published once complete: deliveries from other goroutines read it.
	w.mu.Lock()
	w.bot = p
	w.mu.Unlock()
	return p
}

// kill stops the current bot with SIGKILL and waits until it is gone.
func (w *world) kill() {
	w.t.Helper()
	p := w.current()
	if p == nil {
		return
	}
	p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(waitLong):
		w.t.Fatalf("bot %d did not die of SIGKILL", p.n)
	}
}

// killNow sends SIGKILL to the current bot without waiting; hooks call it
// from the emulator's or the stand-in's goroutines.
func (w *world) killNow() {
	if p := w.current(); p != nil {
		p.cmd.Process.Kill()
	}
}

// awaitDeath waits until the current bot has exited (a hook killed it).
func (w *world) awaitDeath() {
	w.t.Helper()
	p := w.current()
	select {
	case <-p.done:
	case <-time.After(waitLong):
		w.t.Fatalf("bot %d is still running; the kill point was never reached", p.n)
	}
}

// termGrace is how long past its drain time a bot may take to exit after
// SIGTERM on a busy machine.
const termGrace = 15 * time.Second

// term stops the current bot with SIGTERM, waits for it to exit (it drains
// in-flight work for at most drainTimeout) and returns its exit code and
// how long it took.
func (w *world) term() (int, time.Duration) {
	w.t.Helper()
	p := w.current()
	begin := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		w.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(drainTimeout + termGrace):
		w.t.Fatalf("bot %d did not exit within its drain time (%s) after SIGTERM", p.n, drainTimeout)
	}
	return p.state.ExitCode(), time.Since(begin)
}

// stop ends the current bot with SIGTERM and fails unless it exits 0.
func (w *world) stop() {
	w.t.Helper()
	if code, _ := w.term(); code != 0 {
		w.t.Fatalf("bot exited %d after SIGTERM, want 0", code)
	}
}

// tail returns the last lines of b.
func tail(b []byte, lines int) []byte {
	b = bytes.TrimRight(b, "\n")
	for i, n := len(b)-1, 0; i >= 0; i-- {
		if b[i] == '\n' {
			if n++; n == lines {
				return b[i+1:]
			}
		}
	}
	return b
}
