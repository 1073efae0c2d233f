package bot

import (
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"rebootbot/approval"
)

// stoppable reports whether r's card carries a Stop button: r is rolling
// and has a wave still to start, and nobody stopped it yet.
func stoppable(r *approval.Request) bool {
	return r.State == approval.Executing && r.Plan != nil && r.Halt == nil && r.Wave < r.WaveCount()
}

// stopButton is the card's Stop button, with a confirmation that says
// what stopping does.
func stopButton(r *approval.Request) *slack.ActionBlock {
	p := r.Progress()
	text := fmt.Sprintf("No wave of %s starts after this; %s not rebooted yet will be left alone.", r.ID, countInstances(p.Waiting))
	if p.Wave > 0 && !p.Finished {
		text = fmt.Sprintf("Wave %d of %d of %s finishes; no later wave starts, and %s not rebooted yet will be left alone.",
			p.Wave, p.Waves, r.ID, countInstances(p.Waiting))
	}
	stop := slack.NewButtonBlockElement(ActionStop, r.ID, plain("Stop"))
	stop.Style = slack.StyleDanger
	stop.Confirm = slack.NewConfirmationBlockObject(plain("Stop "+r.ID+"?"), plain(truncate(text, 300)), plain("Yes, stop"), plain("Go back"))
	stop.Confirm.Style = slack.StyleDanger
	return slack.NewActionBlock("stop:"+r.ID, stop)
}

// wavesText shows a rolling request's plan and, once it runs, where it
// is: wave i of n, the counts, when the next wave starts, and a stop
// under way. "" for a request that does not roll.
func wavesText(r *approval.Request, now time.Time) string {
	if r.Plan == nil {
		return ""
	}
	p := r.Progress()
	largest := 0
	for _, w := range r.Plan.Waves {
		largest = max(largest, len(w))
	}
	plan := fmt.Sprintf("*Waves* %d of at most %d · failure budget %d", p.Waves, largest, r.Plan.MaxFailures)
	if r.Plan.Pause > 0 {
		plan += " · pause " + r.Plan.Pause.String()
	}
	if r.Plan.ByZone {
		plan += " · zone by zone"
	}
	lines := []string{plan}
	if r.State == approval.Executing || r.State.Terminal() && !r.StartedAt.IsZero() {
		counts := fmt.Sprintf("%d rebooted, %d failed, %d waiting", p.Rebooted, p.Failed, p.Waiting)
		if r.State.Terminal() {
			counts = fmt.Sprintf("%d rebooted, %d failed, %d not rebooted", p.Rebooted, p.Failed, p.Waiting)
		}
		switch {
		case p.Wave == 0:
			lines = append(lines, "Starting wave 1 of "+fmt.Sprint(p.Waves)+" · "+counts)
		case !p.Finished:
			lines = append(lines, fmt.Sprintf("Wave %d of %d running · %s", p.Wave, p.Waves, counts))
		case r.State == approval.Executing && !p.NextWaveAt.IsZero() && r.Halt == nil:
			lines = append(lines, fmt.Sprintf("Wave %d of %d done · %s · next wave %s (%s)", p.Wave, p.Waves, counts, slackDate(p.NextWaveAt), until(p.NextWaveAt, now)))
		default:
			lines = append(lines, fmt.Sprintf("Wave %d of %d done · %s", p.Wave, p.Waves, counts))
		}
	}
	if r.State == approval.Executing && r.Halt != nil {
		lines = append(lines, "⏹ "+haltWords(r)+"; the running wave finishes and no later wave starts.")
	}
	return strings.Join(lines, "\n")
}

// haltWords says who stopped r and when, or why the failure budget did.
func haltWords(r *approval.Request) string {
	switch {
	case r.Halt == nil:
		return "stopped"
	case r.Halt.By == approval.ActorBot:
		return "stopped by the failure budget (" + escapeText(r.Halt.Reason) + ")"
	}
	return "stopped by " + userRef(r.Halt.By) + " " + slackDate(r.Halt.At)
}

// waveReport is the thread message for wave k of a rolling request too
// large for a message per instance: its counts and its failures.
func waveReport(r *approval.Request, k int) string {
	if r.Plan == nil || k < 1 || k > len(r.Plan.Waves) {
		return fmt.Sprintf("Wave %d finished.", k)
	}
	ids := r.Plan.Waves[k-1]
	runs := make([]approval.Run, 0, len(ids))
	ok, failed := 0, 0
	for _, id := range ids {
		run := r.Run(id)
		if run == nil {
			continue
		}
		runs = append(runs, *run)
		switch run.State {
		case approval.RunSucceeded:
			ok++
		case approval.RunFailed:
			failed++
		}
	}
	lines := []string{fmt.Sprintf("Wave *%d of %d* done: %d of %d rebooted, %d failed.", k, len(r.Plan.Waves), ok, len(ids), failed)}
	lines = append(lines, failureLines(r, runs)...)
	return truncateLines(strings.Join(lines, "\n"), maxSectionText)
}
