package main

// The harness runs the real bot binary as a separate process against a CVM
// emulator and a Slack stand-in served by the test process on 127.0.0.1,
// drives it with signed slash commands and clicks the way Slack does, kills
// and restarts it on the same database, and reads the outcome back from
// Slack's messages, the emulator's counters, the audit CLI and the store.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
	"rebootbot/store"
)

// waitLong bounds every wait for the bot: generous, because the machine may
// be busy with other test processes.
const waitLong = 60 * time.Second

// The people of the harness. Every approver is in BOT_APPROVERS.
const (
	requester = "UREQUESTER"
	approver1 = "UAPPROVER1"
	approver2 = "UAPPROVER2"
	approver3 = "UAPPROVER3"
	outsider  = "UOUTSIDER"
	channel   = "COPS"
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

// waitReply waits for an answer to d that contains want and returns it.
func (w *world) waitReply(d delivery, want string) string {
	w.t.Helper()
	var got string
	if !w.stub.WaitFor(waitLong, func() bool {
		for _, r := range w.replies(d) {
			if strings.Contains(r, want) {
				got = r
				return true
			}
		}
		return false
	}) {
		w.t.Fatalf("no answer to %s containing %q; answers: %q", d.path, want, w.replies(d))
	}
	return got
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

// mustCard waits for a card of request id and returns the latest one.
func (w *world) mustCard(id string) slackstub.Message {
	w.t.Helper()
	var card slackstub.Message
	if !w.stub.WaitFor(waitLong, func() bool {
		cs := w.cards(id)
		if len(cs) == 0 {
			return false
		}
		card = cs[len(cs)-1]
		return true
	}) {
		w.t.Fatalf("no card for %s", id)
	}
	return card
}

// waitCard waits until some card of request id satisfies ok.
func (w *world) waitCard(id string, what string, ok func(slackstub.Message) bool) slackstub.Message {
	w.t.Helper()
	var card slackstub.Message
	if !w.stub.WaitFor(waitLong, func() bool {
		for _, c := range w.cards(id) {
			if ok(c) {
				card = c
				return true
			}
		}
		return false
	}) {
		var now []string
		for _, c := range w.cards(id) {
			now = append(now, c.Text)
		}
		w.t.Fatalf("card of %s never showed %s; cards: %q", id, what, now)
	}
	return card
}

// terminalOutcomes are the words a card ends with.
var terminalOutcomes = []string{"Succeeded", "Failed", "Partially failed", "Denied", "Expired", "Cancelled"}

// waitSettled waits until request id's card shows an outcome and, when it
// was executed, its summary is in the thread; it returns the outcome.
func (w *world) waitSettled(id string) string {
	w.t.Helper()
	var outcome string
	if !w.stub.WaitFor(waitLong, func() bool {
		for _, c := range w.cards(id) {
			o := cardOutcome(c)
			if !slices.Contains(terminalOutcomes, o) {
				continue
			}
			if o == "Denied" || o == "Expired" || o == "Cancelled" || summaries(w.stub.Thread(c.TS)) > 0 {
				outcome = o
				return true
			}
		}
		return false
	}) {
		var now []string
		for _, c := range w.cards(id) {
			now = append(now, fmt.Sprintf("%s (thread: %d)", c.Text, len(w.stub.Thread(c.TS))))
		}
		w.t.Fatalf("%s did not settle; cards: %q", id, now)
	}
	return outcome
}

// waitUntil polls cond until it holds or the deadline passes.
func (w *world) waitUntil(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(waitLong)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
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

// cli runs the bot binary with args (an audit command) on the world's
// database and returns its stdout and exit code.
func (w *world) cli(args ...string) (string, int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.bin, args...)
	cmd.Env = []string{"BOT_DB=" + w.db, "HOME=" + w.dir}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		w.t.Fatalf("bot %s: %v", strings.Join(args, " "), err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return stdout.String() + stderr.String(), code
	}
	return stdout.String(), 0
}

// mustVerify runs `bot audit verify` and fails unless it exits 0.
func (w *world) mustVerify() {
	w.t.Helper()
	out, code := w.cli("audit", "verify")
	if code != 0 || !strings.Contains(out, "audit log intact") {
		w.t.Fatalf("bot audit verify exited %d: %s", code, out)
	}
}

// auditJSONL runs `bot audit list --format jsonl --oldest` and returns its
// raw output.
func (w *world) auditJSONL() string {
	w.t.Helper()
	out, code := w.cli("audit", "list", "--format", "jsonl", "--oldest", "--limit", "0")
	if code != 0 {
		w.t.Fatalf("bot audit list exited %d: %s", code, out)
	}
	return out
}

// mustEvents returns the whole audit log, oldest first, read with the CLI.
func (w *world) mustEvents() []approval.Event {
	w.t.Helper()
	var events []approval.Event
	for _, line := range strings.Split(strings.TrimSpace(w.auditJSONL()), "\n") {
		if line == "" {
			continue
		}
		var e approval.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			w.t.Fatalf("audit list printed a line that is not an event: %v", err)
		}
		events = append(events, e)
	}
	return events
}

// mustRequests reads requests ids from the database; the bot must be
// stopped. It also returns the requests the store still owes work for.
func (w *world) mustRequests(ids []string) (map[string]*approval.Request, []*approval.Request) {
	w.t.Helper()
	db, err := store.Open(w.db, store.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		w.t.Fatalf("open the store: %v", err)
	}
	defer db.Close()
	ctx := context.Background()
	out := make(map[string]*approval.Request, len(ids))
	for _, id := range ids {
		r, err := db.Get(ctx, id)
		if err != nil {
			w.t.Fatalf("get %s: %v", id, err)
		}
		out[id] = r
	}
	open, err := db.Open(ctx)
	if err != nil {
		w.t.Fatalf("open requests: %v", err)
	}
	return out, open
}

// eventIndex groups audit events by request and type.
type eventIndex map[string]map[approval.EventType][]approval.Event

func indexEvents(events []approval.Event) eventIndex {
	idx := eventIndex{}
	for _, e := range events {
		if idx[e.RequestID] == nil {
			idx[e.RequestID] = map[approval.EventType][]approval.Event{}
		}
		idx[e.RequestID][e.Type] = append(idx[e.RequestID][e.Type], e)
	}
	return idx
}

// rebootCalledPerInstance counts, from the audit log, the instances each
// reboot_called event says were rebooted.
func rebootCalledPerInstance(events []approval.Event) map[string]int {
	n := map[string]int{}
	for _, e := range events {
		if e.Type == approval.EventRebootCalled {
			for _, id := range e.Instances {
				n[id]++
			}
		}
	}
	return n
}

// checkReport is what checkWorld found, for the figures.
type checkReport struct {
	Requests, Executed, Reboots int
	// OrphanCards counts cards posted again after a crash; Reposts counts
	// thread messages posted again by requests that lived through a kill
	// (tolerated only for those, see checkOptions).
	OrphanCards, Reposts int
	Outcomes             map[string]int
	Events               int
}

// checkOptions tune checkWorld.
type checkOptions struct {
	// RebootOnce: each instance was in at most one approved request, so it
	// may have been rebooted at most once.
	RebootOnce bool
	// KilledDuring marks requests that lived through a SIGKILL at a random
	// instant: a thread message posted again is counted, not failed (the
	// instant Slack takes a post is TestCrashThreadPostAnswerLost's).
	KilledDuring map[string]bool
}

// messageIndex is the channel as it stands, indexed once.
type messageIndex struct {
	cards   map[string][]slackstub.Message // by request ID
	byTS    map[string]slackstub.Message   // top-level messages
	threads map[string][]slackstub.Message // by thread_ts
}

func indexMessages(msgs []slackstub.Message) messageIndex {
	idx := messageIndex{cards: map[string][]slackstub.Message{}, byTS: map[string]slackstub.Message{}, threads: map[string][]slackstub.Message{}}
	for _, m := range msgs {
		if m.ThreadTS != "" {
			idx.threads[m.ThreadTS] = append(idx.threads[m.ThreadTS], m)
			continue
		}
		idx.byTS[m.TS] = m
		if g := cardTitle.FindStringSubmatch(m.Text); g != nil {
			idx.cards[g[1]] = append(idx.cards[g[1]], m)
		}
	}
	return idx
}

// checkWorld stops the bot and checks the invariants over requests ids:
// each is terminal with its card showing its outcome; an executed one has
// one start, one report per instance and one summary in its thread; every
// state change has its audit event; per instance, accepted reboot calls
// (emulator) equal the instances of reboot_called events (audit); the
// chain verifies; nothing is owed after a clean stop.
func (w *world) checkWorld(ids []string, opt checkOptions) checkReport {
	w.t.Helper()
	w.stop()
	w.mustVerify()
	events := w.mustEvents()
	reqs, open := w.mustRequests(ids)
	idx := indexEvents(events)
	msgs := indexMessages(w.stub.Messages())
	rep := checkReport{Requests: len(ids), Outcomes: map[string]int{}, Events: len(events)}
	for _, r := range open {
		w.t.Errorf("%s (%s) is still owed work after a clean stop: card current %v, end announced %v", r.ID, r.State, r.CardCurrent, r.EndAnnounced)
	}
	// once checks that n messages of a kind were posted: exactly one, or
	// at least one for a request killed during its life.
	once := func(id string, n int, what string) {
		switch {
		case n == 1:
		case n > 1 && opt.KilledDuring[id]:
			rep.Reposts += n - 1
		default:
			w.t.Errorf("%s: %d %s in the thread, want 1", id, n, what)
		}
	}
	for _, id := range ids {
		r := reqs[id]
		evs := idx[id]
		rep.Outcomes[string(r.State)]++
		if !r.State.Terminal() {
			w.t.Errorf("%s is %s, want a terminal state", id, r.State)
			continue
		}
		if got := len(evs[approval.EventRequested]); got != 1 {
			w.t.Errorf("%s has %d requested events, want 1", id, got)
		}
		if r.State == approval.Rejected {
			if got := len(evs[approval.EventRejected]); got != 1 || r.Card.TS != "" {
				w.t.Errorf("%s is rejected with %d rejected events and card %q", id, got, r.Card.TS)
			}
			continue
		}
		cards := msgs.cards[id]
		rep.OrphanCards += max(len(cards)-1, 0)
		stored, ok := msgs.byTS[r.Card.TS]
		switch {
		case r.Card.TS == "":
			w.t.Errorf("%s has no card stored", id)
		case !ok:
			w.t.Errorf("%s: its stored card %s is not in the channel", id, r.Card.TS)
		case cardOutcome(stored) != r.State.Outcome():
			w.t.Errorf("%s is %s but its card shows %q", id, r.State, cardOutcome(stored))
		}
		if len(cards) > 2 {
			w.t.Errorf("%s has %d cards; at most one repost after a crash is expected", id, len(cards))
		}
		switch r.State {
		case approval.Denied, approval.Cancelled, approval.Expired:
			want := map[approval.State]approval.EventType{approval.Denied: approval.EventDenied, approval.Cancelled: approval.EventCancelled, approval.Expired: approval.EventExpired}[r.State]
			if got := len(evs[want]); got != 1 {
				w.t.Errorf("%s is %s with %d %s events, want 1", id, r.State, got, want)
			}
			if len(evs[approval.EventExecuting]) != 0 || len(evs[approval.EventRebootCalled]) != 0 {
				w.t.Errorf("%s is %s but was executed", id, r.State)
			}
			if got, want := len(evs[approval.EventApproved]), len(r.Approvals); got != want {
				w.t.Errorf("%s has %d approved events for %d approvals", id, got, want)
			}
			continue
		}
		// Executed.
		rep.Executed++
		if got := len(evs[approval.EventExecuting]); got != 1 {
			w.t.Errorf("%s has %d executing events, want 1", id, got)
		}
		if got := len(evs[approval.EventCompleted]); got != 1 {
			w.t.Errorf("%s has %d completed events, want 1", id, got)
		} else if got := evs[approval.EventCompleted][0].Details.Outcome; got != string(r.State) {
			w.t.Errorf("%s is %s but its completed event says %s", id, r.State, got)
		}
		if got := len(evs[approval.EventApproved]); got < r.Required || got != len(r.Approvals) {
			w.t.Errorf("%s has %d approved events for %d approvals (%d required)", id, got, len(r.Approvals), r.Required)
		}
		thread := msgs.threads[r.Card.TS]
		once(id, starts(thread), "start messages")
		once(id, summaries(thread), "summaries")
		for _, run := range r.Runs {
			ok, failed := 0, 0
			for _, e := range evs[approval.EventInstanceSucceeded] {
				ok += count(e.Instances, run.InstanceID)
			}
			for _, e := range evs[approval.EventInstanceFailed] {
				failed += count(e.Instances, run.InstanceID)
			}
			switch {
			case run.State == approval.RunSucceeded && (ok != 1 || failed != 0):
				w.t.Errorf("%s: %s succeeded with %d succeeded and %d failed events", id, run.InstanceID, ok, failed)
			case run.State == approval.RunFailed && (ok != 0 || failed != 1):
				w.t.Errorf("%s: %s failed with %d succeeded and %d failed events", id, run.InstanceID, ok, failed)
			case !run.State.Done():
				w.t.Errorf("%s: %s ended %q", id, run.InstanceID, run.State)
			}
			once(id, instanceReports(thread, run.InstanceID), "reports for "+run.InstanceID)
		}
	}
	called := rebootCalledPerInstance(events)
	for _, id := range w.emu.IDs() {
		got, want := w.emu.RebootCalls(id), called[id]
		rep.Reboots += got
		if got != want {
			w.t.Errorf("%s: the emulator accepted %d reboot calls, the audit log records %d", id, got, want)
		}
		if opt.RebootOnce && got > 1 {
			w.t.Errorf("%s was rebooted %d times", id, got)
		}
	}
	return rep
}

func count(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

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

// instanceIDs returns the IDs of instances.
func instanceIDs(ins []emulator.Instance) []string {
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	return ids
}

// logf records a figure for RELIABILITY.md in the test output.
func logf(t testing.TB, format string, a ...any) {
	t.Helper()
	t.Logf("figures: "+format, a...)
}
