package approval

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"rebootbot/internal/background"
	"rebootbot/internal/testutil"
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

// laterFor returns a queue over l with n slots whose work runs as
// background work of a group that ends with the test.
func laterFor(t *testing.T, l *lull, n int) *laterQueue {
	t.Helper()
	g := background.New()
	t.Cleanup(func() { g.Close(context.Background()) })
	return &laterQueue{lull: l, slots: make(chan struct{}, n), spawn: g.Go}
}

// TestQueuedWorkWaitsForTheLullWithoutAGoroutine checks that work queued
// during a crowd of clicks waits in the queue, not in a goroutine of its
// own, and runs, oldest first and at most as many at a time as there are
// slots, once the lull comes.
func TestQueuedWorkWaitsForTheLullWithoutAGoroutine(t *testing.T) {
	l := &lull{quiet: time.Millisecond, most: time.Hour}
	q := laterFor(t, l, 2)
	end := l.begin()
	const n = 50
	var mu sync.Mutex
	var order []int
	running, most := 0, 0
	done := make(chan struct{}, n)
	before := runtime.NumGoroutine()
	for i := range n {
		q.add(func(ctx context.Context, turn *jobTurn) {
			defer turn.give()
			mu.Lock()
			order = append(order, i)
			running++
			most = max(most, running)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			running--
			mu.Unlock()
			done <- struct{}{}
		}, nil)
	}
	if grew := runtime.NumGoroutine() - before; grew > 5 {
		t.Errorf("%d pieces of work queued started %d goroutines", n, grew)
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	ran := len(order)
	mu.Unlock()
	if ran != 0 {
		t.Fatalf("%d pieces of work ran while a click was being handled", ran)
	}
	end()
	for range n {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("queued work did not run after the lull came")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for k, i := range order { // two start at once, so neighbours may swap
		if i < k-1 || i > k+1 {
			t.Fatalf("work ran in the order %v; want the order it was queued", order)
		}
	}
	if most > 2 {
		t.Errorf("%d pieces of work ran at once, want at most the 2 slots", most)
	}
}

// TestQueuedWorkNeverWaitsPastMost checks that work queued while people
// never stop clicking still runs once it has waited the lull's bound.
func TestQueuedWorkNeverWaitsPastMost(t *testing.T) {
	l := &lull{quiet: time.Hour, most: 20 * time.Millisecond}
	defer l.begin()()
	q := laterFor(t, l, 1)
	ran := make(chan bool, 1)
	q.add(func(ctx context.Context, turn *jobTurn) { turn.give(); ran <- true }, nil)
	wantWaitEnds(t, ran, true, "queued work waited past the lull's bound")
}

// TestQueuedWorkDroppedWhenStopped checks that work still queued when its
// owner gives up is told it will not run, and that the owner then takes
// no more.
func TestQueuedWorkDroppedWhenStopped(t *testing.T) {
	l := &lull{quiet: time.Hour, most: time.Hour}
	defer l.begin()()
	g := background.New()
	q := &laterQueue{lull: l, slots: make(chan struct{}, 1), spawn: g.Go}
	dropped := make(chan bool, 2)
	for range 2 {
		q.add(func(ctx context.Context, turn *jobTurn) { turn.give(); t.Error("dropped work ran") }, func() { dropped <- true })
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	g.Close(ctx) // gives up at once, cancelling the queue's wait
	for range 2 {
		wantWaitEnds(t, dropped, true, "queued work was not told it would not run")
	}
	if q.add(func(ctx context.Context, turn *jobTurn) { turn.give() }, nil) {
		t.Error("work was queued after its owner stopped")
	}
}

// TestJobAskedAgainRunsAgainWhileTheEngineCloses checks that a card or
// thread job asked for again while it runs still runs once more when the
// engine has meanwhile begun to close and takes no new work: it is under
// way, and what it owes Slack changed.
func TestJobAskedAgainRunsAgainWhileTheEngineCloses(t *testing.T) {
	e := &Engine{running: map[string]bool{}, rerun: map[string]bool{}, lull: newLull(),
		noticeSlots: make(chan struct{}, 1), background: background.New()}
	e.jobs = &laterQueue{lull: e.lull, slots: e.noticeSlots, spawn: e.background.Go}
	inside, release := make(chan struct{}), make(chan struct{})
	runs := make(chan int, 2)
	n := 0
	job := func(ctx context.Context, id string) {
		n++
		runs <- n
		if n == 1 {
			close(inside)
			<-release
		}
	}
	e.runJob(jobCard, "R-1", job)
	<-inside
	e.runJob(jobCard, "R-1", job) // asked again while it runs
	closed := make(chan error, 1)
	go func() { closed <- e.background.Close(context.Background()) }()
	testutil.Eventually(t, 5*time.Second, e.background.Closed, "the engine to begin closing")
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v", err)
	}
	if got := len(runs); got != 2 {
		t.Errorf("the job ran %d times, want twice: once, and once more as asked while it ran", got)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running["card R-1"] {
		t.Error("the job is still marked running after it ended")
	}
}
