package cloud

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"rebootbot/internal/testutil"
)

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLimiterSchedule(t *testing.T) {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := testutil.NewFakeClock(start)
	l := NewLimiterWithClock(10, clock)

	const calls = 25
	var mu sync.Mutex
	var grants []time.Time
	var wg sync.WaitGroup
	for range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Wait(context.Background()); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			grants = append(grants, clock.Now())
			mu.Unlock()
		}()
	}
	granted := func(n int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return len(grants) == n }
	}
	eventually(t, "the first 10 calls", granted(10))
	eventually(t, "15 callers waiting", func() bool { return clock.Waiters() == 15 })
	clock.Advance(time.Second + limiterGuard)
	eventually(t, "20 calls", granted(20))
	eventually(t, "5 callers waiting", func() bool { return clock.Waiters() == 5 })
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
	clock := testutil.NewFakeClock(time.Unix(0, 0))
	l := NewLimiterWithClock(1, clock)
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx) }()
	eventually(t, "the second caller to wait", func() bool { return clock.Waiters() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v, want context.Canceled", err)
	}
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	if err := l.Wait(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a done context = %v, want context.Canceled", err)
	}
}

func TestSharedLimiters(t *testing.T) {
	if SharedLimiter() != SharedLimiter() || SharedLimiter() == SharedDescribeLimiter() {
		t.Fatal("shared limiters are not single process-wide values")
	}
	if got := len(SharedLimiter().slots); got != RebootCallsPerSecond {
		t.Errorf("shared reboot limiter allows %d calls a second, want %d", got, RebootCallsPerSecond)
	}
}
