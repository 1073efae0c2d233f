//go:build e2e

package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"rebootbot/internal/testutil"
)

// TestBenchSmallRun runs bot bench end to end against the built binary
// with a few requests and checks that every figure it promises is there:
// it is the benchmark BENCHMARKS.md quotes, and it must keep working.
func TestBenchSmallRun(t *testing.T) {
	var out testutil.SyncBuffer
	args := []string{"bot", "bench", "--bot", mustBotBinary(t), "--requests", "30", "--concurrency", "5",
		"--reboot-time", "200ms", "--poll-interval", "100ms", "--timeout", "2m"}
	if err := run(context.Background(), args, nil, &out, io.Discard); err != nil {
		t.Fatalf("bot bench: %v\n%s", err, out.String())
	}
	for _, want := range []string{"30 requests × 1 instances", "command ack", "click ack", "signature only", "click → reboot",
		"RebootInstances", "DescribeInstances", "all Succeeded", "bot peak RSS", "bot CPU", "store writes"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench report lacks %q:\n%s", want, out.String())
		}
	}
}
