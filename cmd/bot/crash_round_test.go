//go:build e2e

package main

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"rebootbot/bot"
	"rebootbot/cloud/emulator"
)

// approveAll clicks Approve on every request at once, as several approvers
// would, and fails unless each click is answered 200.
func approveAll(t testing.TB, w *world, ids []string) {
	t.Helper()
	var wg sync.WaitGroup
	status := make([]int, len(ids))
	for i, id := range ids {
		d := w.click(approver1, bot.ActionApprove, id, w.mustCard(id).TS)
		wg.Go(func() { status[i], _, _ = w.send(d) })
	}
	wg.Wait()
	for i, s := range status {
		if s != http.StatusOK {
			t.Fatalf("approving %s was answered %d", ids[i], s)
		}
	}
}

// budgetCalls is how many RebootInstances calls the bot lets start within
// one second: once they are spent, intents wait for the next call and
// share it.
const budgetCalls = 10

// sharedRoundKill is where TestCrashThreeRequestsInOneRound kills the bot.
type sharedRoundKill int

const (
	// killBeforeCarried: the three intents are stored and the shared call
	// has reached Tencent, which refuses it as a whole (one of its
	// instances stopped after the look): nothing is rebooted, and the bot
	// dies before it hears so.
	killBeforeCarried sharedRoundKill = iota
	// killAnswerUnstored: Tencent carried the shared call out and
	// answered; the bot dies before the answer reaches it, so no result
	// is stored.
	killAnswerUnstored
)

func (k sharedRoundKill) String() string {
	if k == killBeforeCarried {
		return "intents stored, call not carried out"
	}
	return "call answered, result not stored"
}

// TestCrashThreeRequestsInOneRound kills the bot inside a RebootInstances
// call that carries three requests approved together, at both ends of the
// call, three times each.
//
// Whether three requests share a call depends on when their intents reach
// the dispatcher: with budget left, the first goes out at once. So the
// round is arranged: the look-ups before the three requests' intents are
// held by the emulator, an unrelated request of ten instances spends the
// second's budget of ten calls (Tencent refuses its instances one call at
// a time, each refusal naming the instance, so isolation makes exactly ten
// calls), and only then are the look-ups answered. The three intents are
// stored together and find the budget spent; they wait for the next call
// and ride it together, which the emulator's record of that call asserts.
// After each restart every one of the three requests must end Succeeded
// with its instance rebooted exactly once: nothing rebooted twice, nothing
// lost.
func TestCrashThreeRequestsInOneRound(t *testing.T) {
	t.Parallel()
	kills := []sharedRoundKill{killBeforeCarried, killAnswerUnstored, killBeforeCarried, killAnswerUnstored, killBeforeCarried, killAnswerUnstored}
	const perRound = 3 + budgetCalls
	instances := emulator.Generate(perRound*len(kills), 3303)
	w := newWorld(t, worldConfig{Instances: instances, RebootDuration: 200 * time.Millisecond})
	w.start()
	var all []string
	var waits []time.Duration
	killed := map[string]bool{}
	for n, kill := range kills {
		round := instances[n*perRound : (n+1)*perRound]
		ids, waited := w.sharedRound(n+1, kill, instanceIDs(round[:3]), instanceIDs(round[3:]))
		waits = append(waits, waited.Round(time.Millisecond))
		all = append(all, ids...)
		for _, id := range ids {
			killed[id] = true
		}
	}
	rep := w.checkWorld(all, checkOptions{RebootOnce: true, KilledDuring: killed})
	logf(t, "three requests in one call, killed %d times (%d at each end of the call); from the look-ups' answers to the shared call %v; %d requests %v, %d accepted reboots, %d thread messages posted again, %d audit events",
		len(kills), len(kills)/2, waits, rep.Requests, rep.Outcomes, rep.Reboots, rep.Reposts, rep.Events)
}

// sharedRound files three one-instance requests on targets and an
// unrelated one on spenders, has the three ride one RebootInstances call,
// kills the bot at kill, restarts it and waits until every request
// settled. It returns the four requests, the unrelated one last, and how
// long the three waited from their look-ups' answers to the shared call.
func (w *world) sharedRound(n int, kill sharedRoundKill, targets, spenders []string) ([]string, time.Duration) {
	t := w.t
	t.Helper()
	if len(spenders) != budgetCalls {
		t.Fatalf("round %d: %d instances to spend the budget with, want %d", n, len(spenders), budgetCalls)
	}
	var ids []string
	for _, in := range targets {
		ids = append(ids, w.mustRequest([]string{in}))
	}
	spender := w.mustRequest(spenders)

	spendCode := emulator.StateErrorCode(emulator.StateStopped)
	var (
		mu       sync.Mutex
		held     = map[string]bool{} // targets whose look-up is held
		spent    int                 // the spender's refused calls
		carried  []emulator.Call     // calls carrying a target
		sharedAt time.Time           // when the first of them was answered
		hold     = make(chan struct{})
		once     sync.Once
	)
	release := sync.OnceFunc(func() { close(hold) })
	p := w.current()
	w.onEmulator(func(c emulator.Call) {
		switch {
		case c.Action == "DescribeInstances" && overlaps(c.InstanceIDs, targets):
			mu.Lock()
			for _, id := range c.InstanceIDs {
				held[id] = true
			}
			mu.Unlock()
			<-hold
		case c.Action == "RebootInstances" && overlaps(c.InstanceIDs, targets):
			mu.Lock()
			carried = append(carried, c)
			if sharedAt.IsZero() {
				sharedAt = time.Now()
			}
			mu.Unlock()
			// The answer is written but not sent until this returns: the
			// bot dies without it.
			once.Do(func() {
				p.cmd.Process.Kill()
				select {
				case <-p.done:
				case <-time.After(waitLong):
				}
			})
		case c.Action == "RebootInstances" && c.ErrorCode == spendCode && len(c.InstanceIDs) == 0:
			// An injected refusal: the emulator answers it before it reads
			// the call's instances.
			mu.Lock()
			spent++
			mu.Unlock()
		}
	})
	defer release()

	// 1. The three are approved; each execution's look before its intent
	// is held.
	approveAll(t, w, ids)
	w.waitUntil(fmt.Sprintf("round %d: the look-ups of %v to be held", n, targets), func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range targets {
			if !held[id] {
				return false
			}
		}
		return true
	})

	// 2. The unrelated request spends the budget: Tencent refuses each of
	// its calls naming one instance, as it names an instance in the wrong
	// state, and isolation calls again without it.
	var faults []emulator.Fault
	for i, id := range slices.Sorted(slices.Values(spenders)) {
		faults = append(faults, emulator.Fault{Action: "RebootInstances", Code: spendCode, Count: i + 1,
			Message: fmt.Sprintf("The instance %s is STOPPED; RebootInstances needs RUNNING.", id)})
	}
	w.emu.SetFaults(faults...)
	approveAll(t, w, []string{spender})
	w.waitUntil(fmt.Sprintf("round %d: %d refused calls of %s", n, budgetCalls, spender), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return spent == budgetCalls
	})

	// 3. The look-ups are answered; the three intents are stored and wait
	// for the next call together.
	// Before the kill that precedes the call, Tencent refuses the shared
	// call as a whole, because one of its instances stopped after the
	// look: nothing is rebooted.
	w.emu.SetFaults()
	if kill == killBeforeCarried {
		mustSetState(t, w.emu, targets[0], emulator.StateStopped)
	}
	released := time.Now()
	release()
	w.awaitDeath()
	w.onEmulator(nil)
	if kill == killBeforeCarried {
		mustSetState(t, w.emu, targets[0], emulator.StateRunning)
	}

	mu.Lock()
	waited := sharedAt.Sub(released)
	if len(carried) != 1 || !sameSet(carried[0].InstanceIDs, targets) {
		t.Errorf("round %d (%s): the calls carrying %v were %v, want one call carrying all three", n, kill, targets, callIDs(carried))
	}
	if wantCode := map[sharedRoundKill]string{killBeforeCarried: spendCode}[kill]; len(carried) > 0 && carried[0].ErrorCode != wantCode {
		t.Errorf("round %d (%s): the shared call was answered %q, want %q", n, kill, carried[0].ErrorCode, wantCode)
	}
	mu.Unlock()
	want := 0
	if kill == killAnswerUnstored {
		want = 1
	}
	for _, in := range targets {
		if got := w.emu.RebootCalls(in); got != want {
			t.Errorf("round %d (%s): %s was rebooted %d times at the kill, want %d", n, kill, in, got, want)
		}
	}

	// 4. The next start reconciles: it calls again only what was not
	// rebooted, and waits for the rest.
	w.start()
	for _, id := range ids {
		if got := w.waitSettled(id); got != "Succeeded" {
			t.Errorf("round %d (%s): %s ended %q, want Succeeded", n, kill, id, got)
		}
	}
	w.waitSettled(spender)
	for _, in := range targets {
		if got := w.emu.RebootCalls(in); got != 1 {
			t.Errorf("round %d (%s): %s received %d accepted reboot calls, want 1", n, kill, in, got)
		}
	}
	return append(ids, spender), waited
}

func mustSetState(t testing.TB, emu *emulator.Emulator, id, state string) {
	t.Helper()
	if err := emu.SetState(id, state); err != nil {
		t.Fatal(err)
	}
}

// overlaps reports whether a and b have an element in common.
func overlaps(a, b []string) bool {
	return slices.ContainsFunc(a, func(s string) bool { return slices.Contains(b, s) })
}

// sameSet reports whether a and b hold the same elements.
func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// callIDs lists the instances of each call.
func callIDs(calls []emulator.Call) [][]string {
	out := make([][]string, len(calls))
	for i, c := range calls {
		out[i] = c.InstanceIDs
	}
	return out
}
