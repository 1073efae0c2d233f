package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Message is a reply sent through a response_url or as a command's answer.
type Message struct {
	ResponseType    string        `json:"response_type,omitempty"` // ephemeral or in_channel
	Text            string        `json:"text"`
	Blocks          []slack.Block `json:"blocks,omitempty"`
	ReplaceOriginal bool          `json:"replace_original"`
	DeleteOriginal  bool          `json:"delete_original,omitempty"`
}

// Ephemeral returns a message shown only to the person who acted.
func Ephemeral(text string) *Message { return &Message{ResponseType: "ephemeral", Text: text} }

// slackHooksHost is where Slack's response URLs live.
const slackHooksHost = "hooks.slack.com"

// errForeignResponseURL refuses a response_url that is neither Slack's nor
// the configured stand-in's.
var errForeignResponseURL = errors.New("response_url is not on https://" + slackHooksHost + "/ or the configured Slack API host; reply not sent")

// Respond posts msg to a response_url. Only https://hooks.slack.com/ and the
// host of a configured API URL (a local stand-in for Slack) are answered:
// the URL arrives in a payload, and a bot that posted wherever a payload
// pointed could be made to carry its replies to any server. The URL is a
// capability and is never logged or put in an error.
func (s *Slack) Respond(ctx context.Context, responseURL string, msg *Message) error {
	u, err := url.Parse(responseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("response_url is not an http(s) URL")
	}
	if !s.responseHostAllowed(u) {
		s.log.Warn("ignored a response_url on a foreign host", "host", u.Host)
		return errForeignResponseURL
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	return s.do(ctx, "response_url", func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, responseURL, bytes.NewReader(body))
		if err != nil {
			return errors.New("response_url request could not be built")
		}
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		resp, err := s.http.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				return &responseURLError{err: ue.Err}
			}
			return &responseURLError{err: err}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		switch {
		case resp.StatusCode == http.StatusTooManyRequests:
			sec, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			return &slack.RateLimitedError{RetryAfter: time.Duration(sec) * time.Second}
		case resp.StatusCode != http.StatusOK:
			return slack.StatusCodeError{Code: resp.StatusCode, Status: resp.Status}
		}
		var r struct {
			OK    *bool  `json:"ok"`
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &r) == nil && r.OK != nil && !*r.OK {
			return slack.SlackErrorResponse{Err: r.Error}
		}
		return nil
	})
}

// responseURLError is a network failure on a response_url, without the URL.
type responseURLError struct{ err error }

func (e *responseURLError) Error() string { return "response_url: " + e.err.Error() }
func (e *responseURLError) Unwrap() error { return e.err }

// responseHostAllowed reports whether replies may be posted to u: Slack's
// hooks host over HTTPS, or the scheme and host of an API URL configured
// instead of Slack's own.
func (s *Slack) responseHostAllowed(u *url.URL) bool {
	if u.User != nil {
		return false
	}
	if u.Scheme == "https" && strings.EqualFold(u.Host, slackHooksHost) {
		return true
	}
	if s.apiURL == slack.APIURL {
		return false
	}
	api, err := url.Parse(s.apiURL)
	return err == nil && api.Host != "" && u.Scheme == api.Scheme && strings.EqualFold(u.Host, api.Host)
}
