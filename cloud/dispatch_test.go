package cloud

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/cloud/emulator"
	"rebootbot/internal/testutil"
)

// spentRig is a rig whose reboot budget is one call a second on a clock
// the test drives, so that the test decides when the next call may go and
// everything submitted before then rides it.
type spentRig struct {
	*rig
	clock *testutil.FakeClock
	d     *Dispatcher
}

func mustSpentRig(t *testing.T, ins ...emulator.Instance) *spentRig {
	t.Helper()
	clock := testutil.NewFakeClock(time.Now())
	r := mustRig(t, emulator.Config{RebootDuration: 50 * time.Millisecond}, func(c *Config) {
		c.Limiter = NewLimiterWithClock(1, clock)
	}, ins...)
	return &spentRig{rig: r, clock: clock, d: NewDispatcher(r.cvm)}
}

// spend uses up the current second's call on an instance of its own.
func (s *spentRig) spend(t *testing.T, id string) {
	t.Helper()
	res := s.d.Reboot(t.Context(), "", approval.Soft, []approval.RebootTarget{{InstanceID: id}})
	if len(res) != 1 || res[0].Err != nil {
		t.Fatalf("spending the budget: %+v", res)
	}
}

// queued waits until n intents wait in the default region's lane.
func (s *spentRig) queued(t *testing.T, n int) {
	t.Helper()
	l := s.d.lane("")
	testutil.Eventually(t, 10*time.Second, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.intents) >= n
	}, "intents to queue")
}

// rebootAll submits each request's targets concurrently and returns each
// request's results once all are in.
func (s *spentRig) rebootAll(t *testing.T, stop approval.StopType, requests [][]string) [][]approval.RebootResult {
	t.Helper()
	out := make([][]approval.RebootResult, len(requests))
	var wg sync.WaitGroup
	total := 0
	for i, ids := range requests {
		total += len(ids)
		var targets []approval.RebootTarget
		for _, id := range ids {
			targets = append(targets, approval.RebootTarget{InstanceID: id, PriorOpRequestID: s.status(t, id).LatestOperationRequestID})
		}
		wg.Go(func() { out[i] = s.d.Reboot(t.Context(), "", stop, targets) })
	}
	s.queued(t, total)
	s.clock.Advance(2 * time.Second)
	wg.Wait()
	return out
}

func TestDispatcherThreeRequestsShareOneCall(t *testing.T) {
	ins := running(4)
	s := mustSpentRig(t, ins...)
	s.spend(t, ins[3].ID)
	before := len(s.answered(ActionReboot))

	results := s.rebootAll(t, approval.Soft, [][]string{{ins[0].ID}, {ins[1].ID}, {ins[2].ID}})

	calls := s.answered(ActionReboot)[before:]
	if len(calls) != 1 {
		t.Fatalf("%d RebootInstances calls for three requests, want 1: %+v", len(calls), calls)
	}
	got := slices.Sorted(slices.Values(calls[0].InstanceIDs))
	if want := idsOf(ins[:3]); !slices.Equal(got, want) {
		t.Errorf("the call carried %v, want %v", got, want)
	}
	for i, res := range results {
		if len(res) != 1 || res[0].Err != nil || res[0].RequestID != calls[0].RequestID {
			t.Errorf("request %d: %+v, want accepted by %s", i, res, calls[0].RequestID)
		}
	}
}

// TestDispatcherSpacesCallsThatAreNotFull checks how the budget is spent:
// an idle lane sends at once, intents arriving right after a call wait
// for the next one, an interval later, and share it, and a full call does
// not wait for the spacing.
func TestDispatcherSpacesCallsThatAreNotFull(t *testing.T) {
	ins := running(3 + MaxIDsPerCall)
	clock := testutil.NewFakeClock(time.Now())
	r := mustRig(t, emulator.Config{}, func(c *Config) {
		c.Clock = clock
		c.Limiter = NewLimiterWithClock(RebootCallsPerSecond, clock)
	}, ins...)
	s := &spentRig{rig: r, clock: clock, d: NewDispatcher(r.cvm)}

	s.spend(t, ins[0].ID) // an idle lane: no wait
	before := len(s.answered(ActionReboot))
	var wg sync.WaitGroup
	for _, in := range ins[1:3] {
		wg.Go(func() {
			res := s.d.Reboot(t.Context(), "", approval.Soft, []approval.RebootTarget{{InstanceID: in.ID}})
			if len(res) != 1 || res[0].Err != nil {
				t.Errorf("%s: %+v", in.ID, res)
			}
		})
	}
	s.queued(t, 2)
	testutil.Eventually(t, 10*time.Second, func() bool { return clock.Waiters() == 1 }, "the sender to wait for the spacing")
	if n := len(s.answered(ActionReboot)) - before; n != 0 {
		t.Fatalf("%d calls within the interval after the first, want 0", n)
	}
	clock.Advance(RebootInterval)
	wg.Wait()
	calls := s.answered(ActionReboot)[before:]
	if len(calls) != 1 || !slices.Equal(slices.Sorted(slices.Values(calls[0].InstanceIDs)), idsOf(ins[1:3])) {
		t.Fatalf("calls = %+v, want one carrying %v", calls, idsOf(ins[1:3]))
	}

	// The clock stays within the interval after that call: a full call
	// goes all the same.
	var targets []approval.RebootTarget
	for _, in := range ins[3:] {
		targets = append(targets, approval.RebootTarget{InstanceID: in.ID})
	}
	res := s.d.Reboot(t.Context(), "", approval.Soft, targets)
	if len(res) != MaxIDsPerCall {
		t.Fatalf("%d results for a full call, want %d", len(res), MaxIDsPerCall)
	}
	for _, rr := range res {
		if rr.Err != nil {
			t.Fatalf("%s: %v", rr.InstanceID, rr.Err)
		}
	}
	if calls := s.answered(ActionReboot)[before:]; len(calls) != 2 || len(calls[1].InstanceIDs) != MaxIDsPerCall {
		t.Errorf("calls = %d, want the shared call and one full call", len(calls))
	}
}

func TestDispatcherSeparatesStopTypes(t *testing.T) {
	ins := running(3)
	s := mustSpentRig(t, ins...)
	s.spend(t, ins[2].ID)
	before := len(s.answered(ActionReboot))
	var wg sync.WaitGroup
	for i, stop := range []approval.StopType{approval.Soft, approval.Hard} {
		wg.Go(func() {
			res := s.d.Reboot(t.Context(), "", stop, []approval.RebootTarget{{InstanceID: ins[i].ID}})
			if len(res) != 1 || res[0].Err != nil {
				t.Errorf("%s reboot: %+v", stop, res)
			}
		})
	}
	s.queued(t, 2)
	s.clock.Advance(2 * time.Second) // one call now …
	// The slot frees a second after the first call's answer is in; the
	// next call waits on the clock from then.
	testutil.Eventually(t, 10*time.Second, func() bool {
		return len(s.answered(ActionReboot)) == before+1 && s.clock.Waiters() == 1
	}, "the first call answered and the next waiting on the clock")
	s.clock.Advance(2 * time.Second) // … the other a second later
	wg.Wait()
	calls := s.answered(ActionReboot)[before:]
	if len(calls) != 2 || len(calls[0].InstanceIDs) != 1 || len(calls[1].InstanceIDs) != 1 {
		t.Errorf("calls = %+v, want one per stop type", calls)
	}
}

func TestDispatcherIsolatesAnotherRequestsStoppedInstance(t *testing.T) {
	ins := running(4)
	s := mustSpentRig(t, ins...)
	s.spend(t, ins[3].ID)
	// The middle request's instance stopped after its intent was stored:
	// the shared call fails because of it.
	if err := s.emu.SetState(ins[1].ID, "STOPPED"); err != nil {
		t.Fatal(err)
	}
	before := len(s.answered(ActionReboot))
	go func() {
		// Isolation's second call waits for the next second's budget.
		testutil.Poll(10*time.Second, func() bool { return len(s.answered(ActionReboot)) > before && s.clock.Waiters() == 1 })
		s.clock.Advance(2 * time.Second)
	}()

	results := s.rebootAll(t, approval.Soft, [][]string{{ins[0].ID}, {ins[1].ID}, {ins[2].ID}})

	calls := s.answered(ActionReboot)[before:]
	if len(calls) > 2 {
		t.Errorf("%d RebootInstances calls, want at most one more than the shared one: %+v", len(calls), calls)
	}
	if res := results[1]; len(res) != 1 || res[0].Err == nil || res[0].Err.Code != "UnsupportedOperation.InstanceStateStopped" {
		t.Errorf("stopped instance: %+v, want UnsupportedOperation.InstanceStateStopped", res)
	}
	var targets []approval.WaitTarget
	for _, i := range []int{0, 2} {
		res := results[i]
		if len(res) != 1 || res[0].Err != nil {
			t.Fatalf("request %d, healthy, sharing the call: %+v, want accepted", i, res)
		}
		targets = append(targets, approval.WaitTarget{InstanceID: res[0].InstanceID, RequestID: res[0].RequestID})
	}
	var rep reports
	if err := s.d.Wait(t.Context(), "", targets, fastPoll, rep.addAll); err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if got := rep.only(t, tg.InstanceID); !got.OK {
			t.Errorf("%s: %+v, want Succeeded", tg.InstanceID, got)
		}
	}
	if n := s.emu.RebootCalls(ins[1].ID); n != 0 {
		t.Errorf("the stopped instance was rebooted %d times", n)
	}
}

// TestDispatcherKeepsTheLimits submits requests one after another, so that
// each could go out alone, and polls them all, then counts the calls the
// emulator answered in every one-second window.
func TestDispatcherKeepsTheLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a few seconds of real time")
	}
	ins := running(30)
	var mu sync.Mutex
	at := map[string][]time.Time{}
	var refused []string
	r := mustRig(t, emulator.Config{RebootDuration: 300 * time.Millisecond, OnCall: func(c emulator.Call) {
		mu.Lock()
		defer mu.Unlock()
		at[c.Action] = append(at[c.Action], time.Now())
		if strings.HasPrefix(c.ErrorCode, "RequestLimitExceeded") {
			refused = append(refused, c.Action)
		}
	}}, nil, ins...)
	d := NewDispatcher(r.cvm)
	var wg sync.WaitGroup
	var rep reports
	for i, in := range ins {
		stop := []approval.StopType{approval.Soft, approval.Hard, approval.SoftFirst}[i%3]
		res := d.Reboot(t.Context(), "", stop, []approval.RebootTarget{{InstanceID: in.ID}})
		if len(res) != 1 || res[0].Err != nil {
			t.Fatalf("%s: %+v", in.ID, res)
		}
		if i%10 == 9 {
			// Many waits at once: they share the poll rounds.
			var targets []approval.WaitTarget
			for _, in := range ins[i-9 : i+1] {
				targets = append(targets, approval.WaitTarget{InstanceID: in.ID, NotRequestID: "none"})
			}
			wg.Go(func() {
				if err := d.Wait(t.Context(), "", targets, approval.WaitOptions{Timeout: time.Minute, PollInterval: 10 * time.Millisecond}, rep.addAll); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	if rep.count() != len(ins) {
		t.Errorf("%d instances reported, want %d", rep.count(), len(ins))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) > 0 {
		t.Errorf("the emulator refused %d calls for their rate: %v", len(refused), refused)
	}
	for action, limit := range map[string]int{ActionReboot: RebootCallsPerSecond, ActionDescribe: DescribeCallsPerSecond} {
		if got := mostInASecond(at[action]); got > limit {
			t.Errorf("%s: %d calls within one second, limit %d", action, got, limit)
		}
	}
	if n := len(at[ActionReboot]); n < 20 {
		t.Errorf("only %d RebootInstances calls; the test should make more than fit in a second", n)
	}
	for _, c := range r.answered(ActionDescribe) {
		if len(c.InstanceIDs) > MaxIDsPerCall {
			t.Errorf("a DescribeInstances call carried %d IDs", len(c.InstanceIDs))
		}
	}
}

// mostInASecond returns the most times that fall within any window of one
// second.
func mostInASecond(ts []time.Time) int {
	ts = slices.SortedFunc(slices.Values(ts), time.Time.Compare)
	most, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= time.Second {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}

func TestDispatcherLooksShareCalls(t *testing.T) {
	ins := running(6)
	clock := testutil.NewFakeClock(time.Now())
	r := mustRig(t, emulator.Config{}, func(c *Config) { c.DescribeLimiter = NewLimiterWithClock(1, clock) }, ins...)
	d := NewDispatcher(r.cvm)
	if _, err := d.Look(t.Context(), "", []string{ins[5].ID}); err != nil {
		t.Fatal(err)
	}
	before := len(r.answered(ActionDescribe))
	var wg sync.WaitGroup
	got := make([]map[string]approval.Instance, 3)
	for i := range 3 {
		wg.Go(func() {
			var err error
			if got[i], err = d.Look(t.Context(), "", []string{ins[2*i].ID, ins[2*i+1].ID, "ins-zzzzzzzz"}); err != nil {
				t.Error(err)
			}
		})
	}
	l := d.lane("")
	testutil.Eventually(t, 10*time.Second, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.looks) == 3
	}, "look-ups to queue")
	clock.Advance(2 * time.Second)
	wg.Wait()
	if n := len(r.answered(ActionDescribe)) - before; n != 1 {
		t.Errorf("%d DescribeInstances calls for three look-ups, want 1", n)
	}
	for i, seen := range got {
		if len(seen) != 2 || seen[ins[2*i].ID].ID == "" || seen[ins[2*i+1].ID].ID == "" {
			t.Errorf("look-up %d got %v, want exactly its two instances", i, seen)
		}
	}
}

// TestDispatcherSharedCallAnswerLost: a call carrying three requests'
// instances is carried out but its answer never comes back. The look-up
// that follows, judged against each target's prior operation, settles
// all three as rebooted by that call, and none is called again.
func TestDispatcherSharedCallAnswerLost(t *testing.T) {
	ins := running(4)
	clock := testutil.NewFakeClock(time.Now())
	r := mustRig(t, emulator.Config{RebootDuration: time.Hour}, func(c *Config) {
		c.Limiter = NewLimiterWithClock(1, clock)
		c.RequestTimeout = 200 * time.Millisecond
	}, ins...)
	s := &spentRig{rig: r, clock: clock, d: NewDispatcher(r.cvm)}
	s.spend(t, ins[3].ID)
	// Tencent acts, then holds the answer past the adapter's timeout.
	s.emu.SetFaults(emulator.Fault{Action: ActionReboot, Latency: time.Minute})

	results := s.rebootAll(t, approval.Soft, [][]string{{ins[0].ID}, {ins[1].ID}, {ins[2].ID}})

	for i, res := range results {
		id := ins[i].ID
		if len(res) != 1 || res[0].Err != nil || res[0].RequestID == "" {
			t.Errorf("request %d: %+v, want accepted with the RequestId seen afterwards", i, res)
			continue
		}
		if got, want := res[0].RequestID, s.status(t, id).LatestOperationRequestID; got != want {
			t.Errorf("%s: RequestID %s, want the reboot's %s", id, got, want)
		}
		if n := s.emu.RebootCalls(id); n != 1 {
			t.Errorf("%s rebooted %d times, want once", id, n)
		}
	}
	if n := s.emu.Calls(ActionReboot); n != 2 {
		t.Errorf("%d RebootInstances calls, want 2 (the budget's and the shared one)", n)
	}
}
