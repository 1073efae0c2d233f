//go:build e2e

package bot_test

import (
	"fmt"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/cloud/emulator"
)

// TestFleetRequest5000 selects 5,000 instances by one tag through the real
// handler, engine, store and adapter against the emulator, approves them
// and waits for the outcome, logging how long each part took. It is slow
// for the everyday suite: go test -tags e2e -run TestFleetRequest5000 -v ./bot
func TestFleetRequest5000(t *testing.T) {
	e := mustEnv(t, func(c *envConfig) { c.policy.MaxInstances = approval.MaxInstancesPerRequest })
	zones := []string{"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6", "ap-guangzhou-7"}
	var ins []emulator.Instance
	for i := range 5000 {
		ins = append(ins, emulator.Instance{ID: fmt.Sprintf("ins-big%05d", i), Name: fmt.Sprintf("big-%05d", i),
			Zone: zones[i%len(zones)], Tags: map[string]string{"role": "big"}})
	}
	if err := e.emu.Add(ins...); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := e.create(requester, "tag:role=big kernel rollout")
	if len(r.Instances) != 5000 {
		t.Fatalf("%s holds %d instances, want 5000", r.ID, len(r.Instances))
	}
	t.Logf("selected, stored and carded %d instances in %v", len(r.Instances), time.Since(start))
	start = time.Now()
	e.click(approverA, bot.ActionApprove, r.ID)
	done := e.waitStateWithin(r.ID, approval.Succeeded, 3*time.Minute)
	t.Logf("rebooted them in %v", time.Since(start))
	for _, run := range done.Runs {
		if run.State != approval.RunSucceeded {
			t.Fatalf("%s ended %s", run.InstanceID, run.State)
		}
	}
}

// TestFleetWaves1000 rolls 1,000 instances selected by one tag in waves of
// 100 with no pause, and checks the calls it takes: at most 11
// DescribeInstances to resolve the selection (ten full pages and the empty
// end at most) and exactly one RebootInstances a wave. It logs how long
// the waves took next to the bound 10 × (emulated reboot + one poll
// interval) + 5 s: go test -tags e2e -run TestFleetWaves1000 -v ./bot
func TestFleetWaves1000(t *testing.T) {
	const reboot = 600 * time.Millisecond
	e := mustEnv(t, func(c *envConfig) {
		c.policy.MaxInstances = 1000
		c.emu.RebootDuration = reboot
	})
	zones := []string{"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6", "ap-guangzhou-7"}
	var ins []emulator.Instance
	for i := range 1000 {
		ins = append(ins, emulator.Instance{ID: fmt.Sprintf("ins-wav%05d", i), Name: fmt.Sprintf("wave-%05d", i),
			Zone: zones[i%len(zones)], Tags: map[string]string{"role": "web"}})
	}
	if err := e.emu.Add(ins...); err != nil {
		t.Fatal(err)
	}
	describes := e.emu.Calls("DescribeInstances")
	r := e.create(requester, "tag:role=web --wave 100 kernel rollout")
	if len(r.Instances) != 1000 {
		t.Fatalf("%s holds %d instances, want 1000", r.ID, len(r.Instances))
	}
	if got := e.emu.Calls("DescribeInstances") - describes; got > 11 {
		t.Errorf("resolving 1,000 instances took %d DescribeInstances calls, want at most 11", got)
	} else {
		t.Logf("figures: resolved 1,000 instances in %d DescribeInstances calls", got)
	}
	reboots := e.emu.Calls("RebootInstances")
	start := time.Now()
	e.click(approverA, bot.ActionApprove, r.ID)
	done := e.waitStateWithin(r.ID, approval.Succeeded, 3*time.Minute)
	took := time.Since(start)
	if got := e.emu.Calls("RebootInstances") - reboots; got != 10 {
		t.Errorf("10 waves of 100 took %d RebootInstances calls, want 10", got)
	}
	for _, run := range done.Runs {
		if run.State != approval.RunSucceeded {
			t.Fatalf("%s ended %s", run.InstanceID, run.State)
		}
	}
	t.Logf("figures: 10 waves of 100 rebooted in %v (bound 10 × (%v + %v) + 5s = %v)",
		took.Round(10*time.Millisecond), reboot, pollInterval, 10*(reboot+pollInterval)+5*time.Second)
}
