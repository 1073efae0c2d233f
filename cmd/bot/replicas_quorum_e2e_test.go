//go:build e2e

package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/internal/testutil"
)

// TestReplicasWithoutQuorum stops two members of the three under two
// replicas: /healthz fails, a click is still answered within 3 s saying
// that nothing was recorded, and nothing acts. (Stopping a member with
// clients attached takes etcd some seconds, hence the e2e tag.)
func TestReplicasWithoutQuorum(t *testing.T) {
	w := mustReplicaWorld(t, 3)
	a, stopA, _ := w.replica(t)
	b, stopB, _ := w.replica(t)
	ctx := t.Context()

	// A pending request, then quorum is lost.
	if _, err := b.command(ctx, quiet, demoRequester, "ins-bbbbbbb1 disk full"); err != nil {
		t.Fatal(err)
	}
	ts2 := w.card(t, "R-1")
	w.cluster[1].Stop()
	w.cluster[2].Stop()
	testutil.Eventually(t, 10*time.Second, func() bool { return health(t, a) == http.StatusServiceUnavailable },
		"/healthz to fail without quorum")
	responseURL := w.stub.ResponseURL()
	status, body, took, err := a.send.click(ctx, demoApprover, bot.ActionApprove, "R-1", ts2, responseURL)
	if err := answer("/slack/interactions", status, body, took, err); err != nil {
		t.Fatalf("a click without quorum: %v", err)
	}
	t.Logf("a click without quorum was answered in %s", took)
	var answer []slackstub.Call
	testutil.Eventually(t, 5*time.Second, func() bool { answer = w.stub.ResponsesTo(responseURL, demoApprover); return len(answer) > 0 },
		"the answer to the click without quorum")
	if got := responseText(answer[0]); !strings.Contains(got, "nothing was recorded") {
		t.Errorf("answer without quorum = %q, want it to say nothing was recorded", got)
	}
	if got := w.emu.RebootCalls("ins-bbbbbbb1"); got != 0 {
		t.Errorf("ins-bbbbbbb1 rebooted %d times without quorum, want 0", got)
	}
	stopA()
	stopB()
}
