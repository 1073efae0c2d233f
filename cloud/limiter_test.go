package cloud

import (
	"context"
	"errors"
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
// either been let through or gone to sleep on the clock.
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
		expect(10, 15)
		clock.Advance(time.Second + limiterGuard)
		expect(20, 5)
		clock.Advance(time.Second + limiterGuard)
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
	if got := len(SharedLimiter().slots); got != RebootCallsPerSecond {
		t.Errorf("shared reboot limiter allows %d calls a second, want %d", got, RebootCallsPerSecond)
	}
}
