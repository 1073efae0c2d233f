package cloud

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"rebootbot/approval"
	"rebootbot/cloud/emulator"
	"rebootbot/internal/testutil"
)

// reports collects Wait's reports.
type reports struct {
	mu  sync.Mutex
	got map[string][]approval.WaitResult
}

func (r *reports) add(res approval.WaitResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string][]approval.WaitResult{}
	}
	r.got[res.InstanceID] = append(r.got[res.InstanceID], res)
}

// addAll records a poll's worth of reports.
func (r *reports) addAll(results []approval.WaitResult) {
	for _, res := range results {
		r.add(res)
	}
}

// only returns the single report for id, failing if there is not exactly
// one.
func (r *reports) only(t *testing.T, id string) approval.WaitResult {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.got[id]); n != 1 {
		t.Fatalf("%s reported %d times, want once", id, n)
	}
	return r.got[id][0]
}

func (r *reports) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// targetsOf turns reboot results into wait targets.
func targetsOf(res []approval.RebootResult, since time.Time) []approval.WaitTarget {
	var out []approval.WaitTarget
	for _, r := range res {
		out = append(out, approval.WaitTarget{InstanceID: r.InstanceID, RequestID: r.RequestID, Since: since})
	}
	return out
}

var fastPoll = approval.WaitOptions{Timeout: 30 * time.Second, PollInterval: 10 * time.Millisecond}

func TestWaitToCompletion(t *testing.T) {
	ins := running(3)
	r := mustRig(t, emulator.Config{RebootDuration: 150 * time.Millisecond}, nil, ins...)
	since := time.Now()
	res := mustReboot(t, r.cvm, idsOf(ins), approval.Soft)
	targets := targetsOf(res, since)
	targets = append(targets, targets[0]) // a duplicate is reported once

	var rep reports
	if err := NewDispatcher(r.cvm).Wait(t.Context(), "", targets, fastPoll, rep.addAll); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	for _, in := range ins {
		got := rep.only(t, in.ID)
		if !got.OK || got.Err != nil || got.State != approval.InstanceRunning {
			t.Errorf("%s: %+v, want OK and RUNNING", in.ID, got)
		}
		if got.Duration < 150*time.Millisecond {
			t.Errorf("%s: duration %v, want at least the reboot's 150ms", in.ID, got.Duration)
		}
	}
	if n := r.emu.Calls(ActionReboot); n != 1 {
		t.Errorf("RebootInstances calls = %d, want 1", n)
	}
}

// TestWaitSinceOnTheCallersClock: the caller's clock is an hour behind
// the adapter's (an engine on a test clock, say). With Now from the same
// clock as Since, the timeout counts from the call as the caller saw it,
// and a reboot that comes back in time is reported OK, not timed out at
// the first look.
func TestWaitSinceOnTheCallersClock(t *testing.T) {
	ins := running(1)
	r := mustRig(t, emulator.Config{RebootDuration: 150 * time.Millisecond}, nil, ins...)
	callers := time.Now().Add(-time.Hour)
	res := mustReboot(t, r.cvm, idsOf(ins), approval.Soft)
	opts := approval.WaitOptions{Timeout: 30 * time.Second, PollInterval: 10 * time.Millisecond, Now: callers}
	var rep reports
	if err := NewDispatcher(r.cvm).Wait(t.Context(), "", targetsOf(res, callers), opts, rep.addAll); err != nil {
		t.Fatal(err)
	}
	if got := rep.only(t, ins[0].ID); !got.OK || got.Err != nil {
		t.Errorf("%+v, want OK: the reboot came back well within its timeout", got)
	}
}

func TestWaitAfterRestart(t *testing.T) {
	// After a restart only the operation from before the reboot is known:
	// any newer RebootInstances operation counts.
	ins := running(2)
	r := mustRig(t, emulator.Config{RebootDuration: 50 * time.Millisecond}, nil, ins...)
	first := mustReboot(t, r.cvm, idsOf(ins), approval.Soft)
	if err := NewDispatcher(r.cvm).Wait(t.Context(), "", targetsOf(first, time.Now()), fastPoll, nil); err != nil {
		t.Fatal(err)
	}
	// Only the first instance is rebooted again.
	second := mustReboot(t, r.cvm, []string{ins[0].ID}, approval.Hard)
	targets := []approval.WaitTarget{
		{InstanceID: ins[0].ID, NotRequestID: first[0].RequestID},
		{InstanceID: ins[1].ID, NotRequestID: first[1].RequestID},
	}
	var rep reports
	opts := approval.WaitOptions{Timeout: 300 * time.Millisecond, PollInterval: 10 * time.Millisecond}
	if err := NewDispatcher(r.cvm).Wait(t.Context(), "", targets, opts, rep.addAll); err != nil {
		t.Fatal(err)
	}
	if got := rep.only(t, ins[0].ID); !got.OK {
		t.Errorf("rebooted instance: %+v, want OK (operation %s)", got, second[0].RequestID)
	}
	got := rep.only(t, ins[1].ID)
	if got.OK || got.Err == nil || got.Err.Code != CodeTimeout {
		t.Errorf("instance not rebooted again: %+v, want a timeout", got)
	} else if !strings.Contains(got.Err.Explanation, "reboot not started") {
		t.Errorf("explanation %q does not say the reboot never started", got.Err.Explanation)
	}
}

func TestWaitFailedReboot(t *testing.T) {
	ins := running(2)
	r := mustRig(t, emulator.Config{RebootDuration: 50 * time.Millisecond}, nil, ins...)
	r.emu.FailNextReboot(ins[1].ID)
	res := mustReboot(t, r.cvm, idsOf(ins), approval.Soft)
	var rep reports
	if err := NewDispatcher(r.cvm).Wait(t.Context(), "", targetsOf(res, time.Now()), fastPoll, rep.addAll); err != nil {
		t.Fatal(err)
	}
	if got := rep.only(t, ins[0].ID); !got.OK {
		t.Errorf("%s: %+v, want OK", ins[0].ID, got)
	}
	got := rep.only(t, ins[1].ID)
	if got.OK || got.Err == nil || got.Err.Code != CodeRebootFailed {
		t.Fatalf("%s: %+v, want %s", ins[1].ID, got, CodeRebootFailed)
	}
	st := r.status(t, ins[1].ID)
	if !strings.Contains(got.Err.Explanation, st.LatestOperationErrorMsg) || !strings.Contains(got.Err.Explanation, "reboot failed") {
		t.Errorf("explanation %q does not carry Tencent's reason %q", got.Err.Explanation, st.LatestOperationErrorMsg)
	}
	if got.Err.RequestID != res[1].RequestID {
		t.Errorf("RequestID = %s, want the reboot's %s", got.Err.RequestID, res[1].RequestID)
	}
}

func TestWaitTimeout(t *testing.T) {
	ins := running(1)
	clock := testutil.NewFakeClock(time.Now())
	// The polls come faster than 40 a second of real time: the limits are
	// not what this test is about.
	r := mustRig(t, emulator.Config{RebootDuration: time.Hour, DescribeCallsPerSecond: -1}, func(c *Config) {
		c.Clock = clock
		c.DescribeLimiter = NewLimiter(1000)
	}, ins...)
	res := mustReboot(t, r.cvm, idsOf(ins), approval.Soft)

	var rep reports
	done := make(chan error, 1)
	opts := approval.WaitOptions{Timeout: 10 * time.Minute, PollInterval: 5 * time.Second}
	go func() {
		done <- NewDispatcher(r.cvm).Wait(t.Context(), "", targetsOf(res, clock.Now()), opts, rep.addAll)
	}()
	polls := 0
	for rep.count() == 0 {
		testutil.Eventually(t, 10*time.Second, func() bool { return clock.Waiters() == 1 || rep.count() > 0 }, "Wait to sleep or finish")
		if rep.count() > 0 {
			break
		}
		clock.Advance(opts.PollInterval)
		polls++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if polls != 120 {
		t.Errorf("Wait slept %d times, want 120 polls of 5s in 10m", polls)
	}
	got := rep.only(t, ins[0].ID)
	if got.OK || got.Err == nil || got.Err.Code != CodeTimeout {
		t.Fatalf("%+v, want a timeout", got)
	}
	for _, want := range []string{"10m0s", "REBOOTING", "OPERATING"} {
		if !strings.Contains(got.Err.Explanation, want) {
			t.Errorf("explanation %q does not mention %s", got.Err.Explanation, want)
		}
	}
	if got.State != approval.InstanceRebooting || got.Duration != opts.Timeout {
		t.Errorf("state %s after %v, want REBOOTING after %v", got.State, got.Duration, opts.Timeout)
	}
	if n := r.emu.Calls(ActionDescribe); n != 1+121 {
		t.Errorf("DescribeInstances calls = %d, want 122 (one before the reboot, 121 polls)", n)
	}
}

func TestWaitLooksOnceEvenWhenLate(t *testing.T) {
	ins := running(1)
	r := mustRig(t, emulator.Config{RebootDuration: time.Millisecond}, nil, ins...)
	res := mustReboot(t, r.cvm, idsOf(ins), approval.Soft)
	testutil.Eventually(t, 10*time.Second, func() bool {
		return r.status(t, ins[0].ID).LatestOperationState == approval.OpSuccess
	}, "the reboot to finish")
	var rep reports
	longAgo := time.Now().Add(-time.Hour)
	opts := approval.WaitOptions{Timeout: time.Minute, PollInterval: time.Second}
	if err := NewDispatcher(r.cvm).Wait(t.Context(), "", targetsOf(res, longAgo), opts, rep.addAll); err != nil {
		t.Fatal(err)
	}
	if got := rep.only(t, ins[0].ID); !got.OK {
		t.Errorf("%+v, want OK: the reboot finished before its time ran out was noticed", got)
	}
}

func TestWaitRetriesFailedLookups(t *testing.T) {
	ins := running(2)
	r := mustRig(t, emulator.Config{RebootDuration: 20 * time.Millisecond}, func(c *Config) { c.MaxAttempts = 2 }, ins...)
	res := mustReboot(t, r.cvm, idsOf(ins), approval.Soft)
	// Four polls' worth of failures, then answers.
	r.emu.SetFaults(emulator.Fault{Action: ActionDescribe, Code: "InternalError", Count: 8})
	var rep reports
	if err := NewDispatcher(r.cvm).Wait(t.Context(), "", targetsOf(res, time.Now()), fastPoll, rep.addAll); err != nil {
		t.Fatal(err)
	}
	for _, in := range ins {
		if got := rep.only(t, in.ID); !got.OK {
			t.Errorf("%s: %+v, want OK", in.ID, got)
		}
	}
	if n := r.emu.Calls(ActionDescribe); n < 1+8+1 {
		t.Errorf("DescribeInstances calls = %d, want the 8 failures retried", n)
	}
	if !strings.Contains(r.log.String(), "will look again") {
		t.Error("failed look-ups were not logged")
	}
}

func TestWaitBatchesOf100(t *testing.T) {
	ins := emulator.Generate(150, 3)
	r := mustRig(t, emulator.Config{RebootDuration: 20 * time.Millisecond}, nil, ins...)
	res := mustReboot(t, r.cvm, idsOf(ins), approval.Soft)
	before := r.emu.Calls(ActionDescribe)
	var rep reports
	opts := approval.WaitOptions{Timeout: 30 * time.Second, PollInterval: time.Second}
	testutil.Eventually(t, 10*time.Second, func() bool {
		return r.status(t, ins[149].ID).LatestOperationState == approval.OpSuccess
	}, "the reboots to finish")
	if err := NewDispatcher(r.cvm).Wait(t.Context(), "", targetsOf(res, time.Now()), opts, rep.addAll); err != nil {
		t.Fatal(err)
	}
	if rep.count() != 150 {
		t.Errorf("%d instances reported, want 150", rep.count())
	}
	if n := r.emu.Calls(ActionDescribe) - before; n != 2 {
		t.Errorf("one poll of 150 instances made %d DescribeInstances calls, want 2", n)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	ins := running(1)
	r := mustRig(t, emulator.Config{RebootDuration: time.Hour}, nil, ins...)
	res := mustReboot(t, r.cvm, idsOf(ins), approval.Soft)
	ctx, cancel := context.WithCancel(t.Context())
	var rep reports
	done := make(chan error, 1)
	go func() {
		done <- NewDispatcher(r.cvm).Wait(ctx, "", targetsOf(res, time.Now()), approval.WaitOptions{Timeout: time.Hour, PollInterval: time.Hour}, rep.addAll)
	}()
	testutil.Eventually(t, 10*time.Second, func() bool { return r.emu.Calls(ActionDescribe) == 2 }, "the first poll")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v, want context.Canceled", err)
	}
	if rep.count() != 0 {
		t.Errorf("%d reports after cancellation, want none", rep.count())
	}
	if err := NewDispatcher(r.cvm).Wait(t.Context(), "", nil, fastPoll, rep.addAll); err != nil {
		t.Errorf("Wait for nothing = %v, want nil", err)
	}
}

func TestWaitInstanceGone(t *testing.T) {
	ins := running(1)
	r := mustRig(t, emulator.Config{}, nil, ins...)
	var rep reports
	// The instance is not in ap-shanghai: as far as that region is
	// concerned, it no longer exists.
	targets := []approval.WaitTarget{{InstanceID: ins[0].ID, RequestID: "whatever"}}
	if err := NewDispatcher(r.cvm).Wait(t.Context(), "ap-shanghai", targets, fastPoll, rep.addAll); err != nil {
		t.Fatal(err)
	}
	got := rep.only(t, ins[0].ID)
	if got.OK || got.Err == nil || got.Err.Code != "InvalidInstanceId.NotFound" || got.Err.Explanation == "" {
		t.Errorf("%+v, want InvalidInstanceId.NotFound with an explanation", got)
	}
}

func TestWaitingOurs(t *testing.T) {
	reboot := func(id string) approval.Instance {
		return approval.Instance{LatestOperation: approval.OpReboot, LatestOperationRequestID: id}
	}
	tests := []struct {
		name   string
		target approval.WaitTarget
		in     approval.Instance
		want   bool
	}{
		{"RequestIDMatches", approval.WaitTarget{RequestID: "r2"}, reboot("r2"), true},
		{"RequestIDDiffers", approval.WaitTarget{RequestID: "r2"}, reboot("r1"), false},
		{"NotRequestIDDiffers", approval.WaitTarget{NotRequestID: "r1"}, reboot("r2"), true},
		{"NotRequestIDSame", approval.WaitTarget{NotRequestID: "r1"}, reboot("r1"), false},
		{"AnyReboot", approval.WaitTarget{}, reboot("r9"), true},
		{"NotAReboot", approval.WaitTarget{}, approval.Instance{LatestOperation: "StopInstances"}, false},
	}
	for _, tt := range tests {
		w := &waiting{target: tt.target}
		if got := w.ours(tt.in); got != tt.want {
			t.Errorf("%s: ours = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestWaitingStaysSmall guards what the wait keeps per instance: a region
// may wait on ten thousand instances at once, and each waiting target
// once carried a whole instance (names, zones, addresses, tags) from its
// last look, 320 bytes before any string.
func TestWaitingStaysSmall(t *testing.T) {
	if got, most := unsafe.Sizeof(waiting{}), uintptr(208); got > most {
		t.Errorf("a waiting target takes %d bytes, want at most %d", got, most)
	}
	w := &waiting{target: approval.WaitTarget{InstanceID: "ins-aaaaaaaa", RequestID: "req-1"}}
	seen := map[string]approval.Instance{"ins-aaaaaaaa": {ID: "ins-aaaaaaaa", Name: "web-1", Zone: "ap-guangzhou-3", State: "REBOOTING",
		PrivateIPs: []string{"10.0.0.1"}, Tags: map[string]string{"env": "prod"},
		LatestOperation: approval.OpReboot, LatestOperationState: approval.OpOperating, LatestOperationRequestID: "req-1"}}
	if _, done := w.judge(seen, true, time.Unix(10, 0)); done {
		t.Fatal("a reboot still operating was judged done")
	}
	res := w.timeout(time.Unix(20, 0))
	if res.State != "REBOOTING" || !strings.Contains(res.Err.Explanation, "last seen REBOOTING with the reboot OPERATING") {
		t.Errorf("timeout = %+v (%s), want it to tell the last look", res, res.Err.Explanation)
	}
}
