package bot

import (
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"rebootbot/approval"
)

// maxReplyBlocks bounds the sections of a list reply.
const maxReplyBlocks = 40

// RenderStatus returns the answer to /reboot status: the card as it stands,
// without buttons.
func RenderStatus(r *approval.Request, now time.Time) *Message {
	return &Message{ResponseType: "ephemeral", Text: cardText(r), Blocks: cardBlocks(r, now, false)}
}

// RenderPending returns the answer to /reboot pending.
func RenderPending(rs []*approval.Request, now time.Time) *Message {
	if len(rs) == 0 {
		return Ephemeral("No request is waiting for approval.")
	}
	lines := []string{fmt.Sprintf("*Waiting for approval (%d)*", len(rs))}
	for _, r := range rs {
		lines = append(lines, fmt.Sprintf("• *%s* · %s · %s · %s · by %s · %d of %d approvals · expires %s (%s)\n    %s",
			r.ID, countInstances(len(r.Instances)), r.StopType, escapeText(r.Region), userRef(r.Requester),
			len(r.Counted()), r.Required, slackDate(r.ExpiresAt), until(r.ExpiresAt, now),
			escapeText(truncate(oneLine(r.Reason), 120))))
	}
	return listMessage(fmt.Sprintf("%d %s waiting for approval.", len(rs), plural(len(rs), "request is", "requests are")), lines)
}

// RenderAudit returns the answer to /reboot audit: the events, newest first.
func RenderAudit(what string, events []approval.Event) *Message {
	if len(events) == 0 {
		return Ephemeral("No audit events for " + what + ".")
	}
	lines := []string{fmt.Sprintf("*Audit log for %s* (latest %d, newest first)", what, len(events))}
	for i := range events {
		lines = append(lines, auditLine(&events[i]))
	}
	return listMessage(fmt.Sprintf("%d audit %s for %s.", len(events), plural(len(events), "event", "events"), what), lines)
}

func auditLine(e *approval.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "• `#%d` %s", e.Seq, slackDateSecs(e.Time))
	if e.RequestID != "" {
		b.WriteString(" *" + escapeText(e.RequestID) + "*")
	}
	fmt.Fprintf(&b, " %s by %s", escapeText(string(e.Type)), userRef(e.Actor))
	if n := len(e.Instances); n > 0 {
		ids := make([]string, 0, 3)
		for _, id := range e.Instances[:min(n, 3)] {
			ids = append(ids, "`"+escapeText(truncate(id, 20))+"`")
		}
		b.WriteString(" · " + strings.Join(ids, ", "))
		if n > 3 {
			fmt.Fprintf(&b, " and %d more", n-3)
		}
	}
	d := e.Details
	var parts []string
	if d.StopType != "" {
		parts = append(parts, escapeText(string(d.StopType)))
	}
	if d.Required > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d approvals", len(d.Approvals), d.Required))
	}
	if d.Outcome != "" {
		parts = append(parts, "outcome "+escapeText(truncate(d.Outcome, 40)))
	}
	if d.Duration != "" {
		parts = append(parts, "took "+escapeText(truncate(d.Duration, 20)))
	}
	if d.ErrorCode != "" {
		parts = append(parts, "code `"+escapeText(truncate(oneLine(d.ErrorCode), 80))+"`")
	}
	if d.CloudRequestID != "" {
		parts = append(parts, "RequestId `"+escapeText(truncate(oneLine(d.CloudRequestID), 80))+"`")
	}
	if d.Reason != "" {
		parts = append(parts, "reason: "+escapeText(truncate(oneLine(d.Reason), 80)))
	}
	if d.Note != "" {
		parts = append(parts, escapeText(truncate(oneLine(d.Note), 160)))
	}
	if len(d.Selector) > 0 {
		parts = append(parts, "selected `"+escapeText(truncate(oneLine(strings.Join(d.Selector, " ")), 120))+"`")
	}
	if d.Fingerprint != "" {
		parts = append(parts, "fingerprint `"+escapeText(truncate(d.Fingerprint, 16))+"`")
	}
	if len(parts) > 0 {
		b.WriteString(" · " + strings.Join(parts, " · "))
	}
	return b.String()
}

// listMessage packs lines into sections within Block Kit's limits.
func listMessage(text string, lines []string) *Message {
	var blocks []slack.Block
	for _, t := range packLines(lines, maxReplyBlocks) {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(t), nil, nil))
	}
	return &Message{ResponseType: "ephemeral", Text: text, Blocks: blocks}
}

func slackDateSecs(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short} {time_secs}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04:05 UTC"))
}
