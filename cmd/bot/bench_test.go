package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"rebootbot/metrics"
)

// TestScrapeBot reads the store counters and the answering time the bot
// serves, as bot bench does after a run.
func TestScrapeBot(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.StoreCommit(true, 3, time.Millisecond)
	m.StoreCommit(true, 2, time.Millisecond)
	m.StoreCommit(false, 16, 5*time.Millisecond)
	m.ObserveAck("command", 100*time.Microsecond)
	m.ObserveAck("command", 300*time.Microsecond)
	m.ObserveAck("interaction", 6*time.Millisecond)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	var res benchResult
	scrapeBot(context.Background(), srv.URL, &res)
	if res.storeWrites["urgent"] != 5 || res.storeWrites["background"] != 16 || res.storeTx["urgent"] != 2 || res.storeTx["background"] != 1 {
		t.Errorf("scraped writes %v, transactions %v; want urgent 5 in 2, background 16 in 1", res.storeWrites, res.storeTx)
	}
	if got := res.ownAck("command").Round(time.Microsecond); got != 200*time.Microsecond {
		t.Errorf("own command time %v, want 200µs", got)
	}
	if got := res.ownAck("interaction").Round(time.Microsecond); got != 6*time.Millisecond {
		t.Errorf("own click time %v, want 6ms", got)
	}
	var out strings.Builder
	res.print(&out, benchConfig{requests: 1})
	if want := "bot's own time    200µs a command, 6ms a click on average"; !strings.Contains(out.String(), want) {
		t.Errorf("report lacks %q:\n%s", want, out.String())
	}
}

// TestPrintSpread sums three made-up runs up and checks the ranges and
// the counts of runs that met each acknowledgement target, a limit
// reached exactly counting as met.
func TestPrintSpread(t *testing.T) {
	ms := func(n float64) []time.Duration { return []time.Duration{time.Duration(n * float64(time.Millisecond))} }
	run := func(cmd, cmdSig, cmdProc, click, clickSig, clickProc float64, calls int) *benchResult {
		return &benchResult{
			commandAck: ms(cmd), commandAckSig: ms(cmdSig), commandAckSigProc: ms(cmdProc),
			clickAck: ms(click), clickAckSig: ms(clickSig), clickAckSigProc: ms(clickProc),
			clickToReboot: ms(150), rebootCalls: calls, describeCall: 17,
			allSucceeded: 1100 * time.Millisecond, peakRSSKiB: 48 * 1024,
			ackSum:   map[string]float64{"command": 0.032, "interaction": 1.5},
			ackCount: map[string]float64{"command": 320, "interaction": 300},
		}
	}
	var out strings.Builder
	printSpread(&out, []*benchResult{
		run(5, 2, 4, 20, 5, 10, 4),   // command 2.5× (met), click 4× (not) but 2× its own process
		run(10, 2, 5, 30, 10, 15, 5), // command 5×, click over 25 ms
		run(3, 2, 2, 12, 4, 6, 4),    // everything met
	})
	for _, want := range []string{
		"over 3 runs\n",
		"command ack p99   3.0–10.0 ms; ≤ 2.5× signature only in 2 of 3 (own process: 3 of 3)\n",
		"click ack p99     12.0–30.0 ms; ≤ 25 ms in 2 of 3; ≤ 3× signature only in 2 of 3 (own process: 3 of 3)\n",
		"all three targets in 1 of 3 (against the handler in its own process: 2 of 3)\n",
		"bot's own time    100 µs a command, 5.0 ms a click on average\n",
		"click → reboot    p99 150 ms\n",
		"RebootInstances   4–5 calls\n",
		"DescribeInstances 17 calls\n",
		"all Succeeded     1.10 s after the last click\n",
		"bot peak RSS      48.0 MiB\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}
