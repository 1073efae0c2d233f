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
