package approval

import (
	"context"
	"testing"
	"time"
)

// waited runs l.wait(ctx) in the background and returns where its answer
// arrives.
func waited(ctx context.Context, l *lull) <-chan bool {
	got := make(chan bool, 1)
	go func() { got <- l.wait(ctx) }()
	return got
}

// wantWaitEnds checks that the wait whose answer comes on got ends, with
// want; stuck says what it would mean if it did not.
func wantWaitEnds(t *testing.T, got <-chan bool, want bool, stuck string) {
	t.Helper()
	select {
	case ok := <-got:
		if ok != want {
			t.Errorf("wait = %v, want %v", ok, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(stuck)
	}
}

// wantStillWaiting checks that the wait whose answer comes on got has not
// ended 100 ms on; gone says what it would mean if it had.
func wantStillWaiting(t *testing.T, got <-chan bool, gone string) {
	t.Helper()
	select {
	case <-got:
		t.Fatal(gone)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestLullGoesAtOnceWhenNobodyCalls checks that a job waits for nothing
// when no command or click has come.
func TestLullGoesAtOnceWhenNobodyCalls(t *testing.T) {
	l := &lull{quiet: time.Hour, most: time.Hour}
	wantWaitEnds(t, waited(t.Context(), l), true, "a job waited with no command or click ever handled")
}

// TestLullWaitsForTheCallsInFlight checks that a job takes no turn while a
// lone click is being handled, and goes as soon as it was answered.
func TestLullWaitsForTheCallsInFlight(t *testing.T) {
	l := &lull{quiet: time.Hour, most: time.Hour}
	end := l.begin()
	got := waited(t.Context(), l)
	wantStillWaiting(t, got, "a job went while a click was being handled")
	end()
	wantWaitEnds(t, got, true, "the job still waited after the click was answered")
}

// TestLullWaitsOutACrowd checks that once two clicks were handled at
// the same time, a job waits for a quiet spell after the last one, not
// only for it to be answered.
func TestLullWaitsOutACrowd(t *testing.T) {
	crowd := func(l *lull) {
		end1, end2 := l.begin(), l.begin()
		end1()
		end2()
	}
	l := &lull{quiet: time.Hour, most: time.Hour}
	crowd(l)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	wantStillWaiting(t, waited(ctx, l), "a job went right after two clicks handled together")
	l = &lull{quiet: 10 * time.Millisecond, most: time.Hour}
	crowd(l)
	wantWaitEnds(t, waited(t.Context(), l), true, "the job still waited after the quiet spell")
}

// TestLullNeverHoldsAJobPastMost checks that people who never stop
// clicking cannot keep the cards from being updated.
func TestLullNeverHoldsAJobPastMost(t *testing.T) {
	l := &lull{quiet: time.Hour, most: 20 * time.Millisecond}
	defer l.begin()()
	wantWaitEnds(t, waited(t.Context(), l), true, "a job waited past the lull's bound")
}

// TestLullWaitEndsWithItsJob checks that a job stopped while it waits
// gives up.
func TestLullWaitEndsWithItsJob(t *testing.T) {
	l := &lull{quiet: time.Hour, most: time.Hour}
	defer l.begin()()
	ctx, cancel := context.WithCancel(t.Context())
	got := waited(ctx, l)
	cancel()
	wantWaitEnds(t, got, false, "a stopped job kept waiting")
}

// TestTurnTakenAfterTheLull checks that a job waiting for a lull holds no
// turn meanwhile, so that it keeps no other job waiting.
func TestTurnTakenAfterTheLull(t *testing.T) {
	slots := make(chan struct{}, 1)
	l := &lull{quiet: time.Millisecond, most: time.Hour}
	end := l.begin()
	turn := &jobTurn{slots: slots, lull: l}
	took := make(chan bool, 1)
	go func() { took <- turn.take(t.Context()) }()
	wantStillWaiting(t, took, "a job took a turn while a click was being handled")
	if len(slots) != 0 {
		t.Fatal("a job holds a turn while a click is being handled")
	}
	end()
	wantWaitEnds(t, took, true, "no turn taken after the click was answered")
	if len(slots) != 1 {
		t.Errorf("%d turns taken, want 1", len(slots))
	}
}
