package bot_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"rebootbot/bot/slackstub"
)

const stubToken = "xoxb-test-token-0001"

// apiCall is one request the Slack stand-in received.
type apiCall = slackstub.Call

// stubMessage is a message as it stands in a channel, updates applied.
type stubMessage = slackstub.Message

// stubFault is a scripted misbehaviour for one call of a method.
type stubFault struct {
	Status     int           // HTTP status; 0 = 200
	RetryAfter string        // Retry-After header with a 429
	Error      string        // Slack error code in an ok:false answer
	Delay      time.Duration // answer this late (ends early if the client goes away)
	Land       bool          // do what was asked, then answer with Status anyway
}

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

// newResponseURL returns a fresh response_url served by the stand-in.
func (s *slackStub) newResponseURL() string { return s.ResponseURL() }

// fail queues faults for the next calls of method, one call each.
func (s *slackStub) fail(method string, faults ...stubFault) {
	for _, f := range faults {
		retryAfter, _ := strconv.Atoi(f.RetryAfter)
		s.Fail(slackstub.Fault{Method: method, Status: f.Status, RetryAfter: retryAfter, Error: f.Error, Delay: f.Delay, Land: f.Land})
	}
}

func (s *slackStub) setGroup(id string, members ...string) { s.SetGroup(id, members...) }

// refuseHistory makes history reads fail as without the history scopes.
func (s *slackStub) refuseHistory() { s.RefuseHistory() }

// serveSocket makes /ws serve Socket Mode connections with fn.
func (s *slackStub) serveSocket(fn func(w http.ResponseWriter, r *http.Request)) {
	s.SetSocket(http.HandlerFunc(fn))
}

func (s *slackStub) botNotIn(channel string) { s.NotInChannel(channel) }

// all returns the answered calls of method (every call when method is "").
func (s *slackStub) all(method string) []apiCall {
	var out []apiCall
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
func (s *slackStub) responsesTo(responseURL string) []apiCall {
	u, _ := url.Parse(responseURL)
	var out []apiCall
	for _, c := range s.all("response_url") {
		if c.Path == u.Path {
			out = append(out, c)
		}
	}
	return out
}

// cards returns the messages standing in channel outside threads.
func (s *slackStub) cards(channel string) []stubMessage {
	var out []stubMessage
	for _, m := range s.Messages() {
		if m.Channel == channel && m.ThreadTS == "" {
			out = append(out, m)
		}
	}
	return out
}

// thread returns the replies standing in the thread of ts.
func (s *slackStub) thread(ts string) []stubMessage { return s.Thread(ts) }

// message returns the message ts as it stands.
func (s *slackStub) message(ts string) (stubMessage, bool) {
	for _, m := range s.Messages() {
		if m.TS == ts {
			return m, true
		}
	}
	return stubMessage{}, false
}

// tsOf returns the ts the stand-in gave the n-th (1-based) posted message.
func tsOf(n int) string { return fmt.Sprintf("1800000000.%06d", n) }

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
