package bot_test

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"

	"rebootbot/bot/slackstub"
)

const stubToken = "xoxb-test-token-0001"

// slackStub is bot/slackstub served on loopback, with the lookups the
// tests of this package use.
type slackStub struct {
	*slackstub.Server
}

func mustSlackStub(t testing.TB) *slackStub {
	s := slackstub.New()
	s.Token, s.AppToken = stubToken, "xapp-test-token"
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return &slackStub{s}
}

// APIURL is the base URL to configure as SLACK_API_URL.
func (s *slackStub) APIURL() string { return s.URL + "/api/" }

// all returns the answered calls of method (every call when method is "").
func (s *slackStub) all(method string) []slackstub.Call {
	var out []slackstub.Call
	for _, c := range s.Calls() {
		if (method == "" || c.Method == method) && c.Status != 0 {
			out = append(out, c)
		}
	}
	return out
}

// count returns how many calls of method were answered ok.
func (s *slackStub) count(method string) int {
	n := 0
	for _, c := range s.all(method) {
		if c.OK() {
			n++
		}
	}
	return n
}

// responsesTo returns the messages posted to one response_url.
func (s *slackStub) responsesTo(responseURL string) []slackstub.Call {
	u, _ := url.Parse(responseURL)
	var out []slackstub.Call
	for _, c := range s.all("response_url") {
		if c.Path == u.Path {
			out = append(out, c)
		}
	}
	return out
}

// cards returns the messages standing in channel outside threads.
func (s *slackStub) cards(channel string) []slackstub.Message {
	var out []slackstub.Message
	for _, m := range s.Messages() {
		if m.Channel == channel && m.ThreadTS == "" {
			out = append(out, m)
		}
	}
	return out
}

// message returns the message ts as it stands.
func (s *slackStub) message(ts string) (slackstub.Message, bool) {
	for _, m := range s.Messages() {
		if m.TS == ts {
			return m, true
		}
	}
	return slackstub.Message{}, false
}

// tsOf returns the ts the stand-in gave the n-th (1-based) posted message.
func tsOf(n int) string { return fmt.Sprintf("1800000000.%06d", n) }
