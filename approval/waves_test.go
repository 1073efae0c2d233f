package approval_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
)

// fleetOf returns n RUNNING instances spread over zones in turn, with the
// first zone's instances first.
func fleetOf(n int, zones ...string) ([]approval.Instance, []string) {
	instances := make([]approval.Instance, n)
	ids := make([]string, n)
	for i := range instances {
		instances[i] = approval.Instance{ID: fmt.Sprintf("ins-%08d", i), Name: fmt.Sprintf("web-%d", i), Zone: zones[i*len(zones)/n]}
		ids[i] = instances[i].ID
	}
	return instances, ids
}

// approveNow approves request id as UALICE and fails the test if that
// does not start the reboot.
func (w *world) approveNow(t *testing.T, id string) {
	t.Helper()
	if _, err := w.engine.Approve(context.Background(), "approve-"+id, id, "UALICE", w.mustCard(t, id)); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls request id until cond holds.
func (w *world) waitFor(t *testing.T, id, what string, cond func(r *approval.Request) bool) *approval.Request {
	t.Helper()
	var r *approval.Request
	testutil.Eventually(t, 10*time.Second, func() bool { r = w.mustGet(t, id); return cond(r) }, "%s: %s", id, what)
	return r
}

func calledIn(c *fakeCloud, ids []string) int {
	n := 0
	for _, id := range ids {
		n += c.rebootCalls(id)
	}
	return n
}

func TestWavePlans(t *testing.T) {
	instances, ids := fleetOf(9, "ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6")
	w := mustWorld(t, testPolicy(), newFakeCloud(instances...), "")
	zoneOf := map[string]string{}
	for _, in := range instances {
		zoneOf[in.ID] = in.Zone
	}
	cancel := func(r *approval.Request) {
		if _, err := w.engine.Cancel(context.Background(), "cancel-"+r.ID, r.ID, "UREQ"); err != nil {
			t.Fatal(err)
		}
	}
	zones := func(wave []string) []string {
		var zs []string
		for _, id := range wave {
			if !slices.Contains(zs, zoneOf[id]) {
				zs = append(zs, zoneOf[id])
			}
		}
		return zs
	}
	spread := w.mustCreate(t, approval.CreateInput{Key: "spread", Instances: ids, Waves: approval.WaveOptions{Size: 3}})
	if got := len(spread.Plan.Waves); got != 3 {
		t.Fatalf("--wave 3 of 9 made %d waves, want 3", got)
	}
	for i, wave := range spread.Plan.Waves {
		if len(wave) != 3 || len(zones(wave)) != 3 {
			t.Errorf("wave %d = %v (zones %v), want 3 instances across the 3 zones", i+1, wave, zones(wave))
		}
	}
	cancel(spread)
	byZone := w.mustCreate(t, approval.CreateInput{Key: "by-zone", Instances: ids, Waves: approval.WaveOptions{Size: 2, ByZone: true}})
	if got := len(byZone.Plan.Waves); got != 6 {
		t.Errorf("--wave 2 --by-zone of 3 zones of 3 made %d waves, want 6", got)
	}
	for i, wave := range byZone.Plan.Waves {
		if len(zones(wave)) != 1 {
			t.Errorf("--by-zone wave %d mixes zones %v", i+1, zones(wave))
		}
	}
	cancel(byZone)
	pct := w.mustCreate(t, approval.CreateInput{Key: "pct", Instances: ids, Waves: approval.WaveOptions{Size: 25, SizePercent: true, MaxFailures: 50, FailuresPercent: true}})
	if got := len(pct.Plan.Waves[0]); got != 3 {
		t.Errorf("--wave 25%% of 9 = %d per wave, want 3 (rounded up)", got)
	}
	if got := pct.Plan.MaxFailures; got != 4 {
		t.Errorf("--max-failures 50%% of 9 = %d, want 4 (rounded down)", got)
	}
	var all []string
	for _, wave := range pct.Plan.Waves {
		all = append(all, wave...)
	}
	slices.Sort(all)
	if !slices.Equal(all, ids) {
		t.Errorf("waves hold %v, want every instance once: %v", all, ids)
	}
}

func TestWaveOptionsAndPolicyRules(t *testing.T) {
	instances, ids := fleetOf(12, "ap-guangzhou-3", "ap-guangzhou-4")
	p := testPolicy()
	p.Waves = approval.WaveRules{RequiredAbove: 10, MaxSize: 5, MinPause: time.Minute}
	w := mustWorld(t, p, newFakeCloud(instances...), "")
	for _, tc := range []struct {
		name string
		ids  []string
		opts approval.WaveOptions
		want string
	}{
		{"no waves above required_above", ids, approval.WaveOptions{}, "waves.required_above"},
		{"waves too large", ids, approval.WaveOptions{Size: 6, Pause: time.Minute}, "waves.max_size"},
		{"one wave too large", ids, approval.WaveOptions{Size: 50, SizePercent: true, Pause: time.Minute}, "waves.max_size"},
		{"pause too short", ids, approval.WaveOptions{Size: 4, Pause: time.Second}, "waves.min_pause"},
		{"pause too long", ids, approval.WaveOptions{Size: 4, Pause: 25 * time.Hour}, "--pause must be between 0s and 24h"},
		{"percentage above 100", ids, approval.WaveOptions{Size: 101, SizePercent: true}, "not a percentage"},
		{"negative budget", ids, approval.WaveOptions{Size: 4, MaxFailures: -1}, "--max-failures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.events(t, approval.AuditQuery{})
			_, err := w.engine.Create(context.Background(), approval.CreateInput{Key: tc.name, Requester: "UREQ", Channel: "COPS", Reason: "kernel", Instances: tc.ids, Waves: tc.opts})
			if approval.ErrorKind(err) != approval.Invalid || !strings.Contains(approval.ErrorMessage(err), tc.want) {
				t.Fatalf("create = %v, want an Invalid error naming %q", err, tc.want)
			}
			after := w.events(t, approval.AuditQuery{})
			if len(after) != len(before)+1 || after[len(after)-1] != approval.EventRejected {
				t.Errorf("audit grew by %v, want one rejected event", after[len(before):])
			}
		})
	}
	r := w.mustCreate(t, approval.CreateInput{Key: "ok", Instances: ids, Waves: approval.WaveOptions{Size: 4, Pause: time.Minute}})
	if r.Plan == nil || len(r.Plan.Waves) != 3 {
		t.Errorf("plan = %+v, want 3 waves", r.Plan)
	}
	if _, err := w.engine.Cancel(context.Background(), "cancel", r.ID, "UREQ"); err != nil {
		t.Fatal(err)
	}
	if small := w.mustCreate(t, approval.CreateInput{Key: "small", Instances: ids[:5]}); small.Plan != nil {
		t.Errorf("a request of 5 without --wave got plan %+v", small.Plan)
	}
}

func TestWavesRollWithPause(t *testing.T) {
	instances, ids := fleetOf(6, "ap-guangzhou-3", "ap-guangzhou-4")
	w := mustWorld(t, testPolicy(), newFakeCloud(instances...), "")
	r := w.mustCreate(t, approval.CreateInput{Key: "roll", Instances: ids, Waves: approval.WaveOptions{Size: 2, Pause: 10 * time.Minute}})
	w.approveNow(t, r.ID)
	for wave := 1; wave <= 2; wave++ {
		got := w.waitFor(t, r.ID, fmt.Sprintf("wave %d to finish", wave), func(r *approval.Request) bool {
			return r.Wave == wave && r.WaveFinished
		})
		if want := w.clock.Now().Add(10 * time.Minute); !got.NextWaveAt.Equal(want) {
			t.Errorf("after wave %d the next starts at %v, want %v", wave, got.NextWaveAt, want)
		}
		for k, ids := range got.Plan.Waves {
			want := 0
			if k < wave {
				want = len(ids)
			}
			if n := calledIn(w.cloud, ids); n != want {
				t.Errorf("during the pause after wave %d, wave %d had %d reboot calls, want %d", wave, k+1, n, want)
			}
		}
		w.clock.Advance(9 * time.Minute)
		if got := w.mustGet(t, r.ID); got.Wave != wave {
			t.Fatalf("wave %d started before the pause ended", got.Wave)
		}
		w.clock.Advance(time.Minute)
	}
	done := w.waitState(t, r.ID, approval.Succeeded)
	for _, id := range ids {
		if n := w.cloud.rebootCalls(id); n != 1 {
			t.Errorf("%s rebooted %d times, want 1", id, n)
		}
	}
	if p := done.Progress(); p.Wave != 3 || p.Rebooted != 6 || p.Waiting != 0 {
		t.Errorf("progress = %+v", p)
	}
	var waveEvents []approval.EventType
	for _, e := range w.events(t, approval.AuditQuery{RequestID: r.ID}) {
		if e == approval.EventWaveStarted || e == approval.EventWaveFinished {
			waveEvents = append(waveEvents, e)
		}
	}
	if got, want := fmt.Sprint(waveEvents), "[wave_started wave_finished wave_started wave_finished wave_started wave_finished]"; got != want {
		t.Errorf("wave events = %s, want %s", got, want)
	}
}

func TestFailureBudgetStops(t *testing.T) {
	instances, ids := fleetOf(8, "ap-guangzhou-3", "ap-guangzhou-4")
	cloud := newFakeCloud(instances...)
	w := mustWorld(t, testPolicy(), cloud, "")
	r := w.mustCreate(t, approval.CreateInput{Key: "budget", Instances: ids, Waves: approval.WaveOptions{Size: 2, MaxFailures: 1}})
	// One failure in wave 1 is within the budget; a second in wave 2 is not.
	cloud.failOp[r.Plan.Waves[0][0]] = true
	cloud.failOp[r.Plan.Waves[1][1]] = true
	w.approveNow(t, r.ID)
	done := w.waitState(t, r.ID, approval.Stopped)
	if done.Halt == nil || done.Halt.By != approval.ActorBot || done.Halt.Reason != "2 failures, budget 1, after wave 2 of 4" {
		t.Errorf("halt = %+v", done.Halt)
	}
	if n := calledIn(cloud, append(slices.Clone(r.Plan.Waves[2]), r.Plan.Waves[3]...)); n != 0 {
		t.Errorf("waves 3 and 4 got %d reboot calls after the budget was exceeded", n)
	}
	if p := done.Progress(); p.Rebooted != 2 || p.Failed != 2 || p.Waiting != 4 {
		t.Errorf("progress = %+v, want 2 rebooted, 2 failed, 4 not rebooted", p)
	}
	events := w.events(t, approval.AuditQuery{RequestID: r.ID})
	if !slices.Contains(events, approval.EventStopped) || events[len(events)-1] != approval.EventCompleted {
		t.Errorf("events = %v, want stopped and then completed", events)
	}
	if !done.Settled() {
		t.Errorf("a stopped request is not settled: %+v", done)
	}
	if kinds := w.slack.reportsOf(r.ID); kinds[len(kinds)-1].Kind != approval.ReportFinished {
		t.Errorf("thread reports end with %v, want the summary", kinds[len(kinds)-1])
	}
}

func TestStopBetweenWaves(t *testing.T) {
	instances, ids := fleetOf(6, "ap-guangzhou-3", "ap-guangzhou-4")
	cloud := newFakeCloud(instances...)
	w := mustWorld(t, testPolicy(), cloud, "")
	r := w.mustCreate(t, approval.CreateInput{Key: "stop", Instances: ids, Waves: approval.WaveOptions{Size: 2, Pause: time.Hour}})
	ctx := context.Background()
	if _, err := w.engine.Stop(ctx, "early", r.ID, "UREQ", nil); approval.ErrorKind(err) != approval.Conflict {
		t.Errorf("stop of a pending request = %v, want a conflict", err)
	}
	w.approveNow(t, r.ID)
	w.waitFor(t, r.ID, "the pause after wave 1", func(r *approval.Request) bool { return r.Wave == 1 && r.WaveFinished })
	_, err := w.engine.Stop(ctx, "stranger", r.ID, "UZED", nil)
	if approval.ErrorKind(err) != approval.Forbidden || !strings.Contains(approval.ErrorMessage(err), "Only the person who asked") {
		t.Errorf("stop by a stranger = %v, want forbidden", err)
	}
	if got := w.mustGet(t, r.ID); got.Halt != nil || got.State != approval.Executing {
		t.Errorf("a refused stop changed the request: %s, %+v", got.State, got.Halt)
	}
	// An approver may stop it, from its card.
	card := w.mustCard(t, r.ID)
	if _, err := w.engine.Stop(ctx, "wrong-card", r.ID, "UALICE", &approval.Card{Channel: card.Channel, TS: "1.000001"}); approval.ErrorKind(err) != approval.Conflict {
		t.Errorf("stop from another card = %v, want a conflict", err)
	}
	res, err := w.engine.Stop(ctx, "stop-click", r.ID, "UALICE", &card)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Message, "before wave 2 of 3") {
		t.Errorf("stop message = %q", res.Message)
	}
	done := w.waitState(t, r.ID, approval.Stopped)
	if done.Halt == nil || done.Halt.By != "UALICE" || !done.Halt.At.Equal(w.clock.Now()) {
		t.Errorf("halt = %+v", done.Halt)
	}
	w.clock.Advance(2 * time.Hour)
	if n := calledIn(cloud, append(slices.Clone(r.Plan.Waves[1]), r.Plan.Waves[2]...)); n != 0 {
		t.Errorf("later waves got %d reboot calls after the stop", n)
	}
	again, err := w.engine.Stop(ctx, "stop-click", r.ID, "UALICE", &card)
	if err != nil || !again.Replayed || again.Message != res.Message {
		t.Errorf("the same click again = %+v, %v; want the first answer", again, err)
	}
	refused := 0
	for _, e := range w.events(t, approval.AuditQuery{RequestID: r.ID}) {
		if e == approval.EventApprovalRefused {
			refused++
		}
	}
	if refused != 3 {
		t.Errorf("audited %d refused stops, want 3", refused)
	}
}

func TestStopDuringWave(t *testing.T) {
	instances, ids := fleetOf(6, "ap-guangzhou-3", "ap-guangzhou-4")
	cloud := newFakeCloud(instances...)
	cloud.hold, cloud.waiting = make(chan struct{}), make(chan struct{}, 10)
	w := mustWorld(t, testPolicy(), cloud, "")
	r := w.mustCreate(t, approval.CreateInput{Key: "stop", Instances: ids, Waves: approval.WaveOptions{Size: 2}})
	w.approveNow(t, r.ID)
	<-cloud.waiting // wave 1 was called and is being waited for
	res, err := w.engine.Stop(context.Background(), "stop-command", r.ID, "UREQ", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Message, "wave 1 of 3 finishes") {
		t.Errorf("stop message = %q", res.Message)
	}
	if got := w.mustGet(t, r.ID); got.State != approval.Executing || got.Halt == nil {
		t.Errorf("while wave 1 runs the request is %s with halt %+v", got.State, got.Halt)
	}
	close(cloud.hold)
	done := w.waitState(t, r.ID, approval.Stopped)
	if p := done.Progress(); p.Rebooted != 2 || p.Waiting != 4 {
		t.Errorf("progress = %+v, want wave 1 rebooted and 4 not", p)
	}
	if n := calledIn(cloud, r.Plan.Waves[1]); n != 0 {
		t.Errorf("wave 2 got %d reboot calls", n)
	}
}

func TestStopRefusedWithoutLaterWave(t *testing.T) {
	w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
	r := w.mustCreate(t, approval.CreateInput{Key: "one", Instances: []string{"ins-aaaaaaaa"}})
	w.approveNow(t, r.ID)
	w.waitState(t, r.ID, approval.Succeeded)
	if _, err := w.engine.Stop(context.Background(), "late", r.ID, "UREQ", nil); approval.ErrorKind(err) != approval.Conflict {
		t.Errorf("stop of a finished request = %v, want a conflict", err)
	}
	if _, err := w.engine.Stop(context.Background(), "none", "R-99", "UREQ", nil); approval.ErrorKind(err) != approval.NotFound {
		t.Errorf("stop of no request = %v, want not found", err)
	}
}

func TestWavesResumeAfterRestartDuringPause(t *testing.T) {
	instances, ids := fleetOf(4, "ap-guangzhou-3", "ap-guangzhou-4")
	cloud := newFakeCloud(instances...)
	db := t.TempDir() + "/bot.db"
	w := mustWorld(t, testPolicy(), cloud, db)
	r := w.mustCreate(t, approval.CreateInput{Key: "resume", Instances: ids, Waves: approval.WaveOptions{Size: 2, Pause: 30 * time.Minute}})
	w.approveNow(t, r.ID)
	paused := w.waitFor(t, r.ID, "the pause after wave 1", func(r *approval.Request) bool { return r.Wave == 1 && r.WaveFinished })
	w.stop(t)

	w2 := mustWorld(t, testPolicy(), cloud, db)
	// The new clock stands where the old one did; the pause's end is
	// absolute, so only the time left of it is waited.
	if got := w2.mustGet(t, r.ID); got.Wave != 1 || !got.NextWaveAt.Equal(paused.NextWaveAt) {
		t.Fatalf("after the restart: wave %d, next at %v", got.Wave, got.NextWaveAt)
	}
	w2.clock.Advance(29 * time.Minute)
	if n := calledIn(cloud, r.Plan.Waves[1]); n != 0 {
		t.Errorf("wave 2 started before its pause ended: %d calls", n)
	}
	w2.clock.Advance(time.Minute)
	w2.waitState(t, r.ID, approval.Succeeded)
	for _, id := range ids {
		if n := cloud.rebootCalls(id); n != 1 {
			t.Errorf("%s rebooted %d times, want 1", id, n)
		}
	}
}
