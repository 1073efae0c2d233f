package bot

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"rebootbot/approval"
)

func TestParseCommandWaves(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		waves approval.WaveOptions
	}{
		{"Count", "tag:role=web --wave 10 patch", approval.WaveOptions{Size: 10}},
		{"Percent", "tag:role=web --wave 10% patch", approval.WaveOptions{Size: 10, SizePercent: true}},
		{"Equals", "tag:role=web --wave=25 --pause=5m patch", approval.WaveOptions{Size: 25, Pause: 5 * time.Minute}},
		{"All", "tag:role=web --wave 10 --pause 90s --max-failures 2 --by-zone patch",
			approval.WaveOptions{Size: 10, Pause: 90 * time.Second, MaxFailures: 2, ByZone: true}},
		{"BudgetPercent", "tag:role=web --wave 5 --max-failures 5% patch", approval.WaveOptions{Size: 5, MaxFailures: 5, FailuresPercent: true}},
		{"EmDashes", "tag:role=web —wave 10 —max—failures 1 —by—zone patch", approval.WaveOptions{Size: 10, MaxFailures: 1, ByZone: true}},
		{"WithIDs", "ins-1a2b3c4d ins-5e6f7a8b --wave 1 patch", approval.WaveOptions{Size: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCommand(tt.text)
			if err != nil {
				t.Fatalf("ParseCommand(%q): %v", tt.text, err)
			}
			c := got.(CreateCommand)
			if !reflect.DeepEqual(c.Waves, tt.waves) || c.Reason != "patch" {
				t.Errorf("ParseCommand(%q) = %+v, %q; want %+v, \"patch\"", tt.text, c.Waves, c.Reason, tt.waves)
			}
		})
	}
	if got, err := ParseCommand("stop r-42"); err != nil || got != (StopCommand{RequestID: "R-42"}) {
		t.Errorf("ParseCommand(stop r-42) = %#v, %v", got, err)
	}
}

func TestParseCommandWaveErrors(t *testing.T) {
	tests := []struct{ text, want string }{
		{"tag:role=web --wave patch", "`--wave` takes a number"},
		{"tag:role=web --wave 0 patch", "`--wave` takes a number"},
		{"tag:role=web --wave 120% patch", "`--wave` takes a number"},
		{"tag:role=web --wave -3 patch", "`--wave` takes a number"},
		{"tag:role=web --wave 10 --wave 20 patch", "Give `--wave` once"},
		{"tag:role=web --wave 10 --pause 25h patch", "`--pause` takes a duration of at most 24h"},
		{"tag:role=web --wave 10 --pause soon patch", "`--pause` takes a duration"},
		{"tag:role=web --wave 10 --max-failures many patch", "`--max-failures` takes a number"},
		{"tag:role=web --by-zone=yes patch", "`--by-zone` takes no value"},
		{"tag:role=web --wave", "`--wave` takes a number"},
		{"stop", "`stop` needs a request ID"},
		{"stop R-1 R-2", "`stop` takes one request ID"},
	}
	for _, tt := range tests {
		_, err := ParseCommand(tt.text)
		if approval.ErrorKind(err) != approval.Invalid || !strings.Contains(approval.ErrorMessage(err), tt.want) {
			t.Errorf("ParseCommand(%q) = %v, want an error containing %q", tt.text, err, tt.want)
		}
	}
}

// rollingRequest is a fleet request of n instances in waves of size,
// executing: waves before wave are done, wave itself finished as finished
// says, with every 50th instance failed.
func rollingRequest(n, size, wave int, finished bool) *approval.Request {
	r := fleetExecuting(n)
	r.ID = "R-78"
	ids := r.InstanceIDs()
	r.Plan = &approval.Plan{MaxFailures: 100, Pause: 10 * time.Minute}
	for len(ids) > 0 {
		k := min(size, len(ids))
		r.Plan.Waves = append(r.Plan.Waves, ids[:k])
		ids = ids[k:]
	}
	r.Wave, r.WaveFinished = wave, finished
	for i := range r.Runs {
		w := i/size + 1
		switch {
		case w < wave || w == wave && finished:
			if i%50 == 7 {
				r.Runs[i] = failedRun(r.Runs[i].InstanceID)
			} else {
				r.Runs[i] = succeededRun(r.Runs[i].InstanceID, 40*time.Second)
			}
		case w == wave:
			r.Runs[i] = approval.Run{InstanceID: r.Runs[i].InstanceID, State: approval.RunCalled}
		default:
			r.Runs[i] = approval.Run{InstanceID: r.Runs[i].InstanceID}
		}
	}
	if finished {
		r.NextWaveAt = cardNow.Add(7 * time.Minute)
	}
	return r
}

func TestRenderWaveCardGolden(t *testing.T) {
	paused := rollingRequest(5000, 100, 3, true)
	running := rollingRequest(5000, 100, 4, false)
	stopping := rollingRequest(40, 10, 2, false)
	stopping.Halt = &approval.Halt{By: requester, At: cardNow.Add(-time.Minute)}
	stopped := rollingRequest(5000, 100, 2, true)
	stopped.State, stopped.NextWaveAt, stopped.FinishedAt = approval.Stopped, time.Time{}, cardNow
	stopped.Plan.MaxFailures = 3
	stopped.Halt = &approval.Halt{By: approval.ActorBot, At: cardNow, Reason: "4 failures, budget 3, after wave 2 of 50"}
	cases := []struct {
		name  string
		r     *approval.Request
		stop  bool
		wants []string
	}{
		{"wave-5000-paused", paused, true, []string{"*Waves* 50 of at most 100", "Wave 3 of 50 done", "next wave", "in 7 min"}},
		{"wave-5000-running", running, true, []string{"Wave 4 of 50 running", "Wave 4 of 50 of R-78 finishes"}},
		{"wave-40-stopping", stopping, false, []string{"⏹ stopped by <@" + requester + ">", "Wave 2 of 4 running"}},
		{"wave-5000-stopped", stopped, false, []string{"*Stopped*", "stopped by the failure budget (4 failures, budget 3, after wave 2 of 50)", "4800 not rebooted"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text, blocks := RenderCard(tc.r, cardNow)
			checkBlockLimits(t, blocks)
			checkNoInjectedMarkup(t, text, blocks, tc.r)
			got := mustMarshal(t, map[string]any{"text": text, "blocks": blocks})
			if len(got) > 20000 {
				t.Errorf("card is %d bytes", len(got))
			}
			all := string(got)
			for _, want := range tc.wants {
				if !strings.Contains(all, want) {
					t.Errorf("card lacks %q", want)
				}
			}
			has := false
			for _, b := range blocks {
				if a, ok := b.(*slack.ActionBlock); ok && a.BlockID == "stop:"+tc.r.ID {
					has = len(a.Elements.ElementSet) == 1
				}
			}
			if has != tc.stop {
				t.Errorf("Stop button shown = %v, want %v", has, tc.stop)
			}
			checkGolden(t, "card-"+tc.name+".json", got)
		})
	}
	// The status reply shows the same card without buttons: a click there
	// would not be on the request's card.
	status, err := json.Marshal(RenderStatus(paused, cardNow))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(status), `"stop:R-78"`) {
		t.Error("/reboot status carries a Stop button")
	}
}

func TestRenderWaveReport(t *testing.T) {
	r := rollingRequest(5000, 100, 3, true)
	got := RenderReport(r, approval.Report{Kind: approval.ReportWave, Wave: 1})
	for _, want := range []string{"Wave *1 of 50* done: 98 of 100 rebooted, 2 failed.", "`ins-f0000007`", "`ins-f0000057`"} {
		if !strings.Contains(got, want) {
			t.Errorf("wave report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ins-f0000107") {
		t.Errorf("wave 1's report names an instance of wave 2:\n%s", got)
	}
}
