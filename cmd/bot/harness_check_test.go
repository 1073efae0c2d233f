//go:build e2e

// The harness's invariant checker over the audit log, the store, Slack's
// channel and the emulator's counters.

package main

import (
	"testing"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
)

// eventIndex groups audit events by request and type.
type eventIndex map[string]map[approval.EventType][]approval.Event

func indexEvents(events []approval.Event) eventIndex {
	idx := eventIndex{}
	for _, e := range events {
		if idx[e.RequestID] == nil {
			idx[e.RequestID] = map[approval.EventType][]approval.Event{}
		}
		idx[e.RequestID][e.Type] = append(idx[e.RequestID][e.Type], e)
	}
	return idx
}

// rebootCalledPerInstance counts, from the audit log, the instances each
// reboot_called event says were rebooted.
func rebootCalledPerInstance(events []approval.Event) map[string]int {
	n := map[string]int{}
	for _, e := range events {
		if e.Type == approval.EventRebootCalled {
			for _, id := range e.Instances {
				n[id]++
			}
		}
	}
	return n
}

// checkReport is what checkWorld found, for the figures.
type checkReport struct {
	Requests, Executed, Reboots int
	// OrphanCards counts cards posted again after a crash; Reposts counts
	// thread messages posted again by requests that lived through a kill
	// (tolerated only for those, see checkOptions).
	OrphanCards, Reposts int
	Outcomes             map[string]int
	Events               int
}

// checkOptions tune checkWorld.
type checkOptions struct {
	// RebootOnce: each instance was in at most one approved request, so it
	// may have been rebooted at most once.
	RebootOnce bool
	// KilledDuring marks requests that lived through a SIGKILL at a random
	// instant: a thread message posted again is counted, not failed (the
	// instant Slack takes a post is TestCrashThreadPostAnswerLost's).
	KilledDuring map[string]bool
}

// messageIndex is the channel as it stands, indexed once.
type messageIndex struct {
	cards   map[string][]slackstub.Message // by request ID
	byTS    map[string]slackstub.Message   // top-level messages
	threads map[string][]slackstub.Message // by thread_ts
}

func indexMessages(msgs []slackstub.Message) messageIndex {
	idx := messageIndex{cards: map[string][]slackstub.Message{}, byTS: map[string]slackstub.Message{}, threads: map[string][]slackstub.Message{}}
	for _, m := range msgs {
		if m.ThreadTS != "" {
			idx.threads[m.ThreadTS] = append(idx.threads[m.ThreadTS], m)
			continue
		}
		idx.byTS[m.TS] = m
		if g := cardTitle.FindStringSubmatch(m.Text); g != nil {
			idx.cards[g[1]] = append(idx.cards[g[1]], m)
		}
	}
	return idx
}

// checkWorld stops the bot and checks the invariants over requests ids:
// each is terminal with its card showing its outcome; an executed one has
// one start, one report per instance (none past MaxInstanceReports) and
// one summary in its thread; every
// state change has its audit event; per instance, accepted reboot calls
// (emulator) equal the instances of reboot_called events (audit); the
// chain verifies; nothing is owed after a clean stop.
func (w *world) checkWorld(ids []string, opt checkOptions) checkReport {
	w.t.Helper()
	w.stop()
	w.mustVerify()
	events := w.mustEvents()
	reqs, open := w.mustRequests(ids)
	idx := indexEvents(events)
	msgs := indexMessages(w.stub.Messages())
	rep := checkReport{Requests: len(ids), Outcomes: map[string]int{}, Events: len(events)}
	for _, r := range open {
		w.t.Errorf("%s (%s) is still owed work after a clean stop: card current %v, end announced %v", r.ID, r.State, r.CardCurrent, r.EndAnnounced)
	}
	// once checks that n messages of a kind were posted: exactly one, or
	// at least one for a request killed during its life.
	once := func(id string, n int, what string) {
		switch {
		case n == 1:
		case n > 1 && opt.KilledDuring[id]:
			rep.Reposts += n - 1
		default:
			w.t.Errorf("%s: %d %s in the thread, want 1", id, n, what)
		}
	}
	for _, id := range ids {
		r := reqs[id]
		evs := idx[id]
		rep.Outcomes[string(r.State)]++
		if !r.State.Terminal() {
			w.t.Errorf("%s is %s, want a terminal state", id, r.State)
			continue
		}
		if got := len(evs[approval.EventRequested]); got != 1 {
			w.t.Errorf("%s has %d requested events, want 1", id, got)
		}
		if r.State == approval.Rejected {
			if got := len(evs[approval.EventRejected]); got != 1 || r.Card.TS != "" {
				w.t.Errorf("%s is rejected with %d rejected events and card %q", id, got, r.Card.TS)
			}
			continue
		}
		cards := msgs.cards[id]
		rep.OrphanCards += max(len(cards)-1, 0)
		stored, ok := msgs.byTS[r.Card.TS]
		switch {
		case r.Card.TS == "":
			w.t.Errorf("%s has no card stored", id)
		case !ok:
			w.t.Errorf("%s: its stored card %s is not in the channel", id, r.Card.TS)
		case cardOutcome(stored) != bot.Outcome(r.State):
			w.t.Errorf("%s is %s but its card shows %q", id, r.State, cardOutcome(stored))
		}
		if len(cards) > 2 {
			w.t.Errorf("%s has %d cards; at most one repost after a crash is expected", id, len(cards))
		}
		switch r.State {
		case approval.Denied, approval.Cancelled, approval.Expired:
			want := map[approval.State]approval.EventType{approval.Denied: approval.EventDenied, approval.Cancelled: approval.EventCancelled, approval.Expired: approval.EventExpired}[r.State]
			if got := len(evs[want]); got != 1 {
				w.t.Errorf("%s is %s with %d %s events, want 1", id, r.State, got, want)
			}
			if len(evs[approval.EventExecuting]) != 0 || len(evs[approval.EventRebootCalled]) != 0 {
				w.t.Errorf("%s is %s but was executed", id, r.State)
			}
			if got, want := len(evs[approval.EventApproved]), len(r.Approvals); got != want {
				w.t.Errorf("%s has %d approved events for %d approvals", id, got, want)
			}
			continue
		}
		// Executed.
		rep.Executed++
		if got := len(evs[approval.EventExecuting]); got != 1 {
			w.t.Errorf("%s has %d executing events, want 1", id, got)
		}
		if got := len(evs[approval.EventCompleted]); got != 1 {
			w.t.Errorf("%s has %d completed events, want 1", id, got)
		} else if got := evs[approval.EventCompleted][0].Details.Outcome; got != string(r.State) {
			w.t.Errorf("%s is %s but its completed event says %s", id, r.State, got)
		}
		if got := len(evs[approval.EventApproved]); got < r.Required || got != len(r.Approvals) {
			w.t.Errorf("%s has %d approved events for %d approvals (%d required)", id, got, len(r.Approvals), r.Required)
		}
		if r.Plan != nil {
			// Each wave that started, started once and finished once.
			finished := r.Wave
			if !r.WaveFinished {
				finished--
			}
			if got := len(evs[approval.EventWaveStarted]); got != r.Wave {
				w.t.Errorf("%s reached wave %d with %d wave_started events", id, r.Wave, got)
			}
			if got := len(evs[approval.EventWaveFinished]); got != finished {
				w.t.Errorf("%s finished %d waves with %d wave_finished events", id, finished, got)
			}
		}
		if r.State == approval.Stopped && len(evs[approval.EventStopped]) == 0 {
			w.t.Errorf("%s is stopped without a stopped event", id)
		}
		thread := msgs.threads[r.Card.TS]
		once(id, starts(thread), "start messages")
		once(id, summaries(thread), "summaries")
		for _, run := range r.Runs {
			ok, failed := 0, 0
			for _, e := range evs[approval.EventInstanceSucceeded] {
				ok += count(e.Instances, run.InstanceID)
			}
			for _, e := range evs[approval.EventInstanceFailed] {
				failed += count(e.Instances, run.InstanceID)
			}
			switch {
			case run.State == approval.RunSucceeded && (ok != 1 || failed != 0):
				w.t.Errorf("%s: %s succeeded with %d succeeded and %d failed events", id, run.InstanceID, ok, failed)
			case run.State == approval.RunFailed && (ok != 0 || failed != 1):
				w.t.Errorf("%s: %s failed with %d succeeded and %d failed events", id, run.InstanceID, ok, failed)
			case !run.State.Done() && r.State != approval.Stopped:
				w.t.Errorf("%s: %s ended %q", id, run.InstanceID, run.State)
			case !run.State.Done() && rebootCalledPerInstance(evs[approval.EventRebootCalled])[run.InstanceID] != 0:
				w.t.Errorf("%s: %s of a wave that never started has a reboot_called event", id, run.InstanceID)
			}
			if !run.State.Done() {
				continue // a wave the stop left out: nothing to report
			}
			if len(r.Runs) > approval.MaxInstanceReports {
				// A fleet's thread names its failures in the outcome instead.
				if n := instanceReports(thread, run.InstanceID); n != 0 {
					w.t.Errorf("%s: %d reports for %s in the thread of a request of %d instances, want none", id, n, run.InstanceID, len(r.Runs))
				}
				continue
			}
			once(id, instanceReports(thread, run.InstanceID), "reports for "+run.InstanceID)
		}
	}
	called := rebootCalledPerInstance(events)
	for _, id := range w.emu.IDs() {
		got, want := w.emu.RebootCalls(id), called[id]
		rep.Reboots += got
		if got != want {
			w.t.Errorf("%s: the emulator accepted %d reboot calls, the audit log records %d", id, got, want)
		}
		if opt.RebootOnce && got > 1 {
			w.t.Errorf("%s was rebooted %d times", id, got)
		}
	}
	return rep
}

func count(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

// instanceIDs returns the IDs of instances.
func instanceIDs(ins []emulator.Instance) []string {
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	return ids
}

// logf records a figure for RELIABILITY.md in the test output.
func logf(t testing.TB, format string, a ...any) {
	t.Helper()
	t.Logf("figures: "+format, a...)
}
