package bot

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"rebootbot/approval"
)

// Action IDs of the card's buttons; their value is the request ID.
const (
	ActionApprove = "approve"
	ActionDeny    = "deny"
	ActionStop    = "stop"
)

// Block Kit limits the card stays within.
const (
	maxBlocks        = 50
	maxSectionText   = 3000
	maxHeaderText    = 150
	maxInstanceBlock = 30 // sections used for the instance list at most
	maxNameRunes     = 60 // instance names are cut to this on the card
)

// RenderCard returns r's approval card as of now: the plain-text fallback
// and the blocks. While r is pending the card carries Approve and Deny
// buttons, and while a rolling request has waves still to start, Stop;
// once decided it states the outcome, who decided and when.
func RenderCard(r *approval.Request, now time.Time) (text string, blocks []slack.Block) {
	return cardText(r), cardBlocks(r, now, true)
}

// Outcome returns the word a card shows for a request in state s: one of
// the outcomes Succeeded, Failed, Partially failed, Stopped, Denied,
// Expired, Cancelled (and Rejected) once decided, else where it stands.
func Outcome(s approval.State) string {
	switch s {
	case approval.Succeeded:
		return "Succeeded"
	case approval.Failed:
		return "Failed"
	case approval.PartiallyFailed:
		return "Partially failed"
	case approval.Denied:
		return "Denied"
	case approval.Expired:
		return "Expired"
	case approval.Cancelled:
		return "Cancelled"
	case approval.Rejected:
		return "Rejected"
	case approval.Stopped:
		return "Stopped"
	case approval.Approved:
		return "Approved"
	case approval.Executing:
		return "Rebooting"
	default:
		return "Pending"
	}
}

// cardText is the notification and fallback text: no mentions, user text
// escaped and on one line.
func cardText(r *approval.Request) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Reboot request %s (%s): %s, %s, %s", r.ID, Outcome(r.State), countInstances(len(r.Instances)), r.StopType, escapeText(r.Region))
	if r.State == approval.Pending {
		fmt.Fprintf(&b, "; %d of %d approvals", len(r.Counted()), r.Required)
	}
	fmt.Fprintf(&b, ". Reason: %s", escapeText(truncate(oneLine(r.Reason), 200)))
	return b.String()
}

func cardBlocks(r *approval.Request, now time.Time, buttons bool) []slack.Block {
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain(truncate("Reboot request "+r.ID+": "+Outcome(r.State), maxHeaderText))),
		slack.NewSectionBlock(nil, summaryFields(r, now), nil),
		slack.NewSectionBlock(mrkdwn(fitQuoted("*Reason*\n", r.Reason, maxSectionText)), nil, nil),
	}
	for _, text := range fleetSections(r) {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(text), nil, nil))
	}
	if t := wavesText(r, now); t != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(t), nil, nil))
	}
	for _, text := range instanceSections(r) {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(text), nil, nil))
	}
	if t := approvalsText(r); t != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(t), nil, nil))
	}
	if t := outcomeText(r); t != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(t), nil, nil))
	}
	switch {
	case buttons && r.State == approval.Pending:
		blocks = append(blocks, decisionButtons(r))
	case buttons && stoppable(r):
		blocks = append(blocks, stopButton(r))
	}
	return blocks
}

func summaryFields(r *approval.Request, now time.Time) []*slack.TextBlockObject {
	fields := []*slack.TextBlockObject{
		mrkdwn("*Requested by*\n" + userRef(r.Requester)),
		mrkdwn("*Stop type*\n" + stopTypeText(r.StopType)),
		mrkdwn("*Region*\n" + escapeText(r.Region)),
		mrkdwn(fmt.Sprintf("*Approvals*\n%d of %d", len(r.Counted()), r.Required)),
	}
	switch {
	case r.State == approval.Pending:
		fields = append(fields, mrkdwn("*Expires*\n"+slackDate(r.ExpiresAt)+" ("+until(r.ExpiresAt, now)+")"))
	case !r.DecidedAt.IsZero():
		fields = append(fields, mrkdwn("*Decided*\n"+slackDate(r.DecidedAt)))
	}
	return fields
}

func stopTypeText(st approval.StopType) string {
	switch st {
	case approval.Hard:
		return "HARD (power off at once)"
	case approval.SoftFirst:
		return "SOFT_FIRST (graceful, then power off)"
	case approval.Soft:
		return "SOFT (graceful shutdown)"
	}
	return escapeText(string(st))
}

// instanceSections lists every instance, one line each, packed into as
// few sections as the 3000-character limit allows; past maxInstanceBlock
// sections the rest is summarised as "… and N more".
func instanceSections(r *approval.Request) []string {
	if len(r.Instances) > fullListMax {
		return firstInstanceSections(r)
	}
	lines := make([]string, 0, len(r.Instances)+1)
	lines = append(lines, fmt.Sprintf("*Instances (%d)*", len(r.Instances)))
	for _, in := range r.Instances {
		lines = append(lines, instanceLine(in, r.Run(in.ID)))
	}
	return packLines(lines, maxInstanceBlock)
}

// packLines joins lines into texts of at most maxSectionText runes, at
// most maxTexts of them; what does not fit is counted in a last line
// "… and N more". Every line must fit a text on its own.
func packLines(lines []string, maxTexts int) []string {
	var (
		texts []string
		cur   []string
		size  int
	)
	for i := 0; i < len(lines); i++ {
		n := utf8.RuneCountInString(lines[i])
		if len(cur) == 0 || size+1+n <= maxSectionText {
			if len(cur) > 0 {
				size++
			}
			cur = append(cur, lines[i])
			size += n
			continue
		}
		if len(texts) == maxTexts-1 {
			for {
				more := fmt.Sprintf("… and %d more", len(lines)-i)
				if size+1+utf8.RuneCountInString(more) <= maxSectionText || len(cur) == 1 {
					cur = append(cur, more)
					return append(texts, strings.Join(cur, "\n"))
				}
				size -= 1 + utf8.RuneCountInString(cur[len(cur)-1])
				cur = cur[:len(cur)-1]
				i--
			}
		}
		texts = append(texts, strings.Join(cur, "\n"))
		cur, size = []string{lines[i]}, n
	}
	if len(cur) > 0 {
		texts = append(texts, strings.Join(cur, "\n"))
	}
	return texts
}

// instanceLine renders one instance: ID, name, state, zone, private IP and,
// once execution started, its result.
func instanceLine(in approval.Instance, run *approval.Run) string {
	parts := []string{"`" + in.ID + "`"}
	if name := oneLine(in.Name); name != "" {
		parts = append(parts, escapeText(truncate(name, maxNameRunes)))
	}
	parts = append(parts, orDash(escapeText(truncate(oneLine(in.State), 40))), orDash(escapeText(truncate(oneLine(in.Zone), 40))))
	ip := "no private IP"
	if len(in.PrivateIPs) > 0 {
		ip = escapeText(truncate(oneLine(in.PrivateIPs[0]), 45))
		if len(in.PrivateIPs) > 1 {
			ip += fmt.Sprintf(" (+%d)", len(in.PrivateIPs)-1)
		}
	}
	parts = append(parts, ip)
	line := "• " + strings.Join(parts, " · ")
	if run != nil {
		line += " — " + runText(run)
	}
	return line
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func runText(run *approval.Run) string {
	switch run.State {
	case approval.RunSucceeded:
		return "✅ rebooted in " + durationText(run.Duration)
	case approval.RunFailed:
		return "❌ " + escapeText(truncate(oneLine(failureWords(run)), 150))
	case approval.RunIntent, approval.RunCalled:
		return "rebooting…"
	}
	return "waiting"
}

func failureWords(run *approval.Run) string {
	switch {
	case run.Explanation != "":
		return run.Explanation
	case run.ErrorMessage != "":
		return run.ErrorMessage
	case run.ErrorCode != "":
		return run.ErrorCode
	}
	return "failed"
}

// approvalsText lists who approved and when, saying which approvals no
// longer count under the policy in force, and while pending who may
// approve.
func approvalsText(r *approval.Request) string {
	var b strings.Builder
	if len(r.Approvals) > 0 {
		b.WriteString("*Approved by*")
		for _, a := range r.Approvals {
			b.WriteString("\n• " + userRef(a.User) + " " + slackDate(a.At))
			if a.Lapsed {
				b.WriteString(" _(no longer counts: the policy in force does not let them approve this)_")
			}
		}
	}
	if r.State == approval.Pending {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		need := max(0, r.Required-len(r.Counted()))
		if need == 0 {
			// The policy in force lowered what the request needs; a reboot
			// still starts only with a click.
			b.WriteString("*The approvals needed are in*; Approve starts the reboot, by")
		} else {
			fmt.Fprintf(&b, "*Waiting for %d more %s from*", need, plural(need, "approval", "approvals"))
		}
		switch len(r.ApproverGroups) {
		case 0:
			b.WriteString("\nno one: the policy names no approvers")
		case 1:
			b.WriteString("\n" + approverList(r.ApproverGroups[0]))
		default:
			b.WriteString(" someone on each of these lists")
			for _, g := range r.ApproverGroups {
				b.WriteString("\n• " + approverList(g))
			}
		}
		if !r.SelfApproval {
			b.WriteString("\n_The requester's own approval does not count._")
		}
	}
	return truncate(b.String(), maxSectionText)
}

// approverList names approvers from the policy. Users are mentioned so that
// the card gets their attention; user groups are named without the
// <!subteam^…> markup so that posting the card does not ping a whole group.
func approverList(ids []string) string {
	var items []string
	for _, id := range ids {
		switch {
		case approval.ValidUserID(id):
			items = append(items, "<@"+id+">")
		case approval.ValidGroupID(id):
			items = append(items, "anyone in user group `"+id+"`")
		default:
			items = append(items, escapeText(id))
		}
	}
	return joinOr(items)
}

func joinOr(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// outcomeText says how a decided request ended, who decided and when.
func outcomeText(r *approval.Request) string {
	var b strings.Builder
	b.WriteString("*" + Outcome(r.State) + "*")
	by := ""
	if r.DecidedBy != "" && r.DecidedBy != approval.ActorBot {
		by = " by " + userRef(r.DecidedBy)
	}
	at := ""
	if !r.DecidedAt.IsZero() {
		at = " " + slackDate(r.DecidedAt)
	}
	switch r.State {
	case approval.Pending:
		return ""
	case approval.Denied, approval.Cancelled:
		b.WriteString(by + at + ".")
	case approval.Expired:
		b.WriteString(at + ": nobody decided in time.")
	case approval.Rejected:
		b.WriteString(at + ".")
	case approval.Approved:
		b.WriteString(by + at + "; the reboot is starting.")
	case approval.Executing:
		fmt.Fprintf(&b, ": approved%s%s; %s", by, at, progress(r))
	case approval.Stopped:
		fmt.Fprintf(&b, ": approved%s%s; %s", by, at, haltWords(r))
		if !r.FinishedAt.IsZero() {
			b.WriteString(", ended " + slackDate(r.FinishedAt))
		}
		b.WriteString(". " + progress(r))
	default: // Succeeded, Failed, PartiallyFailed
		fmt.Fprintf(&b, ": approved%s%s", by, at)
		if !r.FinishedAt.IsZero() {
			b.WriteString(", finished " + slackDate(r.FinishedAt))
		}
		b.WriteString(". " + progress(r))
	}
	s := truncateLines(b.String(), maxSectionText-100)
	if r.Note != "" {
		s += "\n" + fitQuoted("", r.Note, maxSectionText-utf8.RuneCountInString(s)-1)
	}
	return s
}

// progress counts the instances' results: "2 of 3 instances rebooted, 1 failed."
func progress(r *approval.Request) string {
	var ok, failed int
	for _, run := range r.Runs {
		switch run.State {
		case approval.RunSucceeded:
			ok++
		case approval.RunFailed:
			failed++
		}
	}
	s := fmt.Sprintf("%d of %d %s rebooted", ok, len(r.Instances), plural(len(r.Instances), "instance", "instances"))
	if failed > 0 {
		s += fmt.Sprintf(", %d failed", failed)
	}
	if r.State == approval.Stopped {
		s += fmt.Sprintf(", %d not rebooted", len(r.Instances)-ok-failed)
	}
	return s + "."
}

func decisionButtons(r *approval.Request) *slack.ActionBlock {
	approve := slack.NewButtonBlockElement(ActionApprove, r.ID, plain("Approve"))
	approve.Style = slack.StylePrimary
	if c := confirmation(r); c != nil {
		approve.Confirm = c
	}
	deny := slack.NewButtonBlockElement(ActionDeny, r.ID, plain("Deny"))
	deny.Style = slack.StyleDanger
	return slack.NewActionBlock("decide:"+r.ID, approve, deny)
}

// confirmation is the dialog shown before approving a reboot that may cut
// power; nil for SOFT.
func confirmation(r *approval.Request) *slack.ConfirmationBlockObject {
	var title, text string
	n := countInstances(len(r.Instances))
	switch r.StopType {
	case approval.Hard:
		title = "Approve a HARD reboot?"
		text = fmt.Sprintf("%s cuts power to %s at once, without a graceful shutdown. Unsaved data on them may be lost.", r.ID, n)
	case approval.SoftFirst:
		title = "Approve a SOFT_FIRST reboot?"
		text = fmt.Sprintf("%s shuts %s down gracefully and cuts power to any that do not stop in time.", r.ID, n)
	default:
		return nil
	}
	c := slack.NewConfirmationBlockObject(plain(title), plain(truncate(text, 300)), plain("Yes, approve"), plain("Go back"))
	c.Style = slack.StyleDanger
	return c
}

// RenderReport returns the thread message for one step of r's execution.
func RenderReport(r *approval.Request, rep approval.Report) string {
	switch rep.Kind {
	case approval.ReportStarted:
		return fmt.Sprintf("Rebooting %s (%s) in %s.", countInstances(len(r.Instances)), r.StopType, escapeText(r.Region))
	case approval.ReportInstance:
		if rep.Run == nil {
			return "An instance finished."
		}
		return instanceReport(r, rep.Run)
	case approval.ReportWave:
		return waveReport(r, rep.Wave)
	case approval.ReportFinished:
		if len(r.Runs) > approval.MaxInstanceReports {
			return fleetFinished(r)
		}
		s := fmt.Sprintf("*%s*: %s", Outcome(r.State), progress(r))
		if r.State == approval.Stopped {
			s = fmt.Sprintf("*%s*: %s. %s", Outcome(r.State), haltWords(r), progress(r))
		}
		var failed []string
		for _, run := range r.Runs {
			if run.State == approval.RunFailed {
				failed = append(failed, "`"+run.InstanceID+"`")
			}
		}
		if len(failed) > 0 && len(failed) < len(r.Instances) {
			s += " Failed: " + strings.Join(failed, ", ") + "."
		}
		return truncateLines(s, maxSectionText)
	}
	return escapeText(string(rep.Kind))
}

func instanceReport(r *approval.Request, run *approval.Run) string {
	who := "`" + run.InstanceID + "`"
	for _, in := range r.Instances {
		if in.ID == run.InstanceID && oneLine(in.Name) != "" {
			who += " (" + escapeText(truncate(oneLine(in.Name), maxNameRunes)) + ")"
		}
	}
	switch run.State {
	case approval.RunSucceeded:
		return fmt.Sprintf("✅ %s is running again after %s.", who, durationText(run.Duration))
	case approval.RunFailed:
		s := fmt.Sprintf("❌ %s did not reboot: %s", who, escapeText(truncate(oneLine(failureWords(run)), 300)))
		if !strings.HasSuffix(s, ".") {
			s += "."
		}
		var ids []string
		if run.ErrorCode != "" {
			ids = append(ids, "code `"+escapeText(truncate(oneLine(run.ErrorCode), 80))+"`")
		}
		if run.CallRequestID != "" {
			ids = append(ids, "RequestId `"+escapeText(truncate(oneLine(run.CallRequestID), 80))+"`")
		}
		if len(ids) > 0 {
			s += " (Tencent Cloud " + strings.Join(ids, ", ") + ")"
		}
		return s
	}
	return fmt.Sprintf("%s: %s", who, runText(run))
}

// fitQuoted renders prefix and user text as a quote within limit runes,
// cutting the text (before escaping, so no entity is split) if needed.
func fitQuoted(prefix, s string, limit int) string {
	n := utf8.RuneCountInString(s)
	for {
		out := prefix + quote(truncate(s, n))
		over := utf8.RuneCountInString(out) - limit
		if over <= 0 || n <= 1 {
			return out
		}
		n -= max(1, over/5)
	}
}

// truncateLines cuts bot-made mrkdwn to at most limit runes at a line or
// item boundary, so that no markup (<@U…>, <!date…>) is cut in half.
func truncateLines(s string, limit int) string {
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	cut := string([]rune(s)[:limit-2])
	if i := strings.LastIndexAny(cut, "\n,"); i > 0 {
		cut = cut[:i]
	}
	return cut + " …"
}

// userRef renders a Slack user ID from the bot's own records as a mention;
// anything else is escaped text.
func userRef(id string) string {
	if approval.ValidUserID(id) {
		return "<@" + id + ">"
	}
	if id == approval.ActorBot {
		return "rebootbot"
	}
	return escapeText(id)
}

// slackDate renders t in each reader's time zone, with a UTC fallback.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

// until says how far t is from now, for expiry.
func until(t, now time.Time) string {
	d := t.Sub(now)
	if d <= 0 {
		return "due now"
	}
	d = d.Round(time.Minute)
	switch {
	case d < time.Minute:
		return "in under a minute"
	case d < time.Hour:
		return fmt.Sprintf("in %d min", int(d.Minutes()))
	}
	h, m := int(d.Hours()), int(d.Minutes())%60
	if m == 0 {
		return fmt.Sprintf("in %d h", h)
	}
	return fmt.Sprintf("in %d h %d min", h, m)
}

func durationText(d time.Duration) string {
	switch {
	case d <= 0:
		return "no time"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func countInstances(n int) string {
	return fmt.Sprintf("%d %s", n, plural(n, "instance", "instances"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}
