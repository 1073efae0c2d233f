package bot

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"rebootbot/approval"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var cardNow = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

const (
	requester = "U0REQUESTER"
	approverA = "U0APPROVERA"
	approverB = "U0APPROVERB"
	sreGroup  = "S0SREGROUP"
)

func instance(id, name, zone, ip string) approval.Instance {
	return approval.Instance{ID: id, Name: name, State: approval.InstanceRunning, Zone: zone, PrivateIPs: []string{ip}}
}

// pendingRequest is a SOFT request for two instances waiting for one approval.
func pendingRequest() *approval.Request {
	created := cardNow.Add(-5 * time.Minute)
	return &approval.Request{
		ID: "R-4", Requester: requester, Channel: "C0OPS", Reason: "kernel update (CVE-2025-1234) & restart",
		StopType: approval.Soft, Region: "ap-guangzhou",
		Instances: []approval.Instance{
			instance("ins-1a2b3c4d", "web-1", "ap-guangzhou-3", "10.0.0.11"),
			instance("ins-5e6f7a8b", "web-2", "ap-guangzhou-4", "10.0.0.12"),
		},
		Required: 1, ApproverGroups: [][]string{{approverA, approverB, sreGroup}},
		State: approval.Pending, CreatedAt: created, ExpiresAt: created.Add(30 * time.Minute),
		Card: approval.Card{Channel: "C0OPS", TS: "1741082100.000100"},
	}
}

func hardRequest() *approval.Request {
	r := pendingRequest()
	r.ID, r.StopType, r.Required = "R-5", approval.Hard, 2
	r.ApproverGroups = [][]string{{approverA, approverB, sreGroup}, {sreGroup}}
	r.Approvals = []approval.Approval{{User: approverA, At: cardNow.Add(-time.Minute)}}
	return r
}

func softFirstRequest() *approval.Request {
	r := pendingRequest()
	r.ID, r.StopType, r.Required, r.SelfApproval = "R-6", approval.SoftFirst, 2, true
	return r
}

func hundredRequest() *approval.Request {
	r := pendingRequest()
	r.ID = "R-100"
	r.Instances = nil
	for i := range 100 {
		// Long names full of characters that grow when escaped.
		name := fmt.Sprintf("batch-%03d-", i) + strings.Repeat("<&>", 60)
		r.Instances = append(r.Instances, instance(fmt.Sprintf("ins-%08d", i), name, "ap-guangzhou-3", fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)))
	}
	r.Reason = strings.Repeat("&<>", 333)
	return r
}

func decided(state approval.State, by string, runs ...approval.Run) *approval.Request {
	r := pendingRequest()
	r.State = state
	r.DecidedBy, r.DecidedAt = by, cardNow.Add(-2*time.Minute)
	if len(runs) > 0 {
		r.Approvals = []approval.Approval{{User: approverA, At: cardNow.Add(-2 * time.Minute)}}
		r.Runs = runs
		r.StartedAt = r.DecidedAt
		r.FinishedAt = cardNow.Add(-time.Minute)
	}
	return r
}

func succeededRun(id string, d time.Duration) approval.Run {
	return approval.Run{InstanceID: id, State: approval.RunSucceeded, CallRequestID: "req-aaaa", Duration: d, Reported: true}
}

func failedRun(id string) approval.Run {
	return approval.Run{InstanceID: id, State: approval.RunFailed, CallRequestID: "req-bbbb",
		ErrorCode: "UnsupportedOperation.InstanceStateStopped", ErrorMessage: "instance state STOPPED",
		Explanation: "The instance is stopped, so it cannot be rebooted."}
}

// lapsedRequest is a HARD request approved twice, one of the approvers
// since removed from the policy: their approval no longer counts.
func lapsedRequest() *approval.Request {
	r := hardRequest()
	r.ID = "R-7"
	r.ApproverGroups = [][]string{{approverB, sreGroup}}
	r.Approvals = []approval.Approval{
		{User: approverA, At: cardNow.Add(-3 * time.Minute), Lapsed: true},
		{User: approverB, At: cardNow.Add(-time.Minute)},
	}
	return r
}

// deniedByPolicy is a request the bot ended because a deny rule of the
// policy in force now protects one of its instances.
func deniedByPolicy() *approval.Request {
	r := decided(approval.Denied, approval.ActorBot)
	r.ID = "R-8"
	r.Approvals = []approval.Approval{{User: approverA, At: cardNow.Add(-3 * time.Minute)}}
	r.Note = "The policy in force does not allow rebooting ins-5e6f7a8b through the bot, so nothing was rebooted."
	return r
}

// approvalsInRequest is pending with enough approvals counting, because
// the policy in force lowered what it needs: a click starts it.
func approvalsInRequest() *approval.Request {
	r := pendingRequest()
	r.ID = "R-9"
	r.Approvals = []approval.Approval{{User: approverA, At: cardNow.Add(-time.Minute)}}
	return r
}

func injectionRequest() *approval.Request {
	r := pendingRequest()
	r.ID = "R-13"
	r.Reason = "<!channel> <!here> <!everyone> <@U0ATTACKER> <!subteam^S0OTHER|@oncall> <https://evil.example|click> & ```\nfenced``` *bold* >quote"
	r.Instances[0].Name = "<!channel>`name`&amp;"
	r.Instances[1].Name = "line\nbreak <@U0ATTACKER>"
	r.Instances[1].Zone = "<!here>"
	return r
}

var cardCases = []struct {
	name string
	r    *approval.Request
}{
	{"pending-soft", pendingRequest()},
	{"pending-hard", hardRequest()},
	{"pending-soft-first", softFirstRequest()},
	{"hundred-instances", hundredRequest()},
	{"executing", decided(approval.Executing, approverA, succeededRun("ins-1a2b3c4d", 42*time.Second), approval.Run{InstanceID: "ins-5e6f7a8b", State: approval.RunCalled})},
	{"succeeded", decided(approval.Succeeded, approverA, succeededRun("ins-1a2b3c4d", 42*time.Second), succeededRun("ins-5e6f7a8b", 61*time.Second))},
	{"partially-failed", decided(approval.PartiallyFailed, approverA, succeededRun("ins-1a2b3c4d", 42*time.Second), failedRun("ins-5e6f7a8b"))},
	{"failed", decided(approval.Failed, approverA, failedRun("ins-1a2b3c4d"), failedRun("ins-5e6f7a8b"))},
	{"denied", decided(approval.Denied, approverB)},
	{"expired", decided(approval.Expired, approval.ActorBot)},
	{"cancelled", decided(approval.Cancelled, requester)},
	{"injection", injectionRequest()},
	{"pending-lapsed", lapsedRequest()},
	{"denied-by-policy", deniedByPolicy()},
	{"pending-approvals-in", approvalsInRequest()},
}

func TestRenderCardGolden(t *testing.T) {
	for _, tc := range cardCases {
		t.Run(tc.name, func(t *testing.T) {
			text, blocks := RenderCard(tc.r, cardNow)
			checkBlockLimits(t, blocks)
			checkNoInjectedMarkup(t, text, blocks, tc.r)
			got := mustMarshal(t, map[string]any{"text": text, "blocks": blocks})
			checkGolden(t, "card-"+tc.name+".json", got)
		})
	}
}

func TestRenderCardStates(t *testing.T) {
	tests := []struct {
		r       *approval.Request
		outcome string
		buttons bool
		confirm bool
	}{
		{pendingRequest(), "Pending", true, false},
		{hardRequest(), "Pending", true, true},
		{softFirstRequest(), "Pending", true, true},
		{decided(approval.Succeeded, approverA, succeededRun("ins-1a2b3c4d", time.Second), succeededRun("ins-5e6f7a8b", time.Second)), "Succeeded", false, false},
		{decided(approval.Failed, approverA, failedRun("ins-1a2b3c4d"), failedRun("ins-5e6f7a8b")), "Failed", false, false},
		{decided(approval.PartiallyFailed, approverA, succeededRun("ins-1a2b3c4d", time.Second), failedRun("ins-5e6f7a8b")), "Partially failed", false, false},
		{decided(approval.Denied, approverB), "Denied", false, false},
		{decided(approval.Expired, approval.ActorBot), "Expired", false, false},
		{decided(approval.Cancelled, requester), "Cancelled", false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.r.State)+"-"+string(tt.r.StopType), func(t *testing.T) {
			text, blocks := RenderCard(tt.r, cardNow)
			if !strings.Contains(text, tt.outcome) {
				t.Errorf("text %q does not name the outcome %q", text, tt.outcome)
			}
			all := string(mustMarshal(t, blocks))
			if !strings.Contains(all, "*"+tt.outcome+"*") && tt.outcome != "Pending" {
				t.Errorf("blocks do not state the outcome %q in bold", tt.outcome)
			}
			if tt.r.State.Terminal() && !strings.Contains(all, "<@"+tt.r.DecidedBy+">") && tt.r.DecidedBy != approval.ActorBot {
				t.Errorf("blocks do not say who decided (%s)", tt.r.DecidedBy)
			}
			acts := actionBlocks(blocks)
			if got := len(acts) > 0; got != tt.buttons {
				t.Fatalf("has buttons = %v, want %v", got, tt.buttons)
			}
			if !tt.buttons {
				return
			}
			els := acts[0].Elements.ElementSet
			if len(els) != 2 {
				t.Fatalf("got %d buttons, want 2", len(els))
			}
			approve, deny := els[0].(*slack.ButtonBlockElement), els[1].(*slack.ButtonBlockElement)
			if approve.ActionID != ActionApprove || deny.ActionID != ActionDeny {
				t.Errorf("action IDs = %q, %q; want %q, %q", approve.ActionID, deny.ActionID, ActionApprove, ActionDeny)
			}
			if approve.Value != tt.r.ID || deny.Value != tt.r.ID {
				t.Errorf("button values = %q, %q; want %q", approve.Value, deny.Value, tt.r.ID)
			}
			if got := acts[0].BlockID; got != "decide:"+tt.r.ID {
				t.Errorf("block_id = %q, want one unique to the request", got)
			}
			if got := approve.Confirm != nil; got != tt.confirm {
				t.Errorf("approve has a confirmation = %v, want %v", got, tt.confirm)
			}
		})
	}
}

func TestRenderReport(t *testing.T) {
	r := decided(approval.PartiallyFailed, approverA, succeededRun("ins-1a2b3c4d", 42*time.Second), failedRun("ins-5e6f7a8b"))
	r.Instances[1].Name = "<!channel> db"
	tests := []struct {
		name string
		rep  approval.Report
		want string
	}{
		{"Started", approval.Report{Kind: approval.ReportStarted}, "Rebooting 2 instances (SOFT) in ap-guangzhou."},
		{"InstanceSucceeded", approval.Report{Kind: approval.ReportInstance, Run: &r.Runs[0]}, "✅ `ins-1a2b3c4d` (web-1) is running again after 42s."},
		{"InstanceFailed", approval.Report{Kind: approval.ReportInstance, Run: &r.Runs[1]},
			"❌ `ins-5e6f7a8b` (&lt;!channel&gt; db) did not reboot: The instance is stopped, so it cannot be rebooted. (Tencent Cloud code `UnsupportedOperation.InstanceStateStopped`, RequestId `req-bbbb`)"},
		{"Finished", approval.Report{Kind: approval.ReportFinished}, "*Partially failed*: 1 of 2 instances rebooted, 1 failed. Failed: `ins-5e6f7a8b`."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RenderReport(r, tt.rep); got != tt.want {
				t.Errorf("RenderReport =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestRenderReplies(t *testing.T) {
	events := []approval.Event{
		{Seq: 9, Time: cardNow, RequestID: "R-4", Type: approval.EventApproved, Actor: approverA, Instances: []string{"ins-1a2b3c4d"},
			Details: approval.Details{Approvals: []string{approverA}, Required: 1}},
		{Seq: 8, Time: cardNow.Add(-time.Minute), RequestID: "R-4", Type: approval.EventRequested, Actor: requester, Instances: []string{"ins-1a2b3c4d"},
			Details: approval.Details{Reason: "<!channel> patch", StopType: approval.Soft}},
	}
	tests := []struct {
		name string
		msg  *Message
	}{
		{"status", RenderStatus(injectionRequest(), cardNow)},
		{"pending", RenderPending([]*approval.Request{pendingRequest(), hardRequest()}, cardNow)},
		{"pending-none", RenderPending(nil, cardNow)},
		{"audit", RenderAudit("R-4", events)},
		{"audit-none", RenderAudit("R-4", nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.msg.ResponseType != "ephemeral" {
				t.Errorf("response_type = %q, want ephemeral", tt.msg.ResponseType)
			}
			checkBlockLimits(t, tt.msg.Blocks)
			checkNoInjectedMarkup(t, tt.msg.Text, tt.msg.Blocks, pendingRequest())
			checkGolden(t, "reply-"+tt.name+".json", mustMarshal(t, tt.msg))
		})
	}
}

func TestRenderAuditFifty(t *testing.T) {
	var events []approval.Event
	for i := range 50 {
		events = append(events, approval.Event{Seq: uint64(100 - i), Time: cardNow, RequestID: "R-1", Type: approval.EventApprovalRefused,
			Actor: approverA, Instances: []string{"ins-1a2b3c4d", "ins-5e6f7a8b", "ins-00000000", "ins-00000001"},
			Details: approval.Details{Note: strings.Repeat("<&>", 100), Reason: strings.Repeat("&", 200)}})
	}
	msg := RenderAudit("R-1", events)
	checkBlockLimits(t, msg.Blocks)
	if got := strings.Count(string(mustMarshal(t, msg.Blocks)), "approval_refused"); got != 50 {
		t.Errorf("shows %d events, want 50", got)
	}
}

// actionBlocks returns the card's actions blocks.
func actionBlocks(blocks []slack.Block) []*slack.ActionBlock {
	var out []*slack.ActionBlock
	for _, b := range blocks {
		if a, ok := b.(*slack.ActionBlock); ok {
			out = append(out, a)
		}
	}
	return out
}

// checkBlockLimits asserts Block Kit's limits for messages.
func checkBlockLimits(t *testing.T, blocks []slack.Block) {
	t.Helper()
	if len(blocks) > maxBlocks {
		t.Errorf("%d blocks, limit %d", len(blocks), maxBlocks)
	}
	textLen := func(where string, o *slack.TextBlockObject, limit int) {
		t.Helper()
		if o == nil {
			return
		}
		n := utf8.RuneCountInString(o.Text)
		if n == 0 || n > limit {
			t.Errorf("%s text has %d characters, limits 1..%d", where, n, limit)
		}
	}
	ids := map[string]bool{}
	for i, b := range blocks {
		if id := b.ID(); id != "" {
			if ids[id] || len(id) > 255 {
				t.Errorf("block_id %q repeated or too long", id)
			}
			ids[id] = true
		}
		switch b := b.(type) {
		case *slack.HeaderBlock:
			textLen("header", b.Text, 150)
		case *slack.SectionBlock:
			if b.Text == nil && len(b.Fields) == 0 {
				t.Errorf("block %d: section without text or fields", i)
			}
			textLen("section", b.Text, 3000)
			if len(b.Fields) > 10 {
				t.Errorf("block %d: %d fields, limit 10", i, len(b.Fields))
			}
			for _, f := range b.Fields {
				textLen("field", f, 2000)
			}
		case *slack.ActionBlock:
			if n := len(b.Elements.ElementSet); n > 25 {
				t.Errorf("actions block with %d elements, limit 25", n)
			}
			for _, el := range b.Elements.ElementSet {
				btn, ok := el.(*slack.ButtonBlockElement)
				if !ok {
					continue
				}
				textLen("button", btn.Text, 75)
				if len(btn.Value) > 2000 || len(btn.ActionID) > 255 {
					t.Errorf("button %q value or action_id too long", btn.ActionID)
				}
				if c := btn.Confirm; c != nil {
					textLen("confirm title", c.Title, 100)
					textLen("confirm text", c.Text, 300)
					textLen("confirm button", c.Confirm, 30)
					textLen("deny button", c.Deny, 30)
				}
			}
		case *slack.ContextBlock:
			if n := len(b.ContextElements.Elements); n > 10 {
				t.Errorf("context with %d elements, limit 10", n)
			}
		default:
			t.Errorf("block %d: unexpected type %T", i, b)
		}
	}
}

var markupRE = regexp.MustCompile(`<[^>]*>`)

// checkNoInjectedMarkup asserts that the only Slack markup in a rendered
// message is the bot's own: dates and mentions of the request's people and
// approvers. Nothing from user text can ping anyone or open a code block.
func checkNoInjectedMarkup(t *testing.T, text string, blocks []slack.Block, r *approval.Request) {
	t.Helper()
	allowed := map[string]bool{"<@" + r.Requester + ">": true}
	for _, g := range r.ApproverGroups {
		for _, id := range g {
			allowed["<@"+id+">"] = true
		}
	}
	for _, a := range r.Approvals {
		allowed["<@"+a.User+">"] = true
	}
	if r.DecidedBy != "" {
		allowed["<@"+r.DecidedBy+">"] = true
	}
	var texts []string
	texts = append(texts, text)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "text" {
					texts = append(texts, s)
				} else {
					walk(x)
				}
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var decoded any
	if err := json.Unmarshal(mustMarshal(t, blocks), &decoded); err != nil {
		t.Fatal(err)
	}
	walk(decoded)
	for _, s := range texts {
		for _, m := range markupRE.FindAllString(s, -1) {
			if !allowed[m] && !strings.HasPrefix(m, "<!date^") {
				t.Errorf("text carries markup %q not made by the bot: %q", m, truncate(s, 200))
			}
		}
		if strings.Contains(s, "```") {
			t.Errorf("text carries a code fence: %q", truncate(s, 200))
		}
		for _, bad := range []string{"<!channel", "<!here", "<!everyone", "<!subteam", "<@U0ATTACKER", "<https:"} {
			if strings.Contains(s, bad) {
				t.Errorf("text carries %q: %q", bad, truncate(s, 200))
			}
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./bot -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; got:\n%s", path, got)
	}
}

func BenchmarkRenderCard(b *testing.B) {
	r := hundredRequest()
	for b.Loop() {
		RenderCard(r, cardNow)
	}
}
