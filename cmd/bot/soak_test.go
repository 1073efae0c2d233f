//go:build e2e

package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
	"rebootbot/internal/testutil"
)

// Soak sizes: REBOOTBOT_SOAK_REQUESTS=1000 for the full run.
const (
	defaultSoakRequests = 60
	soakInstances       = 300
	soakWorkers         = 8
	soakTTL             = 6 * time.Second
)

// soakRequests returns the soak's size, or skips it: under -short, and
// under the race detector unless asked for (REBOOTBOT_SOAK_REQUESTS, or
// -run naming it), since the instrumented bot is several times slower.
func soakRequests(t *testing.T) int {
	v := os.Getenv("REBOOTBOT_SOAK_REQUESTS")
	switch {
	case testing.Short():
		t.Skip("the soak runs without -short (REBOOTBOT_SOAK_REQUESTS sets its size)")
	case v == "" && raceBuild() && !strings.Contains(flag.Lookup("test.run").Value.String(), "Soak"):
		t.Skip("under -race the soak runs only when asked: REBOOTBOT_SOAK_REQUESTS=n or -run Soak")
	}
	if v == "" {
		return defaultSoakRequests
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("REBOOTBOT_SOAK_REQUESTS=%q is not a positive number", v)
	}
	return n
}

// soakRequest is one request of the soak and what the bot acknowledged
// about it.
type soakRequest struct {
	id        string
	instances []string
	scenario  string
	stopped   string // an instance stopped before the last approval
	// acked is the decision the bot confirmed to the person who clicked or
	// typed: "executing", "denied", "cancelled", or "" (none: it expires).
	acked      string
	born, died int // bot starts at filing and at settling
}

// soak drives many requests at once through the bot while faults and
// kills happen, and keeps what is needed to check the end state.
type soak struct {
	t *testing.T
	w *world

	mu       sync.Mutex
	free     []string
	requests []*soakRequest
	figures  map[string]int

	started atomic.Int64 // requests begun by the workers
	view    channelView
}

func (s *soak) count(what string, n int) {
	s.mu.Lock()
	s.figures[what] += n
	s.mu.Unlock()
}

// take removes n random instances from the free pool.
func (s *soak) take(rng *rand.Rand, n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n = min(n, len(s.free))
	out := make([]string, 0, n)
	for range n {
		i := rng.IntN(len(s.free))
		out = append(out, s.free[i])
		s.free[i] = s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
	}
	return out
}

func (s *soak) release(ids []string) {
	s.mu.Lock()
	s.free = append(s.free, ids...)
	s.mu.Unlock()
}

func (s *soak) record(r *soakRequest) {
	s.mu.Lock()
	s.requests = append(s.requests, r)
	s.mu.Unlock()
}

func (s *soak) generation() int {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return s.w.starts
}

// channelView is the channel indexed at most every 100ms, shared by the
// workers so that they do not each scan thousands of messages.
type channelView struct {
	mu    sync.Mutex
	built time.Time
	idx   messageIndex
}

func (s *soak) index() messageIndex {
	s.view.mu.Lock()
	defer s.view.mu.Unlock()
	if time.Since(s.view.built) > 100*time.Millisecond {
		s.view.idx = indexMessages(s.w.stub.Messages())
		s.view.built = time.Now()
	}
	return s.view.idx
}

// settled reports whether a card of request id shows an outcome and, when
// it was executed, its summary is in the thread.
func (s *soak) settled(id string) bool {
	idx := s.index()
	for _, c := range idx.cards[id] {
		switch o := cardOutcome(c); o {
		case "Denied", "Expired", "Cancelled":
			return true
		case "Succeeded", "Failed", "Partially failed":
			if summaries(idx.threads[c.TS]) > 0 {
				return true
			}
		}
	}
	return false
}

// exchange delivers d until the bot answers it with a text for which done
// holds: in the HTTP answer or through d's response URL. While the bot is
// down the delivery is retried; when an answer does not come (it was lost
// with a killed bot) the same delivery is sent again, which the bot must
// answer as before.
func (s *soak) exchange(d delivery, done func(string) bool) (string, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if attempt > 0 {
			s.count("deliveries sent again", 1)
		}
		status, body, err := s.w.send(d)
		if err != nil || status != http.StatusOK {
			time.Sleep(time.Second) // the bot is down or refused: try again later, as Slack would
			continue
		}
		if t := messageText([]byte(body)); t != "" && done(t) {
			return t, nil
		}
		gen := s.generation()
		var got string
		testutil.Poll(20*time.Second, func() bool {
			for _, r := range s.w.replies(d) {
				if done(r) {
					got = r
					return true
				}
			}
			return s.generation() != gen // the bot restarted: ask again
		})
		if got != "" {
			return got, nil
		}
	}
	return "", fmt.Errorf("%s by %s: no answer; answers so far %q", d.path, d.user, s.w.replies(d))
}

// notChecking accepts any answer but the immediate "Checking …".
func notChecking(t string) bool { return !strings.HasPrefix(t, "Checking") }

// scenarios and their weights.
var soakScenarios = []struct {
	name   string
	weight int
}{
	{"approve", 45}, {"deny", 15}, {"cancel", 12}, {"expire", 13}, {"conflict", 8}, {"duplicate", 7},
}

func pickScenario(rng *rand.Rand) string {
	total := 0
	for _, sc := range soakScenarios {
		total += sc.weight
	}
	n := rng.IntN(total)
	for _, sc := range soakScenarios {
		if n < sc.weight {
			return sc.name
		}
		n -= sc.weight
	}
	return "approve"
}

var approvers = []string{approver1, approver2, approver3}

// worker runs requests until n have been begun.
func (s *soak) worker(seed uint64, n int) {
	rng := rand.New(rand.NewPCG(seed, 0x50a6))
	for s.started.Add(1) <= int64(n) {
		if err := s.one(rng); err != nil {
			s.t.Error(err)
			return
		}
	}
}

// file sends /reboot for ids and returns the request ID, or "" and the
// refusal.
func (s *soak) file(user string, ids []string) (string, string, error) {
	d := s.w.command(user, strings.Join(ids, " ")+" soak")
	reply, err := s.exchange(d, notChecking)
	if err != nil {
		return "", "", err
	}
	if strings.Contains(reply, "the card is in the channel") || strings.Contains(reply, "is filed") {
		return requestIDPattern.FindString(reply), "", nil
	}
	return "", reply, nil
}

// decide sends a click and returns the bot's answer.
func (s *soak) decide(user, action, id string) (string, error) {
	return s.exchange(s.w.click(user, action, id, ""), notChecking)
}

// one runs one request from filing to its outcome.
func (s *soak) one(rng *rand.Rand) error {
	ins := s.take(rng, 1+rng.IntN(4))
	if len(ins) == 0 {
		return fmt.Errorf("the instance pool ran dry")
	}
	defer s.release(ins)
	user := requester
	if rng.IntN(4) == 0 {
		user = approver3 // an approver asking: may not approve their own
	}
	others := slices.DeleteFunc(slices.Clone(approvers), func(a string) bool { return a == user })
	rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	a1, a2 := others[0], others[1]

	id, refusal, err := s.file(user, ins)
	if err != nil {
		return err
	}
	if id == "" {
		s.count("filings refused: "+refusalKind(refusal), 1)
		return nil
	}
	r := &soakRequest{id: id, instances: ins, scenario: pickScenario(rng), born: s.generation()}
	s.record(r)
	s.count("scenario "+r.scenario, 1)

	// A refused click now and then: an outsider, or the requester.
	if rng.IntN(8) == 0 {
		who := outsider
		if user == approver3 {
			who = user
		}
		if _, err := s.decide(who, bot.ActionApprove, id); err != nil {
			return err
		}
		s.count("refused clicks sent", 1)
	}

	approved := func(reply string) {
		if strings.Contains(reply, "the reboot starts now") {
			r.acked = "executing"
		}
	}
	switch r.scenario {
	case "approve", "duplicate":
		reply, err := s.decide(a1, bot.ActionApprove, id)
		if err != nil {
			return err
		}
		approved(reply)
		if rng.IntN(10) == 0 {
			r.stopped = ins[rng.IntN(len(ins))]
			s.w.emu.SetState(r.stopped, emulator.StateStopped)
			s.count("instances stopped before execution", 1)
		}
		if rng.IntN(10) == 0 {
			s.w.emu.FailNextReboot(ins[rng.IntN(len(ins))])
			s.count("reboots made to fail", 1)
		}
		d := s.w.click(a2, bot.ActionApprove, id, "")
		if r.scenario == "duplicate" {
			var wg sync.WaitGroup
			for range 3 {
				wg.Add(1)
				go func() { defer wg.Done(); s.w.send(d) }()
			}
			wg.Wait()
			s.count("duplicate click deliveries", 3)
		}
		if reply, err = s.exchange(d, notChecking); err != nil {
			return err
		}
		approved(reply)
	case "deny":
		if rng.IntN(2) == 0 {
			reply, err := s.decide(a1, bot.ActionApprove, id)
			if err != nil {
				return err
			}
			approved(reply)
		}
		reply, err := s.decide(a2, bot.ActionDeny, id)
		if err != nil {
			return err
		}
		if strings.Contains(reply, "You denied") {
			r.acked = "denied"
		}
	case "cancel":
		if rng.IntN(2) == 0 {
			if _, err := s.decide(a1, bot.ActionApprove, id); err != nil {
				return err
			}
		}
		if rng.IntN(4) == 0 {
			if _, err := s.exchange(s.w.command(outsider, "cancel "+id), notChecking); err != nil {
				return err
			}
			s.count("refused cancels sent", 1)
		}
		reply, err := s.exchange(s.w.command(user, "cancel "+id), notChecking)
		if err != nil {
			return err
		}
		if strings.Contains(reply, "You cancelled") {
			r.acked = "cancelled"
		}
	case "expire", "conflict":
		if rng.IntN(2) == 0 {
			if _, err := s.decide(a1, bot.ActionApprove, id); err != nil {
				return err
			}
		}
		if r.scenario == "conflict" {
			// The same instance in a second request while the first waits.
			extra := s.take(rng, 1)
			defer s.release(extra)
			id2, refusal, err := s.file(requester, append([]string{ins[0]}, extra...))
			if err != nil {
				return err
			}
			if id2 != "" {
				// The first expired meanwhile: end the second one too.
				r2 := &soakRequest{id: id2, instances: append([]string{ins[0]}, extra...), scenario: "cancel", born: s.generation()}
				s.record(r2)
				reply, err := s.exchange(s.w.command(requester, "cancel "+id2), notChecking)
				if err != nil {
					return err
				}
				if strings.Contains(reply, "You cancelled") {
					r2.acked = "cancelled"
				}
				if !testutil.Poll(3*time.Minute, func() bool { return s.settled(id2) }) {
					return fmt.Errorf("%s did not settle", id2)
				}
				r2.died = s.generation()
			} else {
				s.count("filings refused: "+refusalKind(refusal), 1)
			}
		}
	}
	if !testutil.Poll(3*time.Minute, func() bool { return s.settled(id) }) {
		return fmt.Errorf("%s (%s) did not settle", id, r.scenario)
	}
	r.died = s.generation()
	if r.scenario == "deny" && rng.IntN(5) == 0 {
		// A late click on a decided request.
		if _, err := s.decide(a1, bot.ActionApprove, id); err != nil {
			return err
		}
		s.count("late clicks sent", 1)
	}
	if r.stopped != "" {
		s.w.emu.SetState(r.stopped, emulator.StateRunning)
	}
	return nil
}

// refusalKind names a refused filing for the figures.
func refusalKind(reply string) string {
	switch {
	case strings.Contains(reply, "already has an open request"):
		return "instance held by another request"
	case strings.Contains(reply, "Tencent Cloud"):
		return "cloud unavailable"
	case strings.Contains(reply, "Nothing was requested"):
		return "pre-flight"
	}
	return "other"
}

// rssSample is one reading of the bot's resident memory, in kB: all of
// it, the anonymous part (heap, stacks) and the file-backed part (mostly
// the database, which bbolt maps into memory and which grows with the
// audit log).
type rssSample struct {
	start           int
	at              time.Duration
	kb, anon, files int
}

// readRSS reads VmRSS, RssAnon and RssFile of process pid.
func readRSS(pid int) (rssSample, bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return rssSample{}, false
	}
	defer f.Close()
	var r rssSample
	fields := map[string]*int{"VmRSS:": &r.kb, "RssAnon:": &r.anon, "RssFile:": &r.files}
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for prefix, dst := range fields {
			if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				if n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))); err == nil {
					*dst = n
					found++
				}
			}
		}
	}
	return r, found == len(fields)
}

// scrapeMetrics adds the running bot's counters of cloud and Slack calls to
// sums.
func (w *world) scrapeMetrics(sums map[string]float64) {
	p := w.current()
	if p == nil || !p.running() {
		return
	}
	resp, err := w.client.Get(p.base + "/metrics")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rebootbot_cloud_calls_total") && !strings.HasPrefix(line, "rebootbot_slack_api_calls_total") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			sums[line[:i]] += v
		}
	}
}

// TestSoak files many requests over several hundred instances with random
// approvals, denials, cancellations and expiries, under cloud and Slack
// faults and a few kills and restarts, then checks the invariants over
// everything: every request terminal and its card showing it, every
// acknowledged decision honoured, per instance accepted reboot calls equal
// to the reboots the audit log records, the chain intact, every state
// change audited. It samples the bot's memory throughout.
func TestSoak(t *testing.T) {
	n := soakRequests(t)
	instances := emulator.Generate(soakInstances, 1)
	w := newWorld(t, worldConfig{
		Instances: instances, RebootDuration: 300 * time.Millisecond, Seed: 3,
		Env: map[string]string{"BOT_MIN_APPROVALS": "2", "BOT_REQUEST_TTL": soakTTL.String(), "BOT_REBOOT_TIMEOUT": "20s"},
	})
	s := &soak{t: t, w: w, free: instanceIDs(instances), figures: map[string]int{}}
	errs := countEmulatorErrors(w)
	begin := time.Now()
	w.start()

	// Memory, sampled every 250ms.
	var rssMu sync.Mutex
	var rss []rssSample
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
			if p := w.current(); p != nil && p.running() {
				if r, ok := readRSS(p.pid); ok {
					r.start, r.at = p.n, time.Since(begin)
					rssMu.Lock()
					rss = append(rss, r)
					rssMu.Unlock()
				}
			}
		}
	}()

	var workers sync.WaitGroup
	for i := range soakWorkers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			s.worker(uint64(i+1), n)
		}()
	}
	finished := make(chan struct{})
	go func() { workers.Wait(); close(finished) }()

	// Chaos, from the test goroutine: cloud faults and Slack faults
	// change every couple of seconds; the bot is killed at spread-out
	// points of the first 60% of the requests, then left alone.
	kills := max(3, n/100)
	cloudProfiles := [][]emulator.Fault{
		nil,
		{{Code: "InternalError", Rate: 0.1}},
		{{Latency: 150 * time.Millisecond, Rate: 0.5}},
		{{Action: "RebootInstances", Code: "RequestLimitExceeded", Count: 2}},
		{{Action: "DescribeInstances", Code: "InternalError", Rate: 0.2}},
	}
	slackBursts := []slackstub.Fault{
		{Method: "chat.update", Status: http.StatusServiceUnavailable, Count: 4},
		{Method: "chat.postMessage", Status: http.StatusTooManyRequests, RetryAfter: 1, Count: 2},
		{Method: "response_url", Status: http.StatusInternalServerError, Count: 2},
		{Method: "chat.update", Delay: time.Second, Count: 3},
	}
	rng := rand.New(rand.NewPCG(99, 1))
	metrics := map[string]float64{}
	sigkills, sigterms, done := 0, 0, false
	var termTook []time.Duration
	for tick := 0; !done; tick++ {
		select {
		case <-finished:
			done = true
			continue
		case <-time.After(time.Second):
		}
		if tick%2 == 0 {
			profile := cloudProfiles[rng.IntN(len(cloudProfiles))]
			w.emu.SetFaults(profile...)
			if len(profile) > 0 {
				s.count("cloud fault periods", 1)
			}
		}
		if tick%3 == 0 {
			f := slackBursts[rng.IntN(len(slackBursts))]
			w.stub.Fail(f)
			s.count("slack fault bursts", 1)
		}
		if k := sigkills + sigterms; k < kills && s.started.Load() >= int64((k+1)*n*6/10/kills) {
			w.scrapeMetrics(metrics)
			if k == kills/2 {
				code, took := w.term()
				if code != 0 {
					t.Errorf("the bot exited %d after SIGTERM, want 0", code)
				}
				termTook = append(termTook, took)
				sigterms++
			} else {
				w.kill()
				sigkills++
			}
			w.start()
		}
	}
	w.emu.SetFaults()
	w.stub.ClearFaults()
	w.scrapeMetrics(metrics)
	close(stopSampling)
	<-sampled
	if t.Failed() {
		return
	}

	ids := make([]string, 0, len(s.requests))
	killed := map[string]bool{}
	for _, r := range s.requests {
		ids = append(ids, r.id)
		if r.born != r.died {
			killed[r.id] = true
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		a, _ := approval.ParseRequestID(ids[i])
		b, _ := approval.ParseRequestID(ids[j])
		return a < b
	})
	elapsed := time.Since(begin)
	rep := w.checkWorld(ids, checkOptions{KilledDuring: killed})

	// Every acknowledged decision was honoured.
	reqs, _ := w.mustRequests(ids)
	for _, r := range s.requests {
		got := reqs[r.id]
		executed := got.State == approval.Succeeded || got.State == approval.Failed || got.State == approval.PartiallyFailed
		switch {
		case r.acked == "executing" && !executed:
			t.Errorf("%s: the last approval was acknowledged but it ended %s", r.id, got.State)
		case r.acked == "denied" && got.State != approval.Denied:
			t.Errorf("%s: the denial was acknowledged but it ended %s", r.id, got.State)
		case r.acked == "cancelled" && got.State != approval.Cancelled:
			t.Errorf("%s: the cancellation was acknowledged but it ended %s", r.id, got.State)
		case r.acked == "" && got.State != approval.Expired:
			t.Errorf("%s (%s): nothing was decided but it ended %s", r.id, r.scenario, got.State)
		}
		if r.stopped != "" && executed {
			if run := got.Run(r.stopped); run == nil || run.State != approval.RunFailed || run.ErrorCode != "InstanceNotRunning" {
				t.Errorf("%s: %s was stopped before execution but its run is %+v", r.id, r.stopped, run)
			}
		}
	}

	events := w.mustEvents()
	types := map[approval.EventType]int{}
	for _, e := range events {
		types[e.Type]++
	}
	rssMu.Lock()
	first, last, peak := rss[0], rss[len(rss)-1], rss[0]
	for _, r := range rss {
		if r.kb > peak.kb {
			peak = r
		}
	}
	// The last process ran the last 40% of the requests without a kill.
	var lastRun []rssSample
	for _, r := range rss {
		if r.start == last.start {
			lastRun = append(lastRun, r)
		}
	}
	rssMu.Unlock()
	lastPeak := lastRun[0]
	for _, r := range lastRun {
		lastPeak.kb = max(lastPeak.kb, r.kb)
	}

	logf(t, "soak: %d requests (%d workers) over %d instances in %s; race detector %v", len(ids), soakWorkers, soakInstances, elapsed.Round(time.Second), raceBuild())
	logf(t, "soak: outcomes %v; %d executed; %d accepted reboots; emulator requests: Describe %d, Reboot %d", rep.Outcomes, rep.Executed, rep.Reboots, w.emu.Calls("DescribeInstances"), w.emu.Calls("RebootInstances"))
	dbSize := int64(0)
	if fi, err := os.Stat(w.db); err == nil {
		dbSize = fi.Size()
	}
	logf(t, "soak: audit %d events %v; database file %d KiB", len(events), types, dbSize>>10)
	logf(t, "soak: %d SIGKILL, %d SIGTERM (exit took %v); %d cards posted again, %d thread messages posted again (requests alive across a kill)", sigkills, sigterms, termTook, rep.OrphanCards, rep.Reposts)
	logf(t, "soak: injected cloud errors %v; figures %v", errs.snapshot(), s.figures)
	logf(t, "soak: bot metrics summed over its runs: %v", metrics)
	var quartiles []string
	for q := range 5 {
		r := lastRun[q*(len(lastRun)-1)/4]
		quartiles = append(quartiles, fmt.Sprintf("%s %d kB (anon %d, file %d)", r.at.Round(time.Second), r.kb, r.anon, r.files))
	}
	logf(t, "soak: RSS %d samples: first %d kB (start %d), last %d kB (start %d), max %d kB (start %d at %s); last run (%d samples over %s, no kills): max %d kB, at 0/25/50/75/100%%: %s",
		len(rss), first.kb, first.start, last.kb, last.start, peak.kb, peak.start, peak.at.Round(time.Second),
		len(lastRun), (lastRun[len(lastRun)-1].at - lastRun[0].at).Round(time.Second), lastPeak.kb, strings.Join(quartiles, ", "))
	if n >= 100 && len(ids) < n*8/10 {
		t.Errorf("only %d of %d requests were filed", len(ids), n)
	}
}
