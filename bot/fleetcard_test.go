package bot

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
)

// fleetRequest is a request that selected n instances across four zones by
// tag, with some matching instances left out.
func fleetRequest(id string, n int) *approval.Request {
	r := pendingRequest()
	r.ID = id
	r.Instances = nil
	zones := []string{"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6", "ap-guangzhou-7"}
	for i := range n {
		in := instance(fmt.Sprintf("ins-f%07d", i), fmt.Sprintf("web-prod-%04d", i), zones[i%len(zones)], fmt.Sprintf("10.%d.%d.%d", 1+i/62500, (i/250)%250, i%250+4))
		in.Tags = map[string]string{"role": "web", "env": "prod"}
		r.Instances = append(r.Instances, in)
	}
	r.Selector = []string{"tag:env=prod", "tag:role=web"}
	r.Fingerprint = approval.Fingerprint(r.InstanceIDs())
	r.Unselected = []approval.StateCount{{State: "STOPPED", Count: 3}, {State: "STARTING", Count: 1}}
	return r
}

// fleetExecuting is a large fleet request part-way through its reboot.
func fleetExecuting(n int) *approval.Request {
	r := fleetRequest("R-77", n)
	r.State = approval.Executing
	r.Approvals = []approval.Approval{{User: approverA, At: cardNow.Add(-2 * time.Minute)}}
	r.DecidedBy, r.DecidedAt, r.StartedAt = approverA, cardNow.Add(-2*time.Minute), cardNow.Add(-2*time.Minute)
	for i, in := range r.Instances {
		run := approval.Run{InstanceID: in.ID}
		switch {
		case i%50 == 7:
			run = failedRun(in.ID)
		case i < n/2:
			run = succeededRun(in.ID, 40*time.Second)
		case i < n/2+100:
			run.State = approval.RunCalled
		}
		r.Runs = append(r.Runs, run)
	}
	return r
}

func TestRenderFleetCardGolden(t *testing.T) {
	cases := []struct {
		name string
		r    *approval.Request
	}{
		{"fleet-pending", fleetRequest("R-70", 6)},
		{"fleet-5000-pending", fleetRequest("R-71", 5000)},
		{"fleet-5000-executing", fleetExecuting(5000)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text, blocks := RenderCard(tc.r, cardNow)
			checkBlockLimits(t, blocks)
			checkNoInjectedMarkup(t, text, blocks, tc.r)
			got := mustMarshal(t, map[string]any{"text": text, "blocks": blocks})
			// Slack refuses messages far past 40,000 characters; a card
			// of 5,000 instances stays a summary.
			if len(got) > 20000 {
				t.Errorf("card is %d bytes", len(got))
			}
			all := string(got)
			for _, want := range []string{"tag:env=prod tag:role=web", tc.r.Fingerprint, "3 STOPPED, 1 STARTING not included"} {
				if !strings.Contains(all, want) {
					t.Errorf("card lacks %q", want)
				}
			}
			checkGolden(t, "card-"+tc.name+".json", got)
		})
	}
}

func TestRenderFleetCardSummary(t *testing.T) {
	_, blocks := RenderCard(fleetExecuting(5000), cardNow)
	all := string(mustMarshal(t, blocks))
	for _, want := range []string{
		"*By zone*",
		// Each zone holds every fourth instance. The failures (i%50 == 7)
		// are odd, so they fall in the second and fourth zones only.
		"ap-guangzhou-3: 1250 (625 rebooted, 600 waiting, 25 rebooting)",
		"ap-guangzhou-4: 1250 (600 rebooted, 576 waiting, 50 failed, 24 rebooting)",
		"… and 4980 more: `/reboot status R-77 --page 1` lists them all, 100 a page (50 pages).",
		"`ins-f0000019`",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("card lacks %q", want)
		}
	}
	if strings.Contains(all, "`ins-f0000020`") {
		t.Error("card lists more than the first 20 instances")
	}
}

func TestRenderStatusPage(t *testing.T) {
	r := fleetExecuting(5000)
	tests := []struct {
		page        int
		first, last string
		next        string
	}{
		{1, "ins-f0000000", "ins-f0000099", "--page 2"},
		{26, "ins-f0002500", "ins-f0002599", "--page 27"},
		{50, "ins-f0004900", "ins-f0004999", ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.page), func(t *testing.T) {
			msg := RenderStatusPage(r, tt.page)
			checkBlockLimits(t, msg.Blocks)
			all := string(mustMarshal(t, msg))
			if !strings.Contains(all, tt.first) || !strings.Contains(all, tt.last) {
				t.Errorf("page %d lacks %s or %s", tt.page, tt.first, tt.last)
			}
			if got := strings.Count(all, "• `ins-"); got != 100 {
				t.Errorf("page %d lists %d instances, want 100", tt.page, got)
			}
			if tt.next != "" && !strings.Contains(all, tt.next) {
				t.Errorf("page %d does not point to %s", tt.page, tt.next)
			}
			if tt.page == 1 {
				checkGolden(t, "reply-status-page.json", mustMarshal(t, msg))
			}
		})
	}
	for _, bad := range []int{0, 51} {
		msg := RenderStatusPage(r, bad)
		if want := "R-77 has 5000 instances on 50 pages; ask for a page from 1 to 50."; msg.Text != want {
			t.Errorf("page %d: %q, want %q", bad, msg.Text, want)
		}
	}
}

// TestRenderFleetFinished: a request too large for a message per instance
// ends with one message that groups the failures by reason.
func TestRenderFleetFinished(t *testing.T) {
	r := fleetExecuting(5000)
	r.State = approval.PartiallyFailed
	for i := range r.Runs {
		if !r.Runs[i].State.Done() {
			r.Runs[i] = succeededRun(r.Runs[i].InstanceID, 30*time.Second)
		}
	}
	r.Runs[4] = approval.Run{InstanceID: r.Runs[4].InstanceID, State: approval.RunFailed, ErrorCode: "Timeout", Explanation: "It was not RUNNING again within 10m."}
	got := RenderReport(r, approval.Report{Kind: approval.ReportFinished})
	want := "*Partially failed*: 4899 of 5000 instances rebooted, 101 failed.\n" +
		"❌ 100: The instance is stopped, so it cannot be rebooted. (UnsupportedOperation.InstanceStateStopped) — " +
		"`ins-f0000007`, `ins-f0000057`, `ins-f0000107`, `ins-f0000157`, `ins-f0000207`, `ins-f0000257`, `ins-f0000307`, `ins-f0000357`, `ins-f0000407`, `ins-f0000457` and 90 more\n" +
		"❌ 1: It was not RUNNING again within 10m. (Timeout) — `ins-f0000004`"
	if got != want {
		t.Errorf("RenderReport =\n%s\nwant\n%s", got, want)
	}
}
