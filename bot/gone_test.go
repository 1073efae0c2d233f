package bot_test

import (
	"slices"
	"strings"
	"testing"

	"rebootbot/approval"
	"rebootbot/bot/slackstub"
	"rebootbot/internal/testutil"
)

// TestCardGone: when Slack answers that the card can never be updated
// (someone deleted it, the channel was archived), the update is not tried
// again and again: the request still reaches its outcome, the loss is
// audited, the requester is told where Slack still lets the bot speak, and
// the request settles (it leaves the open index) instead of being retried
// every sweep.
func TestCardGone(t *testing.T) {
	tests := []struct {
		name      string
		breakCard func(e *env, r *approval.Request)
		code      string
		// toldIn is where the requester is told: the card's channel
		// (ephemeral) or their direct messages with the bot.
		toldIn string
	}{
		{"Deleted", func(e *env, r *approval.Request) { e.stub.Delete(r.Card.TS) }, "message_not_found", channel},
		{"ChannelArchived", func(e *env, r *approval.Request) {
			e.stub.Fail(slackstub.Fault{Method: "chat.update", Error: "is_archived", Count: 3})
		}, "is_archived", requester},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEnv(t)
			r := e.create(requester, "ins-web00001 hung")
			tt.breakCard(e, r)
			if _, u := e.click(approverA, "approve", r.ID); !strings.Contains(e.responseText(u, 1), "You approved "+r.ID) {
				t.Fatal("the approval was not counted")
			}
			e.waitState(r.ID, approval.Succeeded)
			testutil.Eventually(t, waitLong, func() bool {
				open, err := e.db.Open(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				return !slices.ContainsFunc(open, func(o *approval.Request) bool { return o.ID == r.ID })
			}, "%s", r.ID+" to leave the open index")
			if n := len(e.stub.all("chat.update")); n != 1 {
				t.Errorf("chat.update called %d times, want once: %s is not worth trying again", n, tt.code)
			}
			var lost []approval.Event
			for _, ev := range e.events(approval.AuditQuery{RequestID: r.ID}) {
				if ev.Type == approval.EventNoticesLost {
					lost = append(lost, ev)
				}
			}
			if len(lost) != 1 || !strings.Contains(lost[0].Details.Note, tt.code) {
				t.Errorf("notices_lost events %+v, want one naming %s", lost, tt.code)
			}
			if evs := e.events(approval.AuditQuery{RequestID: r.ID}); !slices.ContainsFunc(evs, func(ev approval.Event) bool { return ev.Type == approval.EventCompleted }) {
				t.Errorf("the outcome was not audited: %v", eventTypes(evs))
			}
			told := func() bool {
				for _, c := range e.stub.Calls() {
					if (c.Method == "chat.postEphemeral" || c.Method == "chat.postMessage") && c.OK() &&
						c.Form.Get("channel") == tt.toldIn && strings.Contains(c.Text(), "can't update the approval card of "+r.ID) {
						return true
					}
				}
				return false
			}
			testutil.Eventually(t, waitLong, told, "the requester to be told")
		})
	}
}
