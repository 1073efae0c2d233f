package bot_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"rebootbot/approval"
)

// TestRejections covers every refusal of a new request: syntax errors are
// answered at once; the rest after the engine checked, through the
// command's response_url. None posts a card or holds an instance, and each
// is audited as one rejected event.
func TestRejections(t *testing.T) {
	hundredAndOne := make([]string, 101)
	for i := range hundredAndOne {
		hundredAndOne[i] = fmt.Sprintf("ins-%08d", i)
	}
	tests := []struct {
		name    string
		policy  func(*approval.Policy)
		user    string
		channel string
		setup   func(e *env)
		text    string
		want    string // in the answer
		syntax  bool   // refused by the grammar, answered at once
		// free is an instance that must be free afterwards ("" for web1;
		// "-" when the policy refuses every follow-up anyway).
		free string
	}{
		{name: "BadSyntax", text: "ins-web0001 hung", want: "`ins-web0001` is not a valid instance ID", syntax: true},
		{name: "NoReason", text: "ins-web00001", want: "A reason is required", syntax: true},
		{name: "UnknownOption", text: "ins-web00001 --now hung", want: "Unknown option `--now`", syntax: true},
		{name: "UnknownInstance", text: "ins-nothere1 hung", want: "ins-nothere1 does not exist in ap-guangzhou"},
		{name: "NotRunning", text: "ins-web00001 ins-stopped1 hung", want: "ins-stopped1 is STOPPED"},
		{name: "AlreadyHeld", setup: func(e *env) { e.create(requester, "ins-web00001 first") },
			text: "ins-web00002 ins-web00001 second", want: "ins-web00001 already has an open request, R-1", free: "ins-web00002"},
		{name: "TooManyForPolicy", policy: func(p *approval.Policy) { p.MaxInstances = 2 },
			text: "ins-web00001 ins-web00002 ins-web00003 fleet", want: "at most 2 instances"},
		{name: "TooManyForAPI", text: strings.Join(hundredAndOne, " ") + " fleet", want: "at most 100 instances"},
		{name: "RegionNotAllowed", text: "ins-web00001 --region ap-beijing hung", want: "Region ap-beijing is not allowed"},
		{name: "RequesterNotAllowed", policy: func(p *approval.Policy) { p.Requesters = []string{approverB} },
			text: "ins-web00001 hung", want: "not on the list of people who may request", free: "-"},
		{name: "ChannelNotAllowed", policy: func(p *approval.Policy) { p.Channels = []string{"C0ELSEWHERE"} },
			text: "ins-web00001 hung", want: "not enabled in this channel", free: "-"},
		{name: "DenyRule", text: "ins-deny0001 hung", want: "does not allow rebooting ins-deny0001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEnv(t, func(c *envConfig) {
				if tt.policy != nil {
					tt.policy(c.policy)
				}
			})
			if tt.setup != nil {
				tt.setup(e)
			}
			cardsBefore := len(e.stub.cards(channel))
			eventsBefore := len(e.events(approval.AuditQuery{}))
			ans, responseURL := e.command(requester, channel, tt.text)
			if ans.Status != http.StatusOK || ans.Body["response_type"] != "ephemeral" {
				t.Fatalf("command answered %d %q", ans.Status, ans.Raw)
			}
			got := ans.text()
			if !tt.syntax {
				if !strings.HasPrefix(got, "Checking") {
					t.Fatalf("command answered %q, want a quick acknowledgement", got)
				}
				got = e.responseText(responseURL, 1)
				if c := e.stub.responsesTo(responseURL)[0]; c.JSON["response_type"] != "ephemeral" {
					t.Errorf("refusal is not ephemeral: %v", c.JSON)
				}
			} else if !strings.Contains(got, "Usage:") {
				t.Errorf("syntax error %q does not show the usage", got)
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("answer %q does not contain %q", got, tt.want)
			}
			if n := len(e.stub.cards(channel)); n != cardsBefore {
				t.Errorf("%d cards posted, want none", n-cardsBefore)
			}
			evs := e.events(approval.AuditQuery{})[eventsBefore:]
			if len(evs) != 1 || evs[0].Type != approval.EventRejected || evs[0].Actor != requester {
				t.Errorf("audit events %v, want one rejected event by the requester", eventTypes(evs))
			}
			switch tt.free {
			case "-":
			case "":
				// Nothing is held: the same instance can be requested at once.
				e.create(requester, "ins-web00001 after the refusal")
			default:
				e.create(requester, tt.free+" after the refusal")
			}
		})
	}
}

// TestNotInChannel: Slack refuses the card; the requester is told what to
// do, the request is not left pending and holds no instance.
func TestNotInChannel(t *testing.T) {
	e := mustEnv(t)
	e.stub.NotInChannel("C0PRIVATE")
	ans, responseURL := e.command(requester, "C0PRIVATE", "ins-web00001 hung")
	if !strings.HasPrefix(ans.text(), "Checking") {
		t.Fatalf("command answered %q", ans.Raw)
	}
	if got, want := e.responseText(responseURL, 1), "I can't post in this channel: invite me with /invite @rebootbot and try again."; got != want {
		t.Errorf("requester was told %q, want %q", got, want)
	}
	pending, err := e.engine.Pending(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 {
		t.Errorf("%d requests left pending", len(pending))
	}
	e.create(requester, "ins-web00001 from a channel the bot is in")
	if n := len(e.stub.cards("C0PRIVATE")); n != 0 {
		t.Errorf("%d cards in the channel the bot is not in", n)
	}
}
