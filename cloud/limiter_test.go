package cloud

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"rebootbot/internal/testutil"
)

// TestLimiterSchedule lets 25 callers through a limiter of 10 a second
// and checks that no second of its clock saw more than 10. The callers run
// in a synctest bubble, so synctest.Wait tells when every one of them has
// either been let through or gone to sleep; only the first in the queue
// sleeps on the clock, the others wait for their turn.
func TestLimiterSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := testutil.NewFakeClock(start)
		l := NewLimiterWithClock(10, clock)

		const calls = 25
		var mu sync.Mutex
		var grants []time.Time
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				if err := l.Wait(context.Background()); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				grants = append(grants, clock.Now())
				mu.Unlock()
			})
		}
		// expect checks, once every caller is through or asleep, how many
		// were let through and how many wait on the clock.
		expect := func(through, waiting int) {
			t.Helper()
			synctest.Wait()
			mu.Lock()
			got := len(grants)
			mu.Unlock()
			if got != through || clock.Waiters() != waiting {
				t.Fatalf("%d calls through and %d waiting, want %d and %d", got, clock.Waiters(), through, waiting)
			}
		}
		expect(10, 1)
		clock.Advance(time.Second)
		expect(20, 1)
		clock.Advance(time.Second)
		wg.Wait()

		sort.Slice(grants, func(i, j int) bool { return grants[i].Before(grants[j]) })
		for i, g := range grants {
			if n := countWithin(grants, g, time.Second); n > 10 {
				t.Errorf("%d calls within one second of call %d", n, i)
			}
		}
		st := l.Stats()
		if st.Calls != calls {
			t.Errorf("Stats.Calls = %d, want %d", st.Calls, calls)
		}
		if span := st.Last.Sub(st.First); span < 2*time.Second {
			t.Errorf("25 calls spanned %v of limiter time, want at least 2s", span)
		}
		if st.Waited <= 0 {
			t.Errorf("Stats.Waited = %v, want callers to have waited", st.Waited)
		}
	})
}

// inFlight counts the slots whose call has not been answered.
func (l *Limiter) inFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, b := range l.busy {
		if b {
			n++
		}
	}
	return n
}

// countWithin counts the times in [from, from+d).
func countWithin(times []time.Time, from time.Time, d time.Duration) int {
	n := 0
	for _, t := range times {
		if !t.Before(from) && t.Before(from.Add(d)) {
			n++
		}
	}
	return n
}

func TestLimiterHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := testutil.NewFakeClock(time.Unix(0, 0))
		l := NewLimiterWithClock(1, clock)
		if err := l.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Wait(ctx) }()
		synctest.Wait()
		if n := clock.Waiters(); n != 1 {
			t.Fatalf("%d callers wait on the clock, want the second caller", n)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Wait = %v, want context.Canceled", err)
		}
		cancelled, stop := context.WithCancel(context.Background())
		stop()
		if err := l.Wait(cancelled); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait on a done context = %v, want context.Canceled", err)
		}
	})
}

func TestSharedLimiters(t *testing.T) {
	first, again := SharedLimiter(), SharedLimiter()
	if first != again || first == SharedDescribeLimiter() {
		t.Fatal("shared limiters are not single process-wide values")
	}
	if got := len(SharedLimiter().free); got != RebootCallsPerSecond {
		t.Errorf("shared reboot limiter allows %d calls a second, want %d", got, RebootCallsPerSecond)
	}
}

// TestLimiterHoldsSlotUntilAnswered keeps the one slot of a limiter in a
// call that has not been answered: the next call waits for the answer and
// a second after it, not a second after the start.
func TestLimiterHoldsSlotUntilAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := testutil.NewFakeClock(time.Unix(0, 0))
		l := NewLimiterWithClock(1, clock)
		slow, err := l.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		through := make(chan struct{}, 1)
		go func() {
			if err := l.Wait(context.Background()); err != nil {
				t.Error(err)
			}
			through <- struct{}{}
		}()
		clock.Advance(3 * time.Second)
		synctest.Wait()
		if len(through) != 0 {
			t.Fatal("a call went through while the only slot's call was unanswered")
		}
		slow()
		slow() // a second done changes nothing
		clock.Advance(time.Second - time.Millisecond)
		synctest.Wait()
		if len(through) != 0 {
			t.Fatal("a call went through less than a second after the slot's call was answered")
		}
		clock.Advance(time.Millisecond)
		synctest.Wait()
		if len(through) != 1 {
			t.Fatal("no call went through a second after the answer")
		}
	})
}

// TestLimiterArrivalsWithinRate sends calls that spend a random time on
// their way to the server and back, as on a busy machine, and counts them
// where the server would: at arrival. No second may see more than the
// limit, however the delays fall. time is synctest's, so the delays cost
// nothing.
func TestLimiterArrivalsWithinRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const perSecond, calls = 10, 300
		l := NewLimiter(perSecond)
		rng := rand.New(rand.NewPCG(7, 11))
		delays := make([][2]time.Duration, calls)
		for i := range delays {
			// Most calls are quick; one in five is held up for up to 700 ms
			// on its way out.
			out := time.Duration(rng.IntN(20)) * time.Millisecond
			if rng.IntN(5) == 0 {
				out = time.Duration(rng.IntN(700)) * time.Millisecond
			}
			delays[i] = [2]time.Duration{out, time.Duration(rng.IntN(50)) * time.Millisecond}
		}
		var mu sync.Mutex
		var arrivals []time.Time
		var wg sync.WaitGroup
		for i := range calls {
			wg.Go(func() {
				done, err := l.Start(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(delays[i][0])
				mu.Lock()
				arrivals = append(arrivals, time.Now())
				mu.Unlock()
				time.Sleep(delays[i][1])
				done()
			})
		}
		wg.Wait()
		sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].Before(arrivals[j]) })
		worst := 0
		for _, a := range arrivals {
			worst = max(worst, countWithin(arrivals, a, time.Second))
		}
		if worst > perSecond {
			t.Errorf("%d calls arrived within one second, want at most %d", worst, perSecond)
		}
		if st := l.Stats(); st.Calls != calls {
			t.Errorf("Stats.Calls = %d, want %d", st.Calls, calls)
		}
	})
}
