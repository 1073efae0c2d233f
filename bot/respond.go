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

// Respond posts msg to a response_url. The URL is a capability and is never
// logged or put in an error.
func (s *Slack) Respond(ctx context.Context, responseURL string, msg *Message) error {
	u, err := url.Parse(responseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("response_url is not an http(s) URL")
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
