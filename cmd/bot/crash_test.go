//go:build e2e

package main

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
)

// crashRounds is how many requests each kill point kills the bot for: 1
// with -short, 2 by default, REBOOTBOT_CRASH_ROUNDS to try more.
func crashRounds(t *testing.T) int {
	if v := os.Getenv("REBOOTBOT_CRASH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("REBOOTBOT_CRASH_ROUNDS=%q is not a positive number", v)
		}
		return n
	}
	if testing.Short() {
		return 1
	}
	return 2
}

// killPoint is a moment of a request's life at which the bot dies.
type killPoint struct {
	name           string
	minApprovals   int           // 0: 1
	rebootDuration time.Duration // 0: the harness's 500ms
	// noHistory refuses the bot the channel history, so it cannot tell
	// whether a post whose answer it lost has landed.
	noHistory bool
	// crash files a request for ids, drives it to the kill point and
	// kills the bot there; it returns the request ID.
	crash func(t *testing.T, w *world, ids []string) string
	// finish, after the restart, gives the request whatever it still needs
	// to end (approvals); nil: nothing.
	finish func(t *testing.T, w *world, id string)
}

// crashAtCardPost files a request and kills the bot the instant Slack
// takes its card, before the bot has Slack's answer.
func crashAtCardPost(t *testing.T, w *world, ids []string) string {
	var once sync.Once
	posted := make(chan string, 1)
	w.onSlack(func(c slackstub.Call) {
		if c.Method == "chat.postMessage" && c.Form.Get("thread_ts") == "" {
			once.Do(func() {
				w.killNow()
				posted <- requestIDPattern.FindString(c.Form.Get("text"))
			})
		}
	})
	defer w.onSlack(nil)
	// The bot answers the command at once and posts the card after, but on
	// a busy machine the post can win.
	w.sendUntilKilled(w.command(requester, strings.Join(ids, " ")+" harness reboot"))
	w.awaitDeath()
	return <-posted
}

// approve has approver click Approve on request id's latest card and fails
// unless the click is answered 200.
func approve(w *world, approver, id string) delivery {
	w.t.Helper()
	d := w.click(approver, bot.ActionApprove, id, w.mustCard(id).TS)
	w.mustSend(d)
	return d
}

// approveUntilKilled approves request id on its card while a hook is set
// to kill the bot at a point the approval sets off (see sendUntilKilled).
func approveUntilKilled(w *world, approver, id string) {
	w.t.Helper()
	w.sendUntilKilled(w.click(approver, bot.ActionApprove, id, w.mustCard(id).TS))
}

// finishApproved approves request id once after the restart.
func finishApproved(t *testing.T, w *world, id string) { approve(w, approver1, id) }

// finishTwoApprovals approves request id, waits for its card to show it,
// and gives the second approval.
func finishTwoApprovals(t *testing.T, w *world, id string) {
	approve(w, approver1, id)
	w.waitCard(id, "1 of 2 approvals", func(m slackstub.Message) bool { return strings.Contains(m.Text, "1 of 2 approvals") })
	approve(w, approver2, id)
}

// TestCrashKillPoints kills the bot with SIGKILL at each point of a
// request's life, restarts it on the same database and checks that every
// request still ends right: terminal, its card showing the outcome, each
// instance rebooted exactly once, every step audited, the chain intact.
func TestCrashKillPoints(t *testing.T) {
	t.Parallel()
	points := []killPoint{
		{
			// Slack took the card but the bot never saw the answer: the
			// restarted bot finds it in the channel's history. Two
			// approvals, so that the first shows on the card before the
			// second starts the reboot (the click that comes before the
			// card is found is TestCrashApprovedBeforeCardStored's).
			name:         "CardPostedAnswerLost",
			minApprovals: 2,
			crash:        crashAtCardPost,
			finish: func(t *testing.T, w *world, id string) {
				finishTwoApprovals(t, w, id)
				w.waitSettled(id)
				if got := len(w.cards(id)); got != 1 {
					t.Errorf("%s has %d cards, want 1", id, got)
				}
			},
		},
		{
			// The same without history: the card is posted again, once
			// (the documented limit); the stored copy reaches the outcome.
			name:         "CardPostedAnswerLostNoHistory",
			minApprovals: 2,
			noHistory:    true,
			crash:        crashAtCardPost,
			finish: func(t *testing.T, w *world, id string) {
				if !w.stub.WaitFor(waitLong, func() bool { return len(w.cards(id)) == 2 }) {
					t.Fatalf("%s: the restarted bot did not post its card again (%d cards)", id, len(w.cards(id)))
				}
				finishTwoApprovals(t, w, id)
			},
		},
		{
			// The card's place is stored and the requester told.
			name: "CardStored",
			crash: func(t *testing.T, w *world, ids []string) string {
				var once sync.Once
				w.onSlack(func(c slackstub.Call) {
					if c.Method == "response_url" && strings.Contains(responseText(c), "the card is in the channel") {
						once.Do(w.killNow)
					}
				})
				defer w.onSlack(nil)
				d := w.command(requester, strings.Join(ids, " ")+" harness reboot")
				w.sendUntilKilled(d)
				w.awaitDeath()
				return requestIDPattern.FindString(w.waitReply(d, "the card is in the channel"))
			},
			finish: finishApproved,
		},
		{
			// The last approval was answered 200: it must survive. Slack
			// holds the first thread post back, so the bot dies before
			// anything of the execution reached Slack (the instant Slack
			// takes a thread post is TestCrashThreadPostAnswerLost).
			name: "ApprovalStored",
			crash: func(t *testing.T, w *world, ids []string) string {
				id := w.mustRequest(ids)
				w.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Delay: time.Minute})
				defer w.stub.ClearFaults()
				approve(w, approver1, id)
				w.kill()
				return id
			},
		},
		{
			// RebootInstances reached the emulator and was carried out, but
			// its answer is held back: the bot cannot know it happened.
			name: "RebootReachedCloud",
			crash: func(t *testing.T, w *world, ids []string) string {
				id := w.mustRequest(ids)
				w.emu.SetFaults(emulator.Fault{Action: "RebootInstances", Latency: time.Minute})
				defer w.emu.SetFaults()
				approve(w, approver1, id)
				w.waitUntil("the reboot call to reach the emulator", func() bool { return w.emu.RebootCalls(ids[0]) > 0 })
				w.kill()
				return id
			},
		},
		{
			// RebootInstances was answered; the bot may or may not have
			// stored the answer.
			name: "RebootAnswered",
			crash: func(t *testing.T, w *world, ids []string) string {
				id := w.mustRequest(ids)
				var once sync.Once
				w.onEmulator(func(c emulator.Call) {
					if c.Action == "RebootInstances" && c.ErrorCode == "" {
						once.Do(w.killNow)
					}
				})
				defer w.onEmulator(nil)
				approveUntilKilled(w, approver1, id)
				w.awaitDeath()
				return id
			},
		},
		{
			// The bot is polling for the instances to come back.
			name:           "WaitingForCompletion",
			rebootDuration: 1500 * time.Millisecond,
			crash: func(t *testing.T, w *world, ids []string) string {
				id := w.mustRequest(ids)
				var mu sync.Mutex
				rebooted := false
				var once sync.Once
				w.onEmulator(func(c emulator.Call) {
					mu.Lock()
					defer mu.Unlock()
					switch {
					case c.Action == "RebootInstances" && c.ErrorCode == "":
						rebooted = true
					case c.Action == "DescribeInstances" && rebooted:
						once.Do(w.killNow)
					}
				})
				defer w.onEmulator(nil)
				approveUntilKilled(w, approver1, id)
				w.awaitDeath()
				return id
			},
		},
		{
			// One of two approvals is in; the second comes after the
			// restart, and the first is still counted.
			name:         "SecondApprovalPending",
			minApprovals: 2,
			crash: func(t *testing.T, w *world, ids []string) string {
				id := w.mustRequest(ids)
				approve(w, approver1, id)
				w.kill()
				return id
			},
			finish: func(t *testing.T, w *world, id string) {
				w.waitCard(id, "1 of 2 approvals", func(m slackstub.Message) bool {
					return cardOutcome(m) == "Pending" && strings.Contains(m.Text, "1 of 2 approvals")
				})
				again := approve(w, approver1, id)
				w.waitReply(again, "already approved")
				approve(w, approver2, id)
			},
		},
	}
	rounds := crashRounds(t)
	for _, kp := range points {
		t.Run(kp.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			if kp.minApprovals > 0 {
				env["BOT_MIN_APPROVALS"] = strconv.Itoa(kp.minApprovals)
			}
			instances := emulator.Generate(2*rounds, int64(len(kp.name)))
			w := newWorld(t, worldConfig{Instances: instances, RebootDuration: kp.rebootDuration, Env: env})
			if kp.noHistory {
				w.stub.RefuseHistory()
			}
			w.start()
			var ids []string
			for round := 0; round < rounds; round++ {
				mine := instanceIDs(instances[2*round : 2*round+2])
				id := kp.crash(t, w, mine)
				if id == "" {
					t.Fatalf("round %d: no request ID", round+1)
				}
				ids = append(ids, id)
				w.start()
				if kp.finish != nil {
					kp.finish(t, w, id)
				}
				if got := w.waitSettled(id); got != "Succeeded" {
					t.Errorf("round %d: %s ended %q, want Succeeded", round+1, id, got)
				}
				for _, in := range mine {
					if got := w.emu.RebootCalls(in); got != 1 {
						t.Errorf("round %d: %s received %d accepted reboot calls, want 1", round+1, in, got)
					}
				}
			}
			opt := checkOptions{RebootOnce: true}
			if kp.noHistory {
				opt.KilledDuring = map[string]bool{}
				for _, id := range ids {
					opt.KilledDuring[id] = true
				}
			}
			rep := w.checkWorld(ids, opt)
			logf(t, "kill point %s: %d SIGKILLs, %d requests %v, %d accepted reboots, %d cards posted twice, %d audit events",
				kp.name, rounds, rep.Requests, rep.Outcomes, rep.Reboots, rep.OrphanCards, rep.Events)
		})
	}
}

// TestCrashTermDrains sends SIGTERM while a reboot is in flight: the bot
// exits 0 within its drain time, and the next start finishes the request
// without rebooting anything twice.
func TestCrashTermDrains(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		long           bool // waits out the whole drain time; skipped under -short
		rebootDuration time.Duration
		fault          *emulator.Fault
		slackDown      bool // Slack fails every thread post until the restart
		ready          func(w *world, ids []string) func() bool
	}{
		{
			name:           "WhileWaiting",
			rebootDuration: 2 * time.Second,
			ready: func(w *world, ids []string) func() bool {
				var mu sync.Mutex
				rebooted, polled := false, false
				w.onEmulator(func(c emulator.Call) {
					mu.Lock()
					defer mu.Unlock()
					switch {
					case c.Action == "RebootInstances" && c.ErrorCode == "":
						rebooted = true
					case c.Action == "DescribeInstances" && rebooted:
						polled = true
					}
				})
				return func() bool { mu.Lock(); defer mu.Unlock(); return polled }
			},
		},
		{
			name:  "DuringRebootCall",
			fault: &emulator.Fault{Action: "RebootInstances", Latency: 3 * time.Second},
			ready: func(w *world, ids []string) func() bool {
				return func() bool { return w.emu.RebootCalls(ids[0]) > 0 }
			},
		},
		{
			// The reports cannot be posted: the drain time runs out, the
			// bot exits anyway, and the next start posts them.
			name:      "DrainTimeRunsOut",
			long:      true,
			slackDown: true,
			ready: func(w *world, ids []string) func() bool {
				return func() bool { return w.emu.RebootCalls(ids[0]) > 0 && callsOf(w.stub, "chat.postMessage") > 1 }
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.long && testing.Short() {
				t.Skip("waits out the bot's drain time")
			}
			t.Parallel()
			instances := emulator.Generate(2, 7)
			ids := instanceIDs(instances)
			w := newWorld(t, worldConfig{Instances: instances, RebootDuration: tt.rebootDuration})
			w.start()
			id := w.mustRequest(ids)
			ready := tt.ready(w, ids)
			if tt.fault != nil {
				w.emu.SetFaults(*tt.fault)
			}
			if tt.slackDown {
				w.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: http.StatusServiceUnavailable, Count: 1 << 20})
			}
			approve(w, approver1, id)
			w.waitUntil("the reboot to be under way", ready)
			code, took := w.term()
			w.onEmulator(nil)
			w.emu.SetFaults()
			w.stub.ClearFaults()
			if code != 0 {
				t.Errorf("exit code after SIGTERM = %d, want 0", code)
			}
			w.start()
			if got := w.waitSettled(id); got != "Succeeded" {
				t.Errorf("%s ended %q, want Succeeded", id, got)
			}
			rep := w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
			logf(t, "SIGTERM %s: exited %d after %s; %v, %d accepted reboots", tt.name, code, took.Round(10*time.Millisecond), rep.Outcomes, rep.Reboots)
		})
	}
}

// TestCrashThreadPostAnswerLost kills the bot at the instant Slack takes
// each kind of thread message (the start, an instance's result, the
// summary), before the bot has the answer. The Notifier contract says a
// message posted again after a restart must not add a second one: with
// the channel history readable, each must appear once in the thread;
// without it, at most twice (a duplicate rather than a lost message).
func TestCrashThreadPostAnswerLost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		prefix string // of the thread message to die on
	}{
		{"Start", "Rebooting "},
		{"InstanceReport", "✅"},
		{"Summary", "*Succeeded*"},
	}
	for _, history := range []bool{true, false} {
		for _, tt := range tests {
			name := tt.name
			if !history {
				name += "NoHistory"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				instances := emulator.Generate(1, 11)
				w := newWorld(t, worldConfig{Instances: instances})
				if !history {
					w.stub.RefuseHistory()
				}
				w.start()
				id := w.mustRequest(instanceIDs(instances))
				var once sync.Once
				w.onSlack(func(c slackstub.Call) {
					if c.Method == "chat.postMessage" && c.Form.Get("thread_ts") != "" && strings.HasPrefix(c.Form.Get("text"), tt.prefix) {
						once.Do(w.killNow)
					}
				})
				approveUntilKilled(w, approver1, id)
				w.awaitDeath()
				w.onSlack(nil)
				w.start()
				if got := w.waitSettled(id); got != "Succeeded" {
					t.Errorf("%s ended %q, want Succeeded", id, got)
				}
				rep := w.checkWorld([]string{id}, checkOptions{RebootOnce: true, KilledDuring: map[string]bool{id: !history}})
				logf(t, "thread post answer lost at %s, history %v: %d messages posted again", tt.name, history, rep.Reposts)
			})
		}
	}
}

// TestCrashExpiryWhileDown kills the bot with one of two approvals in and
// keeps it down past the request's expiry: the audit CLI works on the
// file meanwhile (the admin file left behind names a dead bot), and the
// next start expires the request by itself and refuses a late approval.
func TestCrashExpiryWhileDown(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	instances := emulator.Generate(2, 13)
	w := newWorld(t, worldConfig{Instances: instances, Env: map[string]string{"BOT_MIN_APPROVALS": "2", "BOT_REQUEST_TTL": ttl.String()}})
	w.start()
	filed := time.Now()
	id := w.mustRequest(instanceIDs(instances))
	approve(w, approver1, id)
	w.kill()

	w.mustVerify()
	approved := 0
	for _, e := range w.mustEvents() {
		if e.RequestID == id && e.Type == approval.EventApproved {
			approved++
		}
	}
	if approved != 1 {
		t.Errorf("approved events read from the file while the bot is down = %d, want 1", approved)
	}
	w.waitUntil("the request's expiry to pass", func() bool { return time.Since(filed) > ttl })

	w.start()
	if got := w.waitSettled(id); got != "Expired" {
		t.Errorf("%s ended %q, want Expired", id, got)
	}
	late := approve(w, approver2, id)
	w.waitReply(late, "nothing was done")
	w.mustVerify() // through the restarted bot's admin endpoint
	rep := w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
	if rep.Reboots != 0 {
		t.Errorf("%d reboots of an expired request", rep.Reboots)
	}
}

// TestConcurrentLastApprovals has three approvers click at once on a
// request that needs two: it executes once.
func TestConcurrentLastApprovals(t *testing.T) {
	t.Parallel()
	instances := emulator.Generate(2, 17)
	w := newWorld(t, worldConfig{Instances: instances, Env: map[string]string{"BOT_MIN_APPROVALS": "2"}})
	w.start()
	id := w.mustRequest(instanceIDs(instances))
	card := w.mustCard(id)
	var wg sync.WaitGroup
	for _, a := range []string{approver1, approver2, approver3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, body, err := w.send(w.click(a, bot.ActionApprove, id, card.TS)); err != nil || status != 200 {
				t.Errorf("%s's click: %d %s %v", a, status, body, err)
			}
		}()
	}
	wg.Wait()
	if got := w.waitSettled(id); got != "Succeeded" {
		t.Errorf("%s ended %q, want Succeeded", id, got)
	}
	counts := map[approval.EventType]int{}
	for _, e := range w.mustEvents() {
		counts[e.Type]++
	}
	if counts[approval.EventApproved] != 2 || counts[approval.EventApprovalRefused] != 1 || counts[approval.EventExecuting] != 1 {
		t.Errorf("events %v; want 2 approved, 1 approval_refused, 1 executing", counts)
	}
	w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
}

// TestCrashApprovedBeforeCardStored: the bot dies the instant Slack takes
// a card, and comes back while Slack is failing, so it can neither find
// nor repost the card. People can still click the card in the channel:
// the request is approved and the instances reboot. Once Slack answers
// again, the card must show the outcome and the thread the results: the
// start, each instance's result and the summary.
func TestCrashApprovedBeforeCardStored(t *testing.T) {
	t.Parallel()
	instances := emulator.Generate(2, 19)
	ids := instanceIDs(instances)
	w := newWorld(t, worldConfig{Instances: instances})
	w.start()
	id := crashAtCardPost(t, w, ids)
	card := w.mustCard(id)
	w.stub.Fail(slackstub.Fault{Method: "conversations.history", Status: http.StatusServiceUnavailable, Count: 1 << 20})
	w.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: http.StatusServiceUnavailable, Count: 1 << 20})
	w.start()
	w.waitUntil("the restarted bot to look for the card", func() bool { return callsOf(w.stub, "conversations.history")+callsOf(w.stub, "chat.postMessage") > 1 })
	w.mustSend(w.click(approver1, bot.ActionApprove, id, card.TS))
	w.waitUntil("the request to complete", func() bool {
		out, _ := w.cli("audit", "list", "--request", id, "--format", "jsonl")
		return strings.Contains(out, `"type":"completed"`)
	})
	// One whole attempt to find the card fails (the Slack client tries 4
	// times) before Slack answers again.
	w.waitUntil("a failed look for the card", func() bool { return callsOf(w.stub, "conversations.history") >= 4 })
	w.stub.ClearFaults()
	if got := w.waitSettled(id); got != "Succeeded" {
		t.Errorf("%s ended %q, want Succeeded", id, got)
	}
	w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
}

// TestCrashApprovalWhileCardUnknown: after a crash at the card's post, the
// restarted bot looks for the card in the channel's history; an approval
// that arrives while it looks must still show on the card once it is found.
func TestCrashApprovalWhileCardUnknown(t *testing.T) {
	t.Parallel()
	instances := emulator.Generate(2, 21)
	w := newWorld(t, worldConfig{Instances: instances, Env: map[string]string{"BOT_MIN_APPROVALS": "2"}})
	w.start()
	id := crashAtCardPost(t, w, instanceIDs(instances))
	card := w.mustCard(id)
	w.stub.Fail(slackstub.Fault{Method: "conversations.history", Delay: 2 * time.Second})
	w.start()
	w.waitUntil("the restarted bot to look for the card", func() bool { return callsOf(w.stub, "conversations.history") > 0 })
	w.mustSend(w.click(approver1, bot.ActionApprove, id, card.TS))
	w.waitCard(id, "1 of 2 approvals", func(m slackstub.Message) bool { return strings.Contains(m.Text, "1 of 2 approvals") })
	approve(w, approver2, id)
	if got := w.waitSettled(id); got != "Succeeded" {
		t.Errorf("%s ended %q, want Succeeded", id, got)
	}
	w.checkWorld([]string{id}, checkOptions{RebootOnce: true})
}
