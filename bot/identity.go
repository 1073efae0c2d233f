package bot

import (
	"context"
	"errors"
	"fmt"

	"github.com/slack-go/slack"
)

// Identity is who the bot token speaks as, as auth.test answered.
type Identity struct {
	UserID string // the bot's user (U…)
	BotID  string // the bot (B…), set on every message it posts
	TeamID string
	Team   string // the workspace's name
	User   string // the bot user's name
	URL    string // the workspace's URL
}

// TokenRefusedError says Slack refused the bot token itself: no call made
// with it can succeed. Code is Slack's error code; the token is never part
// of it.
type TokenRefusedError struct{ Code string }

func (e *TokenRefusedError) Error() string { return "Slack refused the bot token: " + e.Code }

// tokenRefused reports whether Slack's error code code means the token is
// no good at all (wrong, revoked, of the wrong type, or its workspace or
// user gone), whichever token it is: the bot token here, the app token in
// appTokenRefusal.
func tokenRefused(code string) bool {
	switch code {
	case "invalid_auth", "not_authed", "not_allowed_token_type", "account_inactive", "token_revoked",
		"token_expired", "team_disabled", "org_login_required", "ekm_access_denied":
		return true
	}
	return false
}

// Identify asks Slack who the bot token belongs to (auth.test) and keeps
// the answer: the bot adopts, as its own earlier posts, only messages
// carrying that bot's ID. A token Slack refuses comes back as a
// *TokenRefusedError.
func (s *Slack) Identify(ctx context.Context) (Identity, error) {
	var resp *slack.AuthTestResponse
	err := s.do(ctx, "auth.test", func(ctx context.Context) error {
		var err error
		resp, err = s.api.AuthTestContext(ctx)
		return err
	})
	if err != nil {
		if code := slackErrorCode(err); tokenRefused(code) {
			return Identity{}, &TokenRefusedError{Code: code}
		}
		return Identity{}, fmt.Errorf("auth.test: %w", err)
	}
	id := Identity{UserID: resp.UserID, BotID: resp.BotID, TeamID: resp.TeamID, Team: resp.Team, User: resp.User, URL: resp.URL}
	if id.UserID == "" && id.BotID == "" {
		return Identity{}, errors.New("auth.test: Slack named neither a user nor a bot for the token")
	}
	s.mu.Lock()
	s.self = id
	s.mu.Unlock()
	return id, nil
}

// identity returns who the bot is, asking Slack the first time.
func (s *Slack) identity(ctx context.Context) (Identity, error) {
	s.mu.Lock()
	id := s.self
	s.mu.Unlock()
	if id.UserID != "" || id.BotID != "" {
		return id, nil
	}
	return s.Identify(ctx)
}

// postedBy reports whether a message with the given bot ID and user was
// posted by the bot id names.
func (id Identity) postedBy(botID, user string) bool {
	return id.BotID != "" && botID == id.BotID || id.UserID != "" && user == id.UserID
}
