//go:build e2e

// The harness's waits: each polls the stand-in or a condition until it holds
// or waitLong passes.

package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"rebootbot/bot/slackstub"
	"rebootbot/internal/testutil"
)

// waitLong bounds every wait for the bot: generous, because the machine may
// be busy with other test processes.
const waitLong = 60 * time.Second

// waitReply waits for an answer to d that contains want and returns it.
func (w *world) waitReply(d delivery, want string) string {
	w.t.Helper()
	var got string
	if !w.stub.WaitFor(waitLong, func() bool {
		for _, r := range w.replies(d) {
			if strings.Contains(r, want) {
				got = r
				return true
			}
		}
		return false
	}) {
		w.t.Fatalf("no answer to %s containing %q; answers: %q", d.path, want, w.replies(d))
	}
	return got
}

// mustCard waits for a card of request id and returns the latest one.
func (w *world) mustCard(id string) slackstub.Message {
	w.t.Helper()
	var card slackstub.Message
	if !w.stub.WaitFor(waitLong, func() bool {
		cs := w.cards(id)
		if len(cs) == 0 {
			return false
		}
		card = cs[len(cs)-1]
		return true
	}) {
		w.t.Fatalf("no card for %s", id)
	}
	return card
}

// waitCard waits until some card of request id satisfies ok.
func (w *world) waitCard(id string, what string, ok func(slackstub.Message) bool) slackstub.Message {
	w.t.Helper()
	var card slackstub.Message
	if !w.stub.WaitFor(waitLong, func() bool {
		for _, c := range w.cards(id) {
			if ok(c) {
				card = c
				return true
			}
		}
		return false
	}) {
		var now []string
		for _, c := range w.cards(id) {
			now = append(now, c.Text)
		}
		w.t.Fatalf("card of %s never showed %s; cards: %q", id, what, now)
	}
	return card
}

// terminalOutcomes are the words a card ends with.
var terminalOutcomes = []string{"Succeeded", "Failed", "Partially failed", "Stopped", "Denied", "Expired", "Cancelled"}

// waitSettled waits until request id's card shows an outcome and, when it
// was executed, its summary is in the thread; it returns the outcome.
func (w *world) waitSettled(id string) string {
	w.t.Helper()
	var outcome string
	if !w.stub.WaitFor(waitLong, func() bool {
		for _, c := range w.cards(id) {
			o := cardOutcome(c)
			if !slices.Contains(terminalOutcomes, o) {
				continue
			}
			if o == "Denied" || o == "Expired" || o == "Cancelled" || summaries(w.stub.Thread(c.TS)) > 0 {
				outcome = o
				return true
			}
		}
		return false
	}) {
		var now []string
		for _, c := range w.cards(id) {
			now = append(now, fmt.Sprintf("%s (thread: %d)", c.Text, len(w.stub.Thread(c.TS))))
		}
		w.t.Fatalf("%s did not settle; cards: %q", id, now)
	}
	return outcome
}

// waitUntil waits until cond holds, for at most waitLong.
func (w *world) waitUntil(what string, cond func() bool) {
	w.t.Helper()
	testutil.Eventually(w.t, waitLong, cond, "%s", what)
}
