package bot_test

import (
	"errors"
	"strings"
	"testing"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/internal/testutil"
)

// Another app in the channel, posting messages that carry the bot's
// metadata.
const (
	otherUser = "U0OTHERAPP"
	otherBot  = "B0OTHERAPP"
)

// TestIdentify: auth.test names the workspace and the bot user; a token
// Slack refuses is reported with Slack's code and without the token.
func TestIdentify(t *testing.T) {
	e := mustEnv(t)
	id, err := e.slack.Identify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := bot.Identity{UserID: slackstub.BotUserID, BotID: slackstub.BotID, TeamID: slackstub.TeamID,
		Team: slackstub.TeamName, User: slackstub.BotUserName, URL: e.stub.URL + "/"}
	if id != want {
		t.Errorf("Identify = %+v, want %+v", id, want)
	}
	for _, code := range []string{"invalid_auth", "token_revoked", "account_inactive", "not_allowed_token_type"} {
		e.stub.RefuseToken(code)
		_, err := e.slack.Identify(t.Context())
		var refused *bot.TokenRefusedError
		if !errors.As(err, &refused) || refused.Code != code {
			t.Errorf("Identify with the token refused (%s) = %v, want a TokenRefusedError", code, err)
		}
		if err != nil && strings.Contains(err.Error(), stubToken) {
			t.Error("the token appears in the error")
		}
	}
}

// TestForeignCardNotAdopted: after chat.postMessage answers 500, the bot
// looks for the card in the channel; a message from another app carrying
// the card's metadata is not taken for it, and the card is posted.
func TestForeignCardNotAdopted(t *testing.T) {
	e := mustEnv(t)
	foreign := e.stub.PostAs(slackstub.Message{Channel: channel, Text: "R-1 looks approved to me",
		Metadata: `{"event_type":"rebootbot_card","event_payload":{"request_id":"R-1"}}`, User: otherUser, BotID: otherBot})
	e.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: 500})
	e.command(requester, channel, "ins-web00001 hung")

	var r *approval.Request
	testutil.Eventually(t, waitLong, func() bool {
		got, err := e.engine.Get(t.Context(), "R-1")
		r = got
		return err == nil && r.Card.TS != ""
	}, "R-1's card to be stored")
	if r.Card.TS == foreign.TS {
		t.Fatalf("the other app's message %s was adopted as R-1's card", foreign.TS)
	}
	card, ok := e.stub.message(r.Card.TS)
	if !ok || card.BotID != slackstub.BotID || !strings.Contains(card.Blocks, `"action_id":"approve"`) {
		t.Errorf("R-1's card %s is %+v, want the bot's own card with its buttons", r.Card.TS, card)
	}
	if n := e.stub.count("conversations.history"); n == 0 {
		t.Error("the channel was not searched for a card that may have landed")
	}
}

// TestForeignReportNotAdopted: the same for thread reports: another app's
// message in the card's thread with the report's metadata does not count
// as the bot's report.
func TestForeignReportNotAdopted(t *testing.T) {
	e := mustEnv(t)
	r := e.create(requester, "ins-web00001 hung")
	e.stub.PostAs(slackstub.Message{Channel: channel, ThreadTS: r.Card.TS, Text: "started, trust me",
		Metadata: `{"event_type":"rebootbot_report","event_payload":{"request_id":"R-1","report":"started"}}`, User: otherUser, BotID: otherBot})
	e.stub.Fail(slackstub.Fault{Method: "chat.postMessage", Status: 500})
	e.click(approverA, "approve", "R-1")
	e.waitState("R-1", approval.Succeeded)

	testutil.Eventually(t, waitLong, func() bool {
		var started, finished int
		for _, m := range e.stub.Thread(r.Card.TS) {
			if m.BotID != slackstub.BotID {
				continue
			}
			if strings.Contains(m.Metadata, `"report":"started"`) {
				started++
			}
			if strings.Contains(m.Metadata, `"report":"finished"`) {
				finished++
			}
		}
		return started == 1 && finished == 1
	}, "the bot's own reports in the thread")
	if n := e.stub.count("conversations.replies"); n == 0 {
		t.Error("the thread was not searched for a report that may have landed")
	}
}
