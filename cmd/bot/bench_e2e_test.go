//go:build e2e

package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBenchSmallRun runs bot bench end to end, as the built binary, twice
// with a few requests, and checks that every figure it promises is
// there, and the sum of the two runs: it is the benchmark BENCHMARKS.md
// quotes, and it must keep working.
func TestBenchSmallRun(t *testing.T) {
	bin := mustBotBinary(t)
	cmd := exec.CommandContext(t.Context(), bin, "bench", "--requests", "30", "--concurrency", "5",
		"--reboot-time", "200ms", "--poll-interval", "100ms", "--timeout", "2m", "--runs", "2")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bot bench: %v\n%s", err, out)
	}
	for _, want := range []string{"30 requests × 1 instances", "command ack", "click ack", "signature only", "signature only, own process",
		"click → reboot", "RebootInstances", "DescribeInstances", "all Succeeded", "bot peak RSS", "bot CPU", "bench's own CPU", "store writes", "bot's own time",
		"run 1 of 2", "run 2 of 2", "over 2 runs", "all three targets in"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bench report lacks %q:\n%s", want, out)
		}
	}
}
