package approval_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
)

// TestNoticesGone: a notifier that answers Gone is not asked again for
// that request; the request still reaches its outcome, the loss is audited
// once, and the request settles. Other errors leave the notice owed.
func TestNoticesGone(t *testing.T) {
	w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
	w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
	w.slack.setUpdateErr(&approval.Error{Kind: approval.Gone, Message: "Slack will never take the card update (message_not_found)."})
	if _, err := w.engine.Approve(context.Background(), "k1", "R-1", "UALICE", w.mustCard(t, "R-1")); err != nil {
		t.Fatal(err)
	}
	w.waitState(t, "R-1", approval.Succeeded) // terminal and settled
	// The card update and the instance's report may both be on their way
	// when the first Gone comes back; neither is asked for again.
	if u, r := w.slack.updateCalls(), w.slack.reportCalls(); u > 1 || r > 1 || u+r == 0 {
		t.Errorf("Slack was asked for %d card updates and %d reports, want at most one of each", u, r)
	}
	types := w.events(t, approval.AuditQuery{RequestID: "R-1"})
	var lost int
	for _, ty := range types {
		if ty == approval.EventNoticesLost {
			lost++
		}
	}
	if lost != 1 || !slices.Contains(types, approval.EventCompleted) {
		t.Errorf("events %v, want one notices_lost and the completion", types)
	}

	// A failure that may pass keeps the card owed.
	w.slack.setUpdateErr(&approval.Error{Kind: approval.Unavailable, Message: "Slack did not take the card update."})
	w.mustCreate(t, approval.CreateInput{Instances: []string{"ins-aaaaaaaa"}})
	before := w.slack.updateCalls()
	if _, err := w.engine.Deny(context.Background(), "k2", "R-2", "UALICE", w.mustCard(t, "R-2")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return w.slack.updateCalls() > before }, "R-2's card update to be tried")
	r, err := w.store.Get(context.Background(), "R-2")
	if err != nil {
		t.Fatal(err)
	}
	if r.NoticesLost || r.Settled() {
		t.Errorf("R-2 after a transient failure: notices lost %v, settled %v; want the card still owed", r.NoticesLost, r.Settled())
	}
}
