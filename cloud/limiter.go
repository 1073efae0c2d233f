package cloud

import (
	"context"
	"sync"
	"time"

	"rebootbot/approval"
)

// Tencent Cloud's documented call rates for the actions the adapter uses.
const (
	RebootCallsPerSecond   = 10
	DescribeCallsPerSecond = 40
)

// limiterGuard widens the one-second window: Tencent counts calls when
// they arrive, and a call that leaves on time may be held up on a busy
// machine (a goroutine not scheduled, a slow connection) until it arrives
// less than a second before the one that left a second after it. Coalesced
// calls leave in bursts, so the guard covers a generous delay.
const limiterGuard = 100 * time.Millisecond

// Limiter lets at most n calls start within any window of one second (plus
// a guard), or, made by newSpacer, one call per interval. Waiters are served in the order they arrive. A Limiter is
// safe for concurrent use; share one value between everything that calls
// the same API with the same account.
//
// It is written here rather than taken from golang.org/x/time/rate because
// Tencent Cloud counts calls per second exactly: a token bucket refills
// continuously and lets a burst of n through right after n calls, which is
// 2n within one second and a RequestLimitExceeded. A sliding window of the
// last n start times is exact, and it runs on the injected clock, so tests
// drive it without sleeping.
type Limiter struct {
	mu     sync.Mutex
	clock  approval.Clock
	window time.Duration
	slots  []time.Time // start times of the last n calls, oldest at next
	next   int
	stats  LimiterStats
}

// LimiterStats is a Limiter's accounting, in the limiter's own clock.
type LimiterStats struct {
	Calls  int           // calls let through
	Waited time.Duration // total time callers were held back
	First  time.Time     // when the first call was let through
	Last   time.Time     // when the latest call was let through
}

// MaxLimiterRate is the highest rate a Limiter keeps track of; it remembers
// one start time per call allowed in a second.
const MaxLimiterRate = 10000

// NewLimiter returns a Limiter of perSecond calls a second on the system
// clock. perSecond is kept between 1 and MaxLimiterRate.
func NewLimiter(perSecond int) *Limiter {
	return NewLimiterWithClock(perSecond, approval.SystemClock{})
}

// NewLimiterWithClock returns a Limiter that tells time with clock, so that
// tests can drive it with a clock that moves only when told to
// (testutil.FakeClock).
func NewLimiterWithClock(perSecond int, clock approval.Clock) *Limiter {
	perSecond = min(max(perSecond, 1), MaxLimiterRate)
	return &Limiter{clock: clock, window: time.Second + limiterGuard, slots: make([]time.Time, perSecond)}
}

// newSpacer returns a Limiter that lets one call start every interval:
// the same rate as a window of several calls, without the burst.
func newSpacer(interval time.Duration, clock approval.Clock) *Limiter {
	return &Limiter{clock: clock, window: interval, slots: make([]time.Time, 1)}
}

var (
	sharedReboot   = NewLimiter(RebootCallsPerSecond)
	sharedDescribe = NewLimiter(DescribeCallsPerSecond)
)

// SharedLimiter returns the process-wide limiter for RebootInstances
// (10 calls a second) that every adapter uses unless its Config names
// another.
func SharedLimiter() *Limiter { return sharedReboot }

// SharedDescribeLimiter returns the process-wide limiter for
// DescribeInstances (40 calls a second).
func SharedDescribeLimiter() *Limiter { return sharedDescribe }

// Wait blocks until a call may start or ctx ends, in which case it returns
// ctx's error. A slot given up that way stays used: the limiter errs on the
// side of calling less.
func (l *Limiter) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	now := l.clock.Now()
	at := now
	if oldest := l.slots[l.next]; !oldest.IsZero() {
		if free := oldest.Add(l.window); free.After(at) {
			at = free
		}
	}
	l.slots[l.next] = at
	l.next = (l.next + 1) % len(l.slots)
	l.stats.Calls++
	l.stats.Waited += at.Sub(now)
	if l.stats.First.IsZero() {
		l.stats.First = at
	}
	if at.After(l.stats.Last) {
		l.stats.Last = at
	}
	l.mu.Unlock()

	d := at.Sub(now)
	if d <= 0 {
		return nil
	}
	select {
	case <-l.clock.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the limiter's accounting so far.
func (l *Limiter) Stats() LimiterStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}
