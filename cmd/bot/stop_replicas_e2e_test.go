//go:build e2e

package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"rebootbot/bot"
	"rebootbot/internal/testutil"
)

// stopWake bounds how long the leader may take to end a paused execution
// after a stop stored by the other replica: the leader's watch on the
// stored requests brings it at once, so a second is plenty; the rest is
// room for a busy machine.
const stopWake = 3 * time.Second

// TestStopOnOtherReplicaWakesThePause runs two replicas on one etcd
// member. A rolling request of two waves with a 30 s pause between them is
// approved; during the pause its Stop button is clicked on the replica
// that does not lead. The request ends Stopped at once, the leader's
// execution ends within a second or two instead of sleeping out the pause,
// the card shows it, and the second wave is never rebooted.
func TestStopOnOtherReplicaWakesThePause(t *testing.T) {
	w := mustReplicaWorld(t, 1)
	a, stopA, logA := w.replica(t)
	b, stopB, logB := w.replica(t)
	t.Cleanup(func() {
		stopA()
		stopB()
	})
	ctx := t.Context()
	const leading = "leading: this replica now does"
	testutil.Eventually(t, 15*time.Second, func() bool {
		return strings.Contains(logA.String()+logB.String(), leading)
	}, "a replica to take the lead")
	other, leaderLog, otherLog := b, logA, logB
	if strings.Contains(logB.String(), leading) {
		other, leaderLog, otherLog = a, logB, logA
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("leader:\n%s\nthe other replica:\n%s", leaderLog, otherLog)
		}
	})

	if _, err := other.command(ctx, quiet, demoRequester, "ins-aaaaaaa1 ins-aaaaaaa2 --wave 1 --pause 30s kernel patch"); err != nil {
		t.Fatal(err)
	}
	ts := w.card(t, "R-1")
	if err := other.click(ctx, quiet, demoApprover, bot.ActionApprove, "R-1", ts); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		return strings.Contains(auditCSV(t, w, "R-1"), ",wave_finished,")
	}, "wave 1 of R-1 to finish")
	first, second := "ins-aaaaaaa1", "ins-aaaaaaa2"
	if w.emu.RebootCalls(first) == 0 {
		first, second = second, first
	}
	if got := w.emu.RebootCalls(first); got != 1 {
		t.Fatalf("wave 1 rebooted %s %d times, want 1", first, got)
	}

	responseURL := w.stub.ResponseURL()
	stopped := time.Now()
	status, body, took, err := other.send.click(ctx, demoApprover, bot.ActionStop, "R-1", ts, responseURL)
	if err := answer("/slack/interactions", status, body, took, err); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		for _, c := range w.stub.ResponsesTo(responseURL, demoApprover) {
			if strings.Contains(responseText(c), "You stopped R-1 before wave 2 of 2") {
				return true
			}
		}
		return false
	}, "the stop to be confirmed to the approver")
	ended := regexp.MustCompile(`"msg":"execution ended during the pause between waves".*"request":"R-1","state":"STOPPED"`)
	testutil.Eventually(t, stopWake, func() bool {
		return ended.MatchString(leaderLog.String())
	}, "the leader's execution of R-1 to end during its 30 s pause")
	wake := time.Since(stopped)
	testutil.Eventually(t, 10*time.Second, func() bool {
		m, _ := w.stub.Card(ts)
		return strings.Contains(m.Blocks, "Stopped")
	}, "R-1's card to show it stopped")
	if got := w.emu.RebootCalls(second); got != 0 {
		t.Errorf("wave 2's %s was rebooted %d times after the stop, want 0", second, got)
	}
	if got := w.emu.RebootCalls(first); got != 1 {
		t.Errorf("%s rebooted %d times, want 1", first, got)
	}
	logf(t, "stop clicked on the replica that does not lead; the leader's paused execution ended %s later", wake.Round(time.Millisecond))
}

// auditCSV returns request id's audit events as `bot audit list` prints
// them, read from the cluster the replicas share.
func auditCSV(t *testing.T, w *replicaWorld, id string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"bot", "audit", "list", "--request", id, "--format", "csv"}, func(k string) string { return w.env[k] }, &out, &out); err != nil {
		t.Fatalf("bot audit list: %v\n%s", err, out.String())
	}
	return out.String()
}
