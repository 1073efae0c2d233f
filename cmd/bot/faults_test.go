//go:build e2e

package main

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud"
	"rebootbot/cloud/emulator"
)

// countEmulatorErrors counts the emulator's answers that carried an error,
// by code.
type errorCounter struct {
	mu    sync.Mutex
	codes map[string]int
}

func countEmulatorErrors(w *world) *errorCounter {
	c := &errorCounter{codes: map[string]int{}}
	w.onEmulator(func(call emulator.Call) {
		if call.ErrorCode != "" {
			c.mu.Lock()
			c.codes[call.Action+":"+call.ErrorCode]++
			c.mu.Unlock()
		}
	})
	return c
}

func (c *errorCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.codes))
	for k, v := range c.codes {
		out[k] = v
	}
	return out
}

// requestOrRefusal files a request and returns its ID, or "" and the
// bot's answer when it was refused.
func (w *world) requestOrRefusal(ids []string) (string, string) {
	w.t.Helper()
	d := w.command(requester, strings.Join(ids, " ")+" harness reboot")
	w.mustSend(d)
	var got string
	if !w.stub.WaitFor(waitLong, func() bool {
		for _, r := range w.replies(d) {
			if !strings.HasPrefix(r, "Checking") {
				got = r
				return true
			}
		}
		return false
	}) {
		w.t.Fatalf("no answer to the request for %v", ids)
	}
	if strings.Contains(got, "the card is in the channel") || strings.Contains(got, "is filed") {
		return requestIDPattern.FindString(got), ""
	}
	return "", got
}

// threadOf returns the thread of request id's stored card (its latest).
func (w *world) threadOf(id string) []slackstub.Message {
	return w.stub.Thread(w.mustCard(id).TS)
}

// reportFor returns the thread report about instance in, or "".
func reportFor(thread []slackstub.Message, in string) string {
	for _, m := range thread {
		if (strings.HasPrefix(m.Text, "✅") || strings.HasPrefix(m.Text, "❌")) && strings.Contains(m.Text, "`"+in+"`") {
			return m.Text
		}
	}
	return ""
}

// TestCloudFaults runs requests through injected Tencent Cloud faults and
// checks that each instance's result matches what the emulator did, is
// reported in the thread, and that retries stay bounded.
func TestCloudFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// inject runs after the request is filed and before it is
		// approved.
		inject func(w *world, ids []string)
		// want maps each instance to its expected result: "ok", or the
		// error code its report must name; nil: whatever the emulator did.
		want func(ids []string) map[string]string
		// exactRebootCalls, when set, is how many RebootInstances requests
		// the emulator must receive; otherwise at most MaxAttempts per
		// instance.
		exactRebootCalls int
	}{
		{
			name: "TransientErrors30Percent",
			inject: func(w *world, ids []string) {
				w.emu.SetFaults(emulator.Fault{Code: "InternalError", Rate: 0.3})
			},
		},
		{
			name: "AddedLatency",
			inject: func(w *world, ids []string) {
				w.emu.SetFaults(emulator.Fault{Latency: 300 * time.Millisecond})
			},
			want: allOK,
		},
		{
			name: "RequestLimitBurst",
			inject: func(w *world, ids []string) {
				w.emu.SetFaults(emulator.Fault{Action: "RebootInstances", Code: "RequestLimitExceeded", Count: 3})
			},
			want:             allOK,
			exactRebootCalls: 4,
		},
		{
			name: "RequestLimitOutlastsRetries",
			inject: func(w *world, ids []string) {
				w.emu.SetFaults(emulator.Fault{Action: "RebootInstances", Code: "RequestLimitExceeded", Count: 50})
			},
			want: func(ids []string) map[string]string {
				return map[string]string{ids[0]: "RequestLimitExceeded", ids[1]: "RequestLimitExceeded", ids[2]: "RequestLimitExceeded"}
			},
			exactRebootCalls: cloud.DefaultMaxAttempts,
		},
		{
			name:   "RebootFails",
			inject: func(w *world, ids []string) { w.emu.FailNextReboot(ids[1]) },
			want: func(ids []string) map[string]string {
				return map[string]string{ids[0]: "ok", ids[1]: "RebootFailed", ids[2]: "ok"}
			},
			exactRebootCalls: 1,
		},
		{
			name: "StoppedBeforeExecution",
			inject: func(w *world, ids []string) {
				if err := w.emu.SetState(ids[0], emulator.StateStopped); err != nil {
					w.t.Fatal(err)
				}
			},
			want: func(ids []string) map[string]string {
				return map[string]string{ids[0]: "InstanceNotRunning", ids[1]: "ok", ids[2]: "ok"}
			},
			exactRebootCalls: 1,
		},
		{
			// Stopped once the bot re-checked the instances, before its
			// RebootInstances call: the call is refused because of it, the
			// bot isolates it and reboots the others.
			name: "StoppedAtTheCall",
			inject: func(w *world, ids []string) {
				var once sync.Once
				w.onEmulator(func(c emulator.Call) {
					if c.Action == "DescribeInstances" {
						once.Do(func() { w.emu.SetState(ids[0], emulator.StateStopped) })
					}
				})
			},
			want: func(ids []string) map[string]string {
				return map[string]string{ids[0]: "InstanceStateStopped", ids[1]: "ok", ids[2]: "ok"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			instances := emulator.Generate(3, 23)
			ids := instanceIDs(instances)
			w := newWorld(t, worldConfig{Instances: instances, Seed: 5})
			w.start()
			id := w.mustRequest(ids)
			errs := countEmulatorErrors(w)
			tt.inject(w, ids)
			approve(w, approver1, id)
			outcome := w.waitSettled(id)
			w.emu.SetFaults()
			w.onEmulator(nil)

			thread := w.threadOf(id)
			want := map[string]string{}
			if tt.want != nil {
				want = tt.want(ids)
			}
			for _, in := range ids {
				rep, calls := reportFor(thread, in), w.emu.RebootCalls(in)
				switch {
				case rep == "":
					t.Errorf("%s: no report in the thread", in)
				case calls == 1 && want[in] != "RebootFailed" && !strings.HasPrefix(rep, "✅"):
					t.Errorf("%s was rebooted but reported %q", in, rep)
				case calls == 0 && !strings.HasPrefix(rep, "❌"):
					t.Errorf("%s was not rebooted but reported %q", in, rep)
				case calls > 1:
					t.Errorf("%s was rebooted %d times", in, calls)
				}
				switch w := want[in]; {
				case w == "":
				case w == "ok" && (calls != 1 || !strings.HasPrefix(rep, "✅")):
					t.Errorf("%s: %d reboots, report %q; want one successful reboot", in, calls, rep)
				case w != "ok" && (!strings.HasPrefix(rep, "❌") || !strings.Contains(rep, w)):
					t.Errorf("%s: report %q, want a failure naming %s", in, rep, w)
				}
			}
			rebootCalls := w.emu.Calls("RebootInstances")
			switch {
			case tt.exactRebootCalls > 0 && rebootCalls != tt.exactRebootCalls:
				t.Errorf("RebootInstances requests = %d, want %d", rebootCalls, tt.exactRebootCalls)
			case rebootCalls > cloud.DefaultMaxAttempts*len(ids):
				t.Errorf("RebootInstances requests = %d, more than %d attempts for each of %d instances", rebootCalls, cloud.DefaultMaxAttempts, len(ids))
			}
			rep := w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
			logf(t, "cloud fault %s: outcome %s, %d accepted reboots; emulator requests: Describe %d, Reboot %d; injected errors %v",
				tt.name, outcome, rep.Reboots, w.emu.Calls("DescribeInstances"), rebootCalls, errs.snapshot())
		})
	}
}

func allOK(ids []string) map[string]string {
	m := map[string]string{}
	for _, id := range ids {
		m[id] = "ok"
	}
	return m
}

// TestCloudTransientErrorsMany runs several requests under a 30% error rate
// on every action, filing again when the pre-flight look-up itself gave up.
func TestCloudTransientErrorsMany(t *testing.T) {
	t.Parallel()
	const requests = 6
	instances := emulator.Generate(3*requests, 29)
	w := newWorld(t, worldConfig{Instances: instances, Seed: 9})
	w.start()
	errs := countEmulatorErrors(w)
	w.emu.SetFaults(emulator.Fault{Code: "InternalError", Rate: 0.3}, emulator.Fault{Latency: 50 * time.Millisecond, Rate: 0.3})
	var ids []string
	refusals := 0
	for i := 0; i < requests; i++ {
		mine := instanceIDs(instances[3*i : 3*i+3])
		id := ""
		for id == "" {
			var refusal string
			if id, refusal = w.requestOrRefusal(mine); id == "" {
				if !strings.Contains(refusal, "Tencent Cloud") {
					t.Fatalf("request refused: %s", refusal)
				}
				refusals++
			}
		}
		approve(w, approver1, id)
		ids = append(ids, id)
	}
	for _, id := range ids {
		w.waitSettled(id)
	}
	w.emu.SetFaults()
	w.onEmulator(nil)
	for _, id := range ids {
		thread := w.threadOf(id)
		for _, run := range mustRuns(w, id) {
			rep, calls := reportFor(thread, run), w.emu.RebootCalls(run)
			if calls == 1 && !strings.HasPrefix(rep, "✅") || calls == 0 && !strings.HasPrefix(rep, "❌") || calls > 1 {
				t.Errorf("%s: %d reboots, report %q", run, calls, rep)
			}
		}
	}
	if n := w.emu.Calls("RebootInstances"); n > cloud.DefaultMaxAttempts*len(instances) {
		t.Errorf("RebootInstances requests = %d, more than %d attempts for each of %d instances", n, cloud.DefaultMaxAttempts, len(instances))
	}
	rep := w.checkWorld(ids, checkOptions{RebootOnce: true})
	logf(t, "30%% InternalError on every action, %d requests of 3 instances: outcomes %v, %d accepted reboots, %d filings refused by the pre-flight look-up; emulator requests: Describe %d, Reboot %d; injected errors %v",
		requests, rep.Outcomes, rep.Reboots, refusals, w.emu.Calls("DescribeInstances"), w.emu.Calls("RebootInstances"), errs.snapshot())
}

// mustRuns returns the instances of request id from its card's audit
// trail: the instances of its requested event.
func mustRuns(w *world, id string) []string {
	w.t.Helper()
	for _, e := range w.mustEvents() {
		if e.RequestID == id && e.Type == approval.EventRequested {
			return e.Instances
		}
	}
	w.t.Fatalf("no requested event for %s", id)
	return nil
}

// TestSlackFaults runs a request while Slack fails in various ways and
// checks that the card reaches its outcome once Slack answers again and
// that nothing is posted twice.
func TestSlackFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		short bool // runs under -short
		// inject runs before the approval; ready, when set, says when Slack
		// may answer again (the faults are then cleared).
		inject func(w *world)
		ready  func(w *world) bool
	}{
		{
			name:  "CardUpdateOutage",
			short: true,
			inject: func(w *world) {
				w.stub.Fail(slackstub.Fault{Method: "chat.update", Status: http.StatusServiceUnavailable, Count: 1 << 20})
			},
			ready: func(w *world) bool { return callsOf(w.stub, "chat.update") >= 8 },
		},
		{
			name:  "RateLimited",
			short: true,
			inject: func(w *world) {
				w.stub.Fail(slackstub.Fault{Method: "chat.update", Status: http.StatusTooManyRequests, RetryAfter: 1, Count: 2})
				w.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: http.StatusTooManyRequests, RetryAfter: 1, Count: 2})
				w.stub.Fail(slackstub.Fault{Method: "response_url", Status: http.StatusTooManyRequests, RetryAfter: 1, Count: 1})
			},
		},
		{
			name:  "ServerErrors",
			short: true,
			inject: func(w *world) {
				w.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: http.StatusInternalServerError, Count: 3})
				w.stub.Fail(slackstub.Fault{Method: "chat.update", Status: http.StatusBadGateway, Count: 3})
				w.stub.Fail(slackstub.Fault{Method: "response_url", Status: http.StatusBadGateway, Count: 2})
			},
		},
		{
			name:  "Slow",
			short: true,
			inject: func(w *world) {
				for _, m := range []string{"chat.postMessage", "chat.update", "response_url"} {
					w.stub.Fail(slackstub.Fault{Method: m, Delay: 2 * time.Second, Count: 2})
				}
			},
		},
		{
			// Longer than the bot's 15 s HTTP timeout: the calls are cut off
			// and tried again.
			name: "TimedOut",
			inject: func(w *world) {
				for _, m := range []string{"chat.update", "chat.postMessage", "response_url"} {
					w.stub.Fail(slackstub.Fault{Method: m, Delay: 20 * time.Second, Count: 1})
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && !tt.short {
				t.Skip("waits out Slack timeouts")
			}
			t.Parallel()
			instances := emulator.Generate(2, 31)
			ids := instanceIDs(instances)
			w := newWorld(t, worldConfig{Instances: instances})
			w.start()
			id := w.mustRequest(ids)
			tt.inject(w)
			d := approve(w, approver1, id)
			if tt.ready != nil {
				w.waitUntil("Slack to have failed for a while", func() bool { return tt.ready(w) })
				w.stub.ClearFaults()
			}
			if got := w.waitSettled(id); got != "Succeeded" {
				t.Errorf("%s ended %q, want Succeeded", id, got)
			}
			w.waitReply(d, "You approved "+id)
			if got := len(w.cards(id)); got != 1 {
				t.Errorf("%d cards for %s, want 1", got, id)
			}
			rep := w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
			logf(t, "slack fault %s: %v; Slack calls %v", tt.name, rep.Outcomes, methodCounts(w.stub))
		})
	}
}

// TestSlackCardPostOutage makes Slack refuse the card for a while: the
// request is filed, its card appears once Slack takes it, once.
func TestSlackCardPostOutage(t *testing.T) {
	t.Parallel()
	instances := emulator.Generate(2, 37)
	w := newWorld(t, worldConfig{Instances: instances, Env: map[string]string{"BOT_MIN_APPROVALS": "2"}})
	w.start()
	w.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: http.StatusServiceUnavailable, Count: 1 << 20})
	d := w.command(requester, strings.Join(instanceIDs(instances), " ")+" harness reboot")
	w.mustSend(d)
	id := requestIDPattern.FindString(w.waitReply(d, "is filed"))
	w.waitUntil("Slack to have refused the card a few times", func() bool { return callsOf(w.stub, "chat.postMessage") >= 6 })
	w.stub.ClearFaults()
	w.mustCard(id)
	// Two approvals: the first shows on the card once the bot has stored
	// where the card is (a click that comes before is
	// TestCrashApprovedBeforeCardStored's).
	finishTwoApprovals(t, w, id)
	if got := w.waitSettled(id); got != "Succeeded" {
		t.Errorf("%s ended %q, want Succeeded", id, got)
	}
	if got := len(w.cards(id)); got != 1 {
		t.Errorf("%d cards for %s, want 1", got, id)
	}
	w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
	logf(t, "card post outage: Slack calls %v", methodCounts(w.stub))
}

// TestSlackDownDoesNotHoldReboot approves a request while Slack refuses
// every thread message: the reboot must not wait for the bot to give up
// on Slack. By the time RebootInstances arrives, the start message may
// have been tried once (the Slack client's four tries), not retried for
// rounds on end; the reports follow once Slack answers again.
func TestSlackDownDoesNotHoldReboot(t *testing.T) {
	t.Parallel()
	instances := emulator.Generate(2, 59)
	ids := instanceIDs(instances)
	w := newWorld(t, worldConfig{Instances: instances})
	w.start()
	id := w.mustRequest(ids)
	var postsBeforeReboot atomic.Int64
	postsBeforeReboot.Store(-1)
	w.onEmulator(func(c emulator.Call) {
		if c.Action == "RebootInstances" && c.ErrorCode == "" {
			postsBeforeReboot.CompareAndSwap(-1, int64(callsOf(w.stub, "chat.postMessage")))
		}
	})
	w.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: http.StatusServiceUnavailable, Count: 1 << 20})
	approve(w, approver1, id)
	w.waitUntil("the reboot call", func() bool { return w.emu.RebootCalls(ids[0]) > 0 })
	w.stub.ClearFaults()
	w.onEmulator(nil)
	if n := postsBeforeReboot.Load(); n > 4 {
		t.Errorf("the bot tried the start message %d times before calling RebootInstances; a Slack outage holds the reboot back", n)
	}
	if got := w.waitSettled(id); got != "Succeeded" {
		t.Errorf("%s ended %q, want Succeeded", id, got)
	}
	w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
}

// TestSlackCardPostOutageOneRetryLoop keeps Slack failing every card post
// (each answer slowed a little) while the bot retries: its retries of one
// card must come one at a time, never several in flight at once, which
// is what a retry loop that starts more retry loops would show.
func TestSlackCardPostOutageOneRetryLoop(t *testing.T) {
	t.Parallel()
	instances := emulator.Generate(1, 53)
	w := newWorld(t, worldConfig{Instances: instances, Env: map[string]string{"BOT_MIN_APPROVALS": "2"}})
	w.start()
	var mu sync.Mutex
	ended, maxInFlight := 0, 0
	w.onSlack(func(c slackstub.Call) {
		if c.Method != "chat.postMessage" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		maxInFlight = max(maxInFlight, callsOf(w.stub, "chat.postMessage")-ended)
		ended++
	})
	w.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: http.StatusServiceUnavailable, Delay: 300 * time.Millisecond, Count: 1 << 20})
	d := w.command(requester, instanceIDs(instances)[0]+" harness reboot")
	w.mustSend(d)
	id := requestIDPattern.FindString(w.waitReply(d, "is filed"))
	// Three rounds of the engine's retries (four tries each): a loop
	// that starts another on each failure has several running by then.
	w.waitUntil("the bot to retry the card", func() bool { return callsOf(w.stub, "chat.postMessage") >= 12 })
	w.stub.ClearFaults()
	w.onSlack(nil)
	mu.Lock()
	if maxInFlight > 1 {
		t.Errorf("%d posts of one card were in flight at once; want them one at a time", maxInFlight)
	}
	mu.Unlock()
	w.mustCard(id)
	finishTwoApprovals(t, w, id)
	w.waitSettled(id)
	if got := len(w.cards(id)); got != 1 {
		t.Errorf("%d cards for %s, want 1", got, id)
	}
	w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
	logf(t, "card post outage, one retry loop: %d chat.postMessage calls while Slack failed, at most %d in flight", ended, maxInFlight)
}

func callsOf(s *slackstub.Server, method string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Method == method {
			n++
		}
	}
	return n
}

func methodCounts(s *slackstub.Server) map[string]int {
	m := map[string]int{}
	for _, c := range s.Calls() {
		m[c.Method]++
	}
	return m
}

// sendAll delivers d n times at once and fails unless each is answered 200.
func sendAll(w *world, d delivery, n int) {
	w.t.Helper()
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, _, err := w.send(d); err != nil || status != http.StatusOK {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		w.t.Fatalf("%d of %d deliveries of %s were not answered 200", bad.Load(), n, d.path)
	}
}

// TestDuplicateDeliveries delivers the same signed command and the same
// clicks several times, at once and later: each acts once.
func TestDuplicateDeliveries(t *testing.T) {
	t.Parallel()
	instances := emulator.Generate(2, 41)
	ids := instanceIDs(instances)
	w := newWorld(t, worldConfig{Instances: instances, Env: map[string]string{"BOT_MIN_APPROVALS": "2"}})
	w.start()

	cmd := w.command(requester, strings.Join(ids, " ")+" harness reboot")
	sendAll(w, cmd, 3)
	id := requestIDPattern.FindString(w.waitReply(cmd, "the card is in the channel"))
	w.mustSend(cmd)
	card := w.mustCard(id)

	first := w.click(approver1, bot.ActionApprove, id, card.TS)
	sendAll(w, first, 3)
	w.waitCard(id, "1 of 2 approvals", func(m slackstub.Message) bool { return strings.Contains(m.Text, "1 of 2 approvals") })
	w.mustSend(first)

	second := w.click(approver2, bot.ActionApprove, id, card.TS)
	sendAll(w, second, 3)
	if got := w.waitSettled(id); got != "Succeeded" {
		t.Errorf("%s ended %q, want Succeeded", id, got)
	}
	w.mustSend(second)
	w.mustSend(cmd)
	w.waitReply(second, "the reboot starts now")

	events := w.mustEvents()
	counts := map[approval.EventType]int{}
	for _, e := range events {
		counts[e.Type]++
	}
	for typ, want := range map[approval.EventType]int{
		approval.EventRequested: 1, approval.EventRejected: 0, approval.EventApproved: 2,
		approval.EventApprovalRefused: 0, approval.EventExecuting: 1, approval.EventCompleted: 1,
	} {
		if got := counts[typ]; got != want {
			t.Errorf("%s events = %d, want %d", typ, got, want)
		}
	}
	if got := len(w.cards(id)); got != 1 {
		t.Errorf("%d cards, want 1", got)
	}
	rep := w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
	logf(t, "duplicates: command delivered 5 times, each click 5 times: %v, %d accepted reboots, %d audit events", rep.Outcomes, rep.Reboots, rep.Events)
}

// TestClicksOnUnknownRequests clicks the buttons of requests that do not
// exist: each click is answered, explained and audited, and nothing else
// happens.
func TestClicksOnUnknownRequests(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldConfig{Instances: emulator.Generate(1, 43)})
	w.start()
	tests := []struct {
		user, action, requestID, want string
	}{
		{approver1, bot.ActionApprove, "R-999", "There is no request R-999"},
		{approver2, bot.ActionDeny, "R-1000", "There is no request R-1000"},
		{approver1, bot.ActionApprove, "R-0", "There is no request that request"},
		{outsider, bot.ActionApprove, "not-a-request", "There is no request that request"},
	}
	for _, tt := range tests {
		d := w.click(tt.user, tt.action, tt.requestID, "1800000000.999999")
		w.mustSend(d)
		w.waitReply(d, tt.want)
		w.mustSend(d) // again: answered as before, audited once
	}
	events := w.mustEvents()
	if got := len(events); got != len(tests) {
		t.Errorf("%d audit events, want %d (one approval_refused per click)", got, len(tests))
	}
	for _, e := range events {
		if e.Type != approval.EventApprovalRefused {
			t.Errorf("unexpected %s event", e.Type)
		}
	}
	if n := len(w.stub.Messages()); n != 0 {
		t.Errorf("%d messages posted in the channel, want none", n)
	}
	if n := w.emu.Calls(""); n != 0 {
		t.Errorf("%d cloud calls, want none", n)
	}
	w.checkWorld(nil, checkOptions{RebootOnce: true})
}

// TestSignatureRefused sends forged and damaged deliveries to the real
// binary: each is answered 401 and nothing is recorded or done.
func TestSignatureRefused(t *testing.T) {
	t.Parallel()
	instances := emulator.Generate(2, 47)
	w := newWorld(t, worldConfig{Instances: instances})
	w.start()
	// A real pending request the forged clicks try to approve.
	id := w.mustRequest(instanceIDs(instances[:1]))
	card := w.mustCard(id)
	before := w.auditJSONL()
	slackCalls, cloudCalls := len(w.stub.Calls()), w.emu.Calls("")

	deliveries := []delivery{
		w.command(requester, instanceIDs(instances[1:])[0]+" forged reboot"),
		w.click(approver1, bot.ActionApprove, id, card.TS),
	}
	now := time.Now().Unix()
	sign := func(ts int64, body string) (string, string) {
		s := strconv.FormatInt(ts, 10)
		return s, bot.Sign(w.secret, s, []byte(body))
	}
	tests := []struct {
		name   string
		header func(body string) http.Header
		body   func(body string) string
	}{
		{"Missing", func(string) http.Header { return http.Header{} }, nil},
		{"NoSignature", func(string) http.Header { return hdr(strconv.FormatInt(now, 10), "") }, nil},
		{"NoTimestamp", func(b string) http.Header { _, sig := sign(now, b); return hdr("", sig) }, nil},
		{"MalformedSignature", func(string) http.Header { return hdr(strconv.FormatInt(now, 10), "v0=not-hex") }, nil},
		{"ShortSignature", func(string) http.Header { return hdr(strconv.FormatInt(now, 10), "v0=abcd") }, nil},
		{"WrongVersion", func(b string) http.Header {
			ts, sig := sign(now, b)
			return hdr(ts, "v1="+strings.TrimPrefix(sig, "v0="))
		}, nil},
		{"MalformedTimestamp", func(b string) http.Header { _, sig := sign(now, b); return hdr("yesterday", sig) }, nil},
		{"Stale", func(b string) http.Header { return hdr(sign(now-6*60, b)) }, nil},
		{"Future", func(b string) http.Header { return hdr(sign(now+6*60, b)) }, nil},
		{"BodyAltered", func(b string) http.Header { return hdr(sign(now, b)) }, func(b string) string { return b + "&text=ins-00000000+injected" }},
		{"WrongSecret", func(b string) http.Header {
			ts := strconv.FormatInt(now, 10)
			return hdr(ts, bot.Sign("not-the-secret", ts, []byte(b)))
		}, nil},
	}
	for _, d := range deliveries {
		for _, tt := range tests {
			t.Run(strings.TrimPrefix(d.path, "/slack/")+"/"+tt.name, func(t *testing.T) {
				body := d.form.Encode()
				h := tt.header(body)
				if tt.body != nil {
					body = tt.body(body)
				}
				status, _, err := w.post(d.path, body, h)
				if err != nil {
					t.Fatal(err)
				}
				if status != http.StatusUnauthorized {
					t.Errorf("status = %d, want 401", status)
				}
			})
		}
	}
	if after := w.auditJSONL(); after != before {
		t.Errorf("the audit log changed after refused deliveries:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got := len(w.stub.Calls()); got != slackCalls {
		t.Errorf("Slack calls went from %d to %d after refused deliveries", slackCalls, got)
	}
	if got := w.emu.Calls(""); got != cloudCalls {
		t.Errorf("cloud calls went from %d to %d after refused deliveries", cloudCalls, got)
	}
	if c, _ := w.stub.Card(card.TS); cardOutcome(c) != "Pending" || !strings.Contains(c.Text, "0 of 1 approvals") {
		t.Errorf("card after forged clicks: %q", c.Text)
	}
	// The same deliveries properly signed still work: the refusals were
	// about the signatures, not the content.
	w.mustSend(deliveries[1])
	if got := w.waitSettled(id); got != "Succeeded" {
		t.Errorf("%s ended %q after a properly signed approval", id, got)
	}
	w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
	logf(t, "signatures: %d forged or damaged deliveries refused with 401, audit log unchanged", len(tests)*len(deliveries))
}

func hdr(ts, sig string) http.Header {
	h := http.Header{}
	if ts != "" {
		h.Set(bot.HeaderTimestamp, ts)
	}
	if sig != "" {
		h.Set(bot.HeaderSignature, sig)
	}
	return h
}
