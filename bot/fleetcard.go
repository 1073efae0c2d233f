package bot

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"rebootbot/approval"
)

// How much of a large request the card lists: up to fullListMax instances
// every one, beyond that a summary by zone and the first cardListMax.
// /reboot status R-42 --page N lists the rest, statusPageSize a page.
const (
	fullListMax    = 100
	cardListMax    = 20
	statusPageSize = 100
	maxZoneLines   = 20
	// The outcome message of a large request names at most this many
	// failure reasons, each with at most this many instances.
	maxFailureReasons = 10
	maxFailedIDs      = 10
)

// selectionText describes how a fleet request chose its instances: the
// selector words, the size of the frozen set, its fingerprint and what was
// left out. "" for a request that names its instances.
func selectionText(r *approval.Request) string {
	if !r.Fleet() {
		return ""
	}
	s := fmt.Sprintf("*Selected* `%s`\n%s · fingerprint `%s`",
		escapeText(truncate(oneLine(strings.Join(r.Selector, " ")), 1000)), countInstances(len(r.Instances)), escapeText(r.Fingerprint))
	if t := r.UnselectedText(); t != "" {
		s += " · " + escapeText(t)
	}
	return s + "\n_The set was frozen when it was requested; instances that match later are not touched._"
}

// zoneSummary counts a large request's instances by zone and by state:
// their state when requested, or how their reboot stands once it runs.
func zoneSummary(r *approval.Request) string {
	byZone := map[string]map[string]int{}
	for _, in := range r.Instances {
		state := in.State
		if run := r.Run(in.ID); run != nil {
			state = runSummaryWord(run.State)
			if run.State == approval.RunWaiting && r.State.Terminal() {
				state = "not rebooted" // a wave that never started
			}
		}
		if byZone[in.Zone] == nil {
			byZone[in.Zone] = map[string]int{}
		}
		byZone[in.Zone][state]++
	}
	lines := []string{"*By zone*"}
	zones := slices.Sorted(maps.Keys(byZone))
	for i, z := range zones {
		if i == maxZoneLines {
			lines = append(lines, fmt.Sprintf("… and %d more zones", len(zones)-i))
			break
		}
		var parts []string
		total := 0
		for _, st := range slices.SortedFunc(maps.Keys(byZone[z]), func(a, b string) int {
			return cmp.Or(cmp.Compare(byZone[z][b], byZone[z][a]), cmp.Compare(a, b))
		}) {
			parts = append(parts, fmt.Sprintf("%d %s", byZone[z][st], escapeText(truncate(oneLine(st), 40))))
			total += byZone[z][st]
		}
		lines = append(lines, fmt.Sprintf("• %s: %d (%s)", orDash(escapeText(truncate(oneLine(z), 40))), total, strings.Join(parts, ", ")))
	}
	return strings.Join(lines, "\n")
}

func runSummaryWord(s approval.RunState) string {
	switch s {
	case approval.RunSucceeded:
		return "rebooted"
	case approval.RunFailed:
		return "failed"
	case approval.RunIntent, approval.RunCalled:
		return "rebooting"
	}
	return "waiting"
}

// fleetSections are the card's sections about a fleet or a large
// request, before its instance list.
func fleetSections(r *approval.Request) []string {
	var out []string
	if t := selectionText(r); t != "" {
		out = append(out, t)
	}
	if len(r.Instances) > fullListMax {
		out = append(out, truncateLines(zoneSummary(r), maxSectionText))
	}
	return out
}

// firstInstanceSections lists the first cardListMax instances of a large
// request and says how to see the rest.
func firstInstanceSections(r *approval.Request) []string {
	lines := []string{fmt.Sprintf("*Instances (%d)*, the first %d", len(r.Instances), cardListMax)}
	for _, in := range r.Instances[:cardListMax] {
		lines = append(lines, instanceLine(in, r.Run(in.ID)))
	}
	pages := (len(r.Instances) + statusPageSize - 1) / statusPageSize
	lines = append(lines, fmt.Sprintf("… and %d more: `/reboot status %s --page 1` lists them all, %d a page (%d pages).",
		len(r.Instances)-cardListMax, r.ID, statusPageSize, pages))
	return packLines(lines, 3)
}

// RenderStatusPage returns one page of a request's instances for
// /reboot status R-42 --page N, each with its state and result.
func RenderStatusPage(r *approval.Request, page int) *Message {
	pages := max(1, (len(r.Instances)+statusPageSize-1)/statusPageSize)
	if page < 1 || page > pages {
		return Ephemeral(fmt.Sprintf("%s has %s on %d %s; ask for a page from 1 to %d.",
			r.ID, countInstances(len(r.Instances)), pages, plural(pages, "page", "pages"), pages))
	}
	from := (page - 1) * statusPageSize
	to := min(from+statusPageSize, len(r.Instances))
	head := fmt.Sprintf("*%s: %s* · instances %d–%d of %d · page %d of %d", r.ID, Outcome(r.State), from+1, to, len(r.Instances), page, pages)
	if r.Fingerprint != "" {
		head += " · fingerprint `" + escapeText(r.Fingerprint) + "`"
	}
	lines := []string{head}
	for _, in := range r.Instances[from:to] {
		lines = append(lines, instanceLine(in, r.Run(in.ID)))
	}
	if page < pages {
		lines = append(lines, fmt.Sprintf("Next: `/reboot status %s --page %d`", r.ID, page+1))
	}
	var blocks []slack.Block
	for _, t := range packLines(lines, maxReplyBlocks) {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(t), nil, nil))
	}
	text := fmt.Sprintf("%s (%s): instances %d–%d of %d.", r.ID, Outcome(r.State), from+1, to, len(r.Instances))
	return &Message{ResponseType: "ephemeral", Text: text, Blocks: blocks}
}

// fleetFinished is the outcome message of a request too large for a
// message per instance: the counts, then the failures grouped by reason,
// each with its instances.
func fleetFinished(r *approval.Request) string {
	head := fmt.Sprintf("*%s*: %s", Outcome(r.State), progress(r))
	if r.State == approval.Stopped {
		head = fmt.Sprintf("*%s*: %s. %s", Outcome(r.State), haltWords(r), progress(r))
	}
	lines := append([]string{head}, failureLines(r, r.Runs)...)
	return truncateLines(strings.Join(lines, "\n"), maxSectionText)
}

// failureLines groups the failed runs among runs by reason, naming the
// first instances of each.
func failureLines(r *approval.Request, runs []approval.Run) []string {
	var lines []string
	byReason := map[string][]string{}
	var reasons []string
	for _, run := range runs {
		if run.State != approval.RunFailed {
			continue
		}
		why := failureWords(&run)
		if run.ErrorCode != "" {
			why += " (" + run.ErrorCode + ")"
		}
		if _, ok := byReason[why]; !ok {
			reasons = append(reasons, why)
		}
		byReason[why] = append(byReason[why], run.InstanceID)
	}
	slices.SortStableFunc(reasons, func(a, b string) int { return cmp.Compare(len(byReason[b]), len(byReason[a])) })
	for i, why := range reasons {
		if i == maxFailureReasons {
			lines = append(lines, fmt.Sprintf("… and %d more reasons: `/reboot status %s --page 1` shows every instance.", len(reasons)-i, r.ID))
			break
		}
		ids := byReason[why]
		shown := make([]string, 0, maxFailedIDs)
		for _, id := range ids[:min(len(ids), maxFailedIDs)] {
			shown = append(shown, "`"+id+"`")
		}
		more := ""
		if n := len(ids) - len(shown); n > 0 {
			more = fmt.Sprintf(" and %d more", n)
		}
		lines = append(lines, fmt.Sprintf("❌ %d: %s — %s%s", len(ids), escapeText(truncate(oneLine(why), 200)), strings.Join(shown, ", "), more))
	}
	return lines
}
