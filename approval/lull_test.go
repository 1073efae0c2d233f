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

// TestLullGoesAtOnceWhenNobodyCalls checks that a job waits for nothing
// when no command or click has come.
func TestLullGoesAtOnceWhenNobodyCalls(t *testing.T) {
	l := &lull{quiet: time.Hour, most: time.Hour}
	select {
	case ok := <-waited(t.Context(), l):
		if !ok {
			t.Error("wait = false, want true")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a job waited with no command or click ever handled")
	}
}

// TestLullWaitsForTheCallsInFlight checks that a job takes no turn while a
// lone click is being handled, and goes as soon as it was answered.
func TestLullWaitsForTheCallsInFlight(t *testing.T) {
	l := &lull{quiet: time.Hour, most: time.Hour}
	end := l.begin()
	got := waited(t.Context(), l)
	select {
	case <-got:
		t.Fatal("a job went while a click was being handled")
	case <-time.After(100 * time.Millisecond):
	}
	end()
	select {
	case ok := <-got:
		if !ok {
			t.Error("wait = false, want true")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the job still waited after the click was answered")
	}
}

// TestLullWaitsOutACrowd checks that once two clicks were handled at
// the same time, a job waits for a quiet spell after the last one, not
// only for it to be answered.
func TestLullWaitsOutACrowd(t *testing.T) {
	l := &lull{quiet: time.Hour, most: time.Hour}
	end1, end2 := l.begin(), l.begin()
	end1()
	end2()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	select {
	case <-waited(ctx, l):
		t.Fatal("a job went right after two clicks handled together")
	case <-time.After(100 * time.Millisecond):
	}
	l = &lull{quiet: 10 * time.Millisecond, most: time.Hour}
	end1, end2 = l.begin(), l.begin()
	end1()
	end2()
	select {
	case ok := <-waited(t.Context(), l):
		if !ok {
			t.Error("wait = false, want true")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the job still waited after the quiet spell")
	}
}

// TestLullNeverHoldsAJobPastMost checks that people who never stop
// clicking cannot keep the cards from being updated.
func TestLullNeverHoldsAJobPastMost(t *testing.T) {
	l := &lull{quiet: time.Hour, most: 20 * time.Millisecond}
	defer l.begin()()
	select {
	case ok := <-waited(t.Context(), l):
		if !ok {
			t.Error("wait = false, want true")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a job waited past the lull's bound")
	}
}

// TestLullWaitEndsWithItsJob checks that a job stopped while it waits
// gives up.
func TestLullWaitEndsWithItsJob(t *testing.T) {
	l := &lull{quiet: time.Hour, most: time.Hour}
	defer l.begin()()
	ctx, cancel := context.WithCancel(t.Context())
	got := waited(ctx, l)
	cancel()
	select {
	case ok := <-got:
		if ok {
			t.Error("wait = true for a stopped job, want false")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stopped job kept waiting")
	}
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
	time.Sleep(50 * time.Millisecond)
	if len(slots) != 0 {
		t.Fatal("a job took a turn while a click was being handled")
	}
	end()
	select {
	case ok := <-took:
		if !ok || len(slots) != 1 {
			t.Errorf("take = %v with %d turns taken, want true and 1", ok, len(slots))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no turn taken after the click was answered")
	}
}
