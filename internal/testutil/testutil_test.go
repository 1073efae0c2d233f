package testutil

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// runRecorded runs fn with a fatalRecorder in its own goroutine and
// returns the message it failed with ("" when it did not fail).
func runRecorded(t *testing.T, fn func(tb testing.TB)) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.msg
}

func TestEventually(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		polls := 0
		msg := runRecorded(t, func(tb testing.TB) {
			Eventually(tb, time.Minute, func() bool { polls++; return time.Since(start) >= 3*time.Second }, "three seconds")
		})
		if msg != "" {
			t.Fatalf("Eventually failed on a condition that came to hold: %s", msg)
		}
		if waited := time.Since(start); waited < 3*time.Second || waited > 3*time.Second+20*time.Millisecond {
			t.Errorf("Eventually returned %v after the start, want within a poll of 3s", waited)
		}
		if polls < 2 {
			t.Errorf("cond polled %d times, want more than once", polls)
		}
	})
}

func TestEventuallyTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		msg := runRecorded(t, func(tb testing.TB) {
			Eventually(tb, 10*time.Second, func() bool { return false }, "request %s to be %s", "R-1", "EXPIRED")
		})
		if want := "timed out after 10s waiting for request R-1 to be EXPIRED"; msg != want {
			t.Errorf("message = %q, want %q", msg, want)
		}
		if waited := time.Since(start); waited != 10*time.Second {
			t.Errorf("gave up after %v, want 10s", waited)
		}
	})
}

func TestPollHoldsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if !Poll(time.Second, func() bool { return true }) {
			t.Fatal("Poll = false for a condition that holds")
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("Poll slept %v before a condition that already held", waited)
		}
	})
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprintf(&b, "%d\n", i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "\n"); got != 800 {
		t.Errorf("%d lines, want 800", got)
	}
}

func TestFakeClock(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := NewFakeClock(start)
	if now := <-c.After(0); !now.Equal(start) {
		t.Errorf("After(0) fired with %v, want %v", now, start)
	}
	soon, later := c.After(time.Second), c.After(time.Minute)
	if got := c.Waiters(); got != 2 {
		t.Fatalf("Waiters = %d, want 2", got)
	}
	if got := c.WaitersWithin(time.Second); got != 1 {
		t.Errorf("WaitersWithin(1s) = %d, want 1", got)
	}
	if got := c.WaitersWithin(time.Hour); got != 2 {
		t.Errorf("WaitersWithin(1h) = %d, want 2", got)
	}
	c.Advance(999 * time.Millisecond)
	select {
	case <-soon:
		t.Fatal("a 1s timer fired after 999ms")
	default:
	}
	c.Advance(time.Millisecond)
	if now := <-soon; !now.Equal(start.Add(time.Second)) {
		t.Errorf("the 1s timer fired with %v, want %v", now, start.Add(time.Second))
	}
	if got := c.Waiters(); got != 1 {
		t.Errorf("Waiters after one fired = %d, want 1", got)
	}
	c.Advance(time.Hour)
	<-later
	if got, want := c.Now(), start.Add(time.Hour+time.Second); !got.Equal(want) {
		t.Errorf("Now = %v, want %v", got, want)
	}
}

func TestTicker(t *testing.T) {
	start := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	now := Ticker(start, time.Second)
	for i := range 3 {
		if got, want := now(), start.Add(time.Duration(i)*time.Second); !got.Equal(want) {
			t.Errorf("call %d = %v, want %v", i+1, got, want)
		}
	}
}
