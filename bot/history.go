package bot

import (
	"context"
	"strconv"
	"time"

	"github.com/slack-go/slack"

	"rebootbot/approval"
)

// Posting a message is not idempotent in Slack's API, but the Notifier
// contract asks that a card or report sent again (after a failure whose
// answer was lost, or after a restart) lands once. Each card and report
// carries metadata naming its request (and report); when the bot cannot be
// sure it has not posted already, it reads the channel or the thread
// (channels:history, groups:history) and skips what is there. Without
// those scopes it posts anyway: a rare duplicate beats a lost message.
// Only messages the bot itself posted (its bot ID, from auth.test) count:
// metadata is no proof, since any app in the channel can post the same.

// Metadata event types of the bot's messages.
const (
	cardEvent   = "rebootbot_card"
	reportEvent = "rebootbot_report"
)

// Bounds of a history read: pages of up to 200 messages.
const (
	historyPages   = 5
	historyPerPage = 200
)

func cardMetadata(r *approval.Request) slack.SlackMetadata {
	return slack.SlackMetadata{EventType: cardEvent, EventPayload: map[string]any{"request_id": r.ID}}
}

func reportMetadata(r *approval.Request, key string) slack.SlackMetadata {
	return slack.SlackMetadata{EventType: reportEvent, EventPayload: map[string]any{"request_id": r.ID, "report": key}}
}

// reportKey names a report within its request's thread.
func reportKey(rep approval.Report) string {
	if rep.Kind == approval.ReportInstance && rep.Run != nil {
		return string(rep.Kind) + ":" + rep.Run.InstanceID
	}
	if rep.Kind == approval.ReportWave {
		return string(rep.Kind) + ":" + strconv.Itoa(rep.Wave)
	}
	return string(rep.Kind)
}

// mayHavePosted reports whether an earlier post of what key names may have
// landed unseen: it failed earlier in this process, or it belongs to a
// request from before this process started.
func (s *Slack) mayHavePosted(key string, since time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.historyOff {
		return false
	}
	return s.unsure[key] || (!since.IsZero() && since.Before(s.started))
}

// setUnsure records whether a post for key may have landed unseen.
func (s *Slack) setUnsure(key string, unsure bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if unsure {
		s.unsure[key] = true
	} else {
		delete(s.unsure, key)
	}
}

// historyRefused reports whether err says the bot may not read history;
// the first time, it turns history reads off for good and says so.
func (s *Slack) historyRefused(err error) bool {
	switch slackErrorCode(err) {
	case "missing_scope", "not_allowed_token_type", "no_permission", "unknown_method", "method_deprecated":
	default:
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.historyOff {
		s.historyOff = true
		s.log.Warn("cannot read channel history (add the channels:history and groups:history scopes); "+
			"a card or report re-sent after a crash may appear twice", "err", err)
	}
	return true
}

// historyDisabled reports whether history reads were refused before.
func (s *Slack) historyDisabled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.historyOff
}

// findCard looks for r's card among the channel's recent messages.
func (s *Slack) findCard(ctx context.Context, r *approval.Request) (approval.Card, bool, error) {
	if s.historyDisabled() {
		return approval.Card{}, false, nil
	}
	self, err := s.identity(ctx)
	if err != nil {
		return approval.Card{}, false, err
	}
	params := &slack.GetConversationHistoryParameters{ChannelID: r.Channel, Limit: historyPerPage, IncludeAllMetadata: true}
	if !r.CreatedAt.IsZero() {
		params.Oldest = slackTS(r.CreatedAt.Add(-10 * time.Minute))
	}
	for range historyPages {
		var resp *slack.GetConversationHistoryResponse
		err := s.do(ctx, "conversations.history", func(ctx context.Context) error {
			var err error
			resp, err = s.api.GetConversationHistoryContext(ctx, params)
			return err
		})
		if err != nil {
			return approval.Card{}, false, s.historyError(err)
		}
		for _, m := range resp.Messages {
			if self.postedBy(m.BotID, m.User) && isOurs(m.Metadata, cardEvent, r.ID, "") {
				return approval.Card{Channel: r.Channel, TS: m.Timestamp}, true, nil
			}
		}
		if !resp.HasMore || resp.ResponseMetaData.NextCursor == "" {
			break
		}
		params.Cursor = resp.ResponseMetaData.NextCursor
	}
	return approval.Card{}, false, nil
}

// threadReports returns the keys of the reports already in r's thread.
func (s *Slack) threadReports(ctx context.Context, r *approval.Request) (map[string]bool, error) {
	found := map[string]bool{}
	if s.historyDisabled() {
		return found, nil
	}
	self, err := s.identity(ctx)
	if err != nil {
		return nil, err
	}
	params := &slack.GetConversationRepliesParameters{ChannelID: r.Card.Channel, Timestamp: r.Card.TS, Limit: historyPerPage, IncludeAllMetadata: true}
	for range historyPages {
		var (
			msgs   []slack.Message
			more   bool
			cursor string
		)
		err := s.do(ctx, "conversations.replies", func(ctx context.Context) error {
			var err error
			msgs, more, cursor, err = s.api.GetConversationRepliesContext(ctx, params)
			return err
		})
		if err != nil {
			if herr := s.historyError(err); herr != nil {
				return nil, herr
			}
			return found, nil // what can be known: nothing
		}
		for _, m := range msgs {
			key, ok := m.Metadata.EventPayload["report"].(string)
			if ok && self.postedBy(m.BotID, m.User) && isOurs(m.Metadata, reportEvent, r.ID, key) {
				found[key] = true
			}
		}
		if !more || cursor == "" {
			break
		}
		params.Cursor = cursor
	}
	return found, nil
}

// historyError turns a failed history read into nil when reading is not
// possible (then the caller posts regardless), or the error to retry on.
func (s *Slack) historyError(err error) error {
	if s.historyRefused(err) {
		return nil
	}
	switch slackErrorCode(err) {
	case "not_in_channel", "channel_not_found", "thread_not_found":
		return nil
	}
	return err
}

// isOurs reports whether metadata marks a message of the bot about request
// id (and report key, when not empty).
func isOurs(md slack.SlackMetadata, event, id, key string) bool {
	if md.EventType != event {
		return false
	}
	if got, _ := md.EventPayload["request_id"].(string); got != id {
		return false
	}
	if key == "" {
		return true
	}
	got, _ := md.EventPayload["report"].(string)
	return got == key
}

// slackTS renders t as a Slack timestamp (whole seconds are enough for
// the bounds of a history read).
func slackTS(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
