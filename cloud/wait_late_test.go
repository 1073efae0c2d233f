package cloud

import (
	"sync/atomic"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/cloud/emulator"
	"rebootbot/internal/testutil"
)

// TestWaitLookBegunBeforeTheDeadline has a poll's look-up begin before
// the instance's deadline and come back after it, as look-ups do when a
// busy bot waits for its turn: the instance was still rebooting when
// looked at. That look must not end the wait with a timeout; the next
// one, begun after the deadline, finds the reboot finished.
func TestWaitLookBegunBeforeTheDeadline(t *testing.T) {
	ins := running(1)
	clock := testutil.NewFakeClock(time.Now())
	var slow atomic.Bool
	r := mustRig(t, emulator.Config{
		Now: clock.Now, SignatureWindow: -1, RebootDuration: 30 * time.Second, DescribeCallsPerSecond: -1,
		OnCall: func(c emulator.Call) {
			// The answer reaches the bot two minutes after the look began.
			if c.Action == ActionDescribe && slow.CompareAndSwap(true, false) {
				clock.Advance(2 * time.Minute)
			}
		},
	}, func(c *Config) { c.Clock = clock }, ins...)
	since := clock.Now()
	res := mustReboot(t, r.cvm, idsOf(ins), approval.Soft)
	slow.Store(true)

	var rep reports
	opts := approval.WaitOptions{Timeout: time.Minute, PollInterval: 5 * time.Second}
	if err := NewDispatcher(r.cvm).Wait(t.Context(), "", targetsOf(res, since), opts, rep.addAll); err != nil {
		t.Fatal(err)
	}
	got := rep.only(t, ins[0].ID)
	if !got.OK || got.Err != nil {
		t.Fatalf("%+v, want OK: the reboot had finished by the first look begun after the deadline", got)
	}
	if n := r.emu.Calls(ActionDescribe); n != 1+2 {
		t.Errorf("DescribeInstances calls = %d, want 3 (one before the reboot, the slow look, one after the deadline)", n)
	}
}
