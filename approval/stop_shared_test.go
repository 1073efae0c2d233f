package approval_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
	"rebootbot/store"
)

// TestStopFromAnotherEngineWakesThePause runs a passive engine beside the
// active one on the same store, as a replica that is not the leader runs
// beside the leader, and stops a rolling request on the passive one while
// the active one's execution pauses between waves. The stop ends the
// request at once; the active engine, woken as a change to the store wakes
// it, must end its execution then, not when the pause is over, and reboot
// no later wave. The clock never moves, so only the wake can end it.
func TestStopFromAnotherEngineWakesThePause(t *testing.T) {
	instances, ids := fleetOf(4, "ap-guangzhou-3", "ap-guangzhou-4")
	clock := testutil.NewFakeClock(epoch)
	db, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{NoSync: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cloud, slack := newFakeCloud(instances...), newFakeSlack()
	var leaderLog testutil.SyncBuffer
	engine := func(passive bool, log *slog.Logger) *approval.Engine {
		e, err := approval.NewEngine(approval.Config{
			Store: db, Cloud: cloud, Rebooter: cloud, Notifier: slack, Policy: testPolicy(), Clock: clock,
			Logger: log, PollInterval: time.Millisecond, RebootTimeout: time.Minute, Passive: passive, Shared: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.Close(ctx); err != nil {
				t.Errorf("close engine: %v", err)
			}
		})
		return e
	}
	leader := engine(false, slog.New(slog.NewTextHandler(&leaderLog, nil)))
	front := engine(true, nil)
	ctx := context.Background()

	r, err := front.Create(ctx, approval.CreateInput{Key: "roll", Requester: "UREQ", Channel: "COPS", Reason: "kernel patch",
		Instances: ids, Waves: approval.WaveOptions{Size: 2, Pause: 30 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	card := mustStoredCard(t, db, r.ID)
	if _, err := front.Approve(ctx, "approve", r.ID, "UALICE", card); err != nil {
		t.Fatal(err)
	}
	leader.Wake()
	testutil.Eventually(t, 10*time.Second, func() bool {
		got, err := db.Get(ctx, r.ID)
		return err == nil && got.Wave == 1 && got.WaveFinished
	}, "the pause after wave 1 of %s", r.ID)
	// The execution stores the wave's end before it goes to sleep for
	// the pause; a stop taken in between ends it without a pause. Only
	// its 30-minute timer shows it asleep.
	testutil.Eventually(t, 10*time.Second, func() bool {
		return clock.WaitersWithin(31*time.Minute) > clock.WaitersWithin(29*time.Minute)
	}, "the leading engine's execution of %s to sleep out the pause", r.ID)

	res, err := front.Stop(ctx, "stop-click", r.ID, "UALICE", &card)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Message, "before wave 2 of 2") {
		t.Errorf("stop message = %q", res.Message)
	}
	leader.Wake()
	testutil.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(leaderLog.String(), "execution ended during the pause between waves")
	}, "the leading engine's execution of %s to end with the pause still running; its log:\n%s", r.ID, &leaderLog)
	if !strings.Contains(leaderLog.String(), "request="+r.ID) {
		t.Errorf("the log does not name %s:\n%s", r.ID, leaderLog.String())
	}
	got, err := db.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != approval.Stopped || got.Halt == nil || got.Halt.By != "UALICE" {
		t.Errorf("after the stop %s is %s with halt %+v, want STOPPED by UALICE", r.ID, got.State, got.Halt)
	}
	clock.Advance(time.Hour)
	if n := calledIn(cloud, r.Plan.Waves[1]); n != 0 {
		t.Errorf("wave 2 got %d reboot calls after the stop", n)
	}
	if n := calledIn(cloud, r.Plan.Waves[0]); n != 2 {
		t.Errorf("wave 1 got %d reboot calls, want 2", n)
	}
}

// mustStoredCard waits until request id's card is stored and returns it.
func mustStoredCard(t *testing.T, db *store.DB, id string) approval.Card {
	t.Helper()
	var c approval.Card
	testutil.Eventually(t, 10*time.Second, func() bool {
		r, err := db.Get(context.Background(), id)
		if err == nil {
			c = r.Card
		}
		return c.TS != ""
	}, "%s's card to be stored", id)
	return c
}
