package bot_test

import (
	"slices"
	"strings"
	"testing"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/internal/testutil"
)

// threadTexts returns the texts of the messages in the thread of ts.
func (e *env) threadTexts(ts string) []string {
	var texts []string
	for _, m := range e.stub.Thread(ts) {
		texts = append(texts, m.Text)
	}
	return texts
}

// answer runs a command as user and returns its answer, given at once or
// later to the response_url.
func (e *env) answer(user, text string) string {
	e.t.Helper()
	ans, responseURL := e.command(user, channel, text)
	if t := ans.text(); t != "" {
		return t
	}
	return e.responseText(responseURL, 1)
}

// waitWaveDone waits until request id has finished wave k.
func (e *env) waitWaveDone(id string, k int) *approval.Request {
	e.t.Helper()
	var r *approval.Request
	testutil.Eventually(e.t, waitLong, func() bool {
		r = e.request(id)
		return r.Wave == k && r.WaveFinished
	}, "%s to finish wave %d", id, k)
	return r
}

// TestFleetWavesStopButton rolls a fleet in waves with a long pause and
// stops it from the card: a stranger's click is refused and explained,
// an approver's ends the request; no later wave is rebooted.
func TestFleetWavesStopButton(t *testing.T) {
	e := mustEnv(t)
	webFleet(t, e)
	r := e.create(requester, "tag:role=web --wave 6 --pause 1h kernel rollout")
	if r.Plan == nil || len(r.Plan.Waves) != 4 {
		t.Fatalf("plan = %+v, want 4 waves of 6", r.Plan)
	}
	e.waitCard(r.ID, "*Waves* 4 of at most 6")
	e.click(approverA, bot.ActionApprove, r.ID)
	e.waitWaveDone(r.ID, 1)
	e.waitCard(r.ID, "Wave 1 of 4 done")
	card := e.waitCard(r.ID, `"action_id":"stop"`)
	if !strings.Contains(card, "Yes, stop") {
		t.Errorf("the Stop button has no confirmation: %s", card)
	}

	_, responseURL := e.click(outsider, bot.ActionStop, r.ID)
	if got := e.responseText(responseURL, 1); !strings.Contains(got, "Only the person who asked for "+r.ID+" or one of its approvers can stop it") {
		t.Errorf("a stranger's Stop was answered %q", got)
	}
	if got := e.request(r.ID); got.State != approval.Executing || got.Halt != nil {
		t.Fatalf("a refused stop changed %s: %s %+v", r.ID, got.State, got.Halt)
	}

	_, responseURL = e.click(approverA, bot.ActionStop, r.ID)
	if got := e.responseText(responseURL, 1); !strings.Contains(got, "You stopped "+r.ID+" before wave 2 of 4") {
		t.Errorf("the Stop click was answered %q", got)
	}
	done := e.waitState(r.ID, approval.Stopped)
	if done.Halt == nil || done.Halt.By != approverA {
		t.Errorf("halt = %+v", done.Halt)
	}
	for k, wave := range done.Plan.Waves {
		for _, id := range wave {
			want := 0
			if k == 0 {
				want = 1
			}
			if n := e.emu.RebootCalls(id); n != want {
				t.Errorf("wave %d: %s got %d reboot calls", k+1, id, n)
			}
		}
	}
	card = e.waitCard(r.ID, "*Stopped*: approved by <@"+approverA+">")
	if strings.Contains(card, `"action_id":"stop"`) {
		t.Error("the stopped card still carries Stop")
	}
	if !strings.Contains(card, "6 of 24 instances rebooted, 18 not rebooted") {
		t.Errorf("the stopped card does not count what was not rebooted: %s", card)
	}
	testutil.Eventually(t, waitLong, func() bool { return e.request(r.ID).EndAnnounced }, "the outcome of %s in the thread", r.ID)
	thread := e.threadTexts(done.Card.TS)
	if len(thread) != 3 || !strings.Contains(thread[1], "Wave *1 of 4* done: 6 of 6 rebooted") || !strings.Contains(thread[2], "*Stopped*") {
		t.Errorf("thread = %q, want the start, wave 1 and the outcome", thread)
	}
	types := eventTypes(e.events(approval.AuditQuery{RequestID: r.ID}))
	for _, want := range []string{"approval_refused", "wave_started", "wave_finished", "stopped", "completed"} {
		if !slices.Contains(types, want) {
			t.Errorf("audit %v lacks %s", types, want)
		}
	}
}

// TestStopCommandAndBudget stops one rolling request with /reboot stop and
// lets the failure budget stop another.
func TestStopCommandAndBudget(t *testing.T) {
	e := mustEnv(t)
	webFleet(t, e)
	r := e.create(requester, "tag:role=web zone:ap-guangzhou-3 --wave 2 --pause 1h patch")
	e.click(approverA, bot.ActionApprove, r.ID)
	e.waitWaveDone(r.ID, 1)
	if got := e.answer(requester, "stop "+r.ID); !strings.Contains(got, "You stopped "+r.ID) {
		t.Errorf("/reboot stop answered %q", got)
	}
	e.waitState(r.ID, approval.Stopped)
	if got := e.answer(requester, "stop "+r.ID); !strings.Contains(got, "is not rebooting (it is stopped)") {
		t.Errorf("/reboot stop again answered %q", got)
	}

	// The failure budget: one failure allowed, and wave 1 fails twice.
	b := e.create(requester, "tag:role=web zone:ap-guangzhou-4 --wave 4 --max-failures 1 --by-zone patch")
	for _, id := range b.Plan.Waves[0][:2] {
		e.emu.FailNextReboot(id)
	}
	e.click(approverA, bot.ActionApprove, b.ID)
	done := e.waitState(b.ID, approval.Stopped)
	if want := "2 failures, budget 1, after wave 1 of 2"; done.Halt == nil || done.Halt.Reason != want {
		t.Errorf("halt = %+v, want the budget's %q", done.Halt, want)
	}
	for _, id := range b.Plan.Waves[1] {
		if n := e.emu.RebootCalls(id); n != 0 {
			t.Errorf("%s of wave 2 got %d reboot calls after the budget was exceeded", id, n)
		}
	}
	e.waitCard(b.ID, "stopped by the failure budget (2 failures, budget 1, after wave 1 of 2)")
}
