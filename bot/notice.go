package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"

	"rebootbot/approval"
)

// Cards and thread reports are worth persisting for, unlike a click's
// answer: after a round of tries (see try) that Slack did not take, the
// notifier pauses and tries another round, up to noticeRounds, before the
// notice is left owed to the engine's next sweep. A permanent error ends
// it at once, and the engine is told the notice is gone.
const (
	noticeRounds   = 6
	maxNoticePause = 15 * time.Second
)

// notice runs a call that posts or updates a card or report, in rounds of
// tries. Before a new round it asks landed (when given) whether the last
// failure took effect anyway, so that a round never posts twice.
func (s *Slack) notice(ctx context.Context, method string, landed func(context.Context) (bool, error), call func(context.Context) error) error {
	for round := 0; ; round++ {
		err := s.try(ctx, method, landed, call)
		if err == nil || permanent(err) || ctx.Err() != nil || round+1 >= noticeRounds || !transient(err) {
			return err
		}
		pause := min(2*s.backoff<<round, maxNoticePause)
		s.log.Info("slack notice will be tried again", "method", method, "round", round+1, "wait", pause.String())
		if serr := s.sleep(ctx, pause); serr != nil {
			return err
		}
		if landed != nil && mayHaveLanded(err) {
			ok, lerr := landed(ctx)
			if lerr != nil {
				return err
			}
			if ok {
				return nil
			}
		}
	}
}

// transient reports whether a failed call may succeed if tried later.
func transient(err error) bool {
	_, retry, _ := classify(err)
	return retry || errors.Is(err, context.DeadlineExceeded)
}

// permanent reports whether err is an answer from Slack that no retry can
// change: the message or channel is gone, the bot is not in the channel,
// the token is no good, or the message itself will never be accepted.
func permanent(err error) bool {
	code := slackErrorCode(err)
	switch code {
	case "message_not_found", "cant_update_message", "edit_window_closed", "msg_too_long", "no_text",
		"invalid_blocks", "thread_not_found", "channel_not_found", "is_archived", "not_in_channel",
		"restricted_action", "restricted_action_read_only_channel", "restricted_action_thread_only_channel":
		return true
	}
	return tokenRefused(code)
}

// messageGone reports whether err says the message itself is gone or may
// not be changed, while its channel may still be written to.
func messageGone(err error) bool {
	switch slackErrorCode(err) {
	case "message_not_found", "cant_update_message", "edit_window_closed", "msg_too_long", "no_text", "invalid_blocks", "thread_not_found":
		return true
	}
	return false
}

// gone wraps a permanent failure as a Gone *approval.Error, which tells the
// engine to stop owing the notice.
func gone(err error, what string) error {
	return &approval.Error{Kind: approval.Gone, Message: fmt.Sprintf("Slack will never take %s (%s).", what, slackErrorCode(err)), Err: err}
}

// tellCardLost tells r's requester that r's card can no longer show what
// becomes of r, wherever Slack still lets the bot speak: privately in the
// card's channel when only the message is gone, else in the requester's
// direct messages with the bot. With a refused token nobody can be told;
// the log and the audit log say it.
func (s *Slack) tellCardLost(ctx context.Context, r *approval.Request, cause error) {
	code := slackErrorCode(cause)
	if tokenRefused(code) {
		s.log.Error("Slack refuses the bot token; the requester cannot be told their card is lost", "request", r.ID, "code", code)
		return
	}
	text := fmt.Sprintf("I can't update the approval card of %s any more (Slack answers %s), so it won't show what happens next. "+
		"%s is %s now; `/reboot status %s` shows where it stands and `/reboot audit %s` every step.",
		r.ID, code, r.ID, Outcome(r.State), r.ID, r.ID)
	if messageGone(cause) && r.Card.Channel != "" {
		err := s.PostEphemeral(ctx, r.Card.Channel, r.Requester, text)
		if err == nil {
			return
		}
		s.log.Warn("could not tell the requester in the card's channel", "request", r.ID, "err", err)
	}
	err := s.do(ctx, "chat.postMessage", func(ctx context.Context) error {
		_, _, err := s.api.PostMessageContext(ctx, r.Requester, slack.MsgOptionText(text, false),
			slack.MsgOptionDisableLinkUnfurl(), slack.MsgOptionDisableMediaUnfurl())
		return err
	})
	if err != nil {
		s.log.Warn("could not tell the requester their card is lost", "request", r.ID, "err", err)
	}
}
