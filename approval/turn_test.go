package approval

import (
	"context"
	"testing"
	"time"
)

// TestOffTurnLetsAnotherJobRun has the only turn's holder wait off its
// turn for a job that needs one: without the turn handed back, neither
// would ever go on.
func TestOffTurnLetsAnotherJobRun(t *testing.T) {
	slots := make(chan struct{}, 1)
	first := &jobTurn{slots: slots}
	if !first.take(t.Context()) {
		t.Fatal("no turn for the first job")
	}
	ctx := context.WithValue(t.Context(), jobTurnKey{}, first)
	otherRan := make(chan struct{})
	go func() {
		other := &jobTurn{slots: slots}
		if other.take(t.Context()) {
			other.give()
			close(otherRan)
		}
	}()
	back := offTurn(ctx, func() {
		select {
		case <-otherRan:
		case <-time.After(10 * time.Second):
			t.Error("the other job got no turn while the first waited off its own")
		}
	})
	if !back || !first.held {
		t.Errorf("offTurn = %v, held %v; want the turn taken again", back, first.held)
	}
	first.give()
	if len(slots) != 0 {
		t.Errorf("%d turns still taken after both jobs ended", len(slots))
	}
}

// TestOffTurnGivesUpWhenStopped checks that a job stopped while off its
// turn does not take one again, so that its end gives nothing back twice.
func TestOffTurnGivesUpWhenStopped(t *testing.T) {
	slots := make(chan struct{}, 1)
	turn := &jobTurn{slots: slots}
	turn.take(t.Context())
	ctx, cancel := context.WithCancel(context.WithValue(t.Context(), jobTurnKey{}, turn))
	if offTurn(ctx, func() {
		slots <- struct{}{} // another job takes the turn meanwhile
		cancel()
	}) {
		t.Error("offTurn took a turn again after its job was stopped")
	}
	turn.give() // as runJob does when fn returns
	if len(slots) != 1 {
		t.Errorf("%d turns taken, want the other job's one", len(slots))
	}
}
