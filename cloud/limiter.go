package cloud

import (
	"context"
	"slices"
	"sync"
	"time"

	"rebootbot/approval"
)

// Tencent Cloud's documented call rates for the actions the adapter uses.
const (
	RebootCallsPerSecond   = 10
	DescribeCallsPerSecond = 40
)

// Limiter keeps an API's calls within n a second as Tencent Cloud counts
// them: by when they arrive, which the caller cannot see. What it can see
// is that a call arrives after it was sent and before its answer comes
// back. So a call holds one of n slots from the moment it starts until its
// answer is in, and the slot is free again only a second after that. Any
// n+1 calls that arrive within one second would then need n+1 slots at
// once, at the moment the last of them was sent: however long a call is
// held up on a busy machine or a slow connection, no second sees more than
// n arrivals. The price is one round trip a second of each slot.
//
// Made by newSpacer, a Limiter instead lets one call start per interval,
// counted from the starts: the same rate as a window of several calls,
// without the burst.
//
// Callers are served in the order they arrive. A Limiter is safe for
// concurrent use; share one value between everything that calls the same
// API with the same account. It runs on the injected clock, so tests drive
// it without sleeping.
//
// It is written here rather than taken from golang.org/x/time/rate because
// a token bucket refills continuously and lets a burst of n through right
// after n calls, which is 2n within one second and a RequestLimitExceeded.
type Limiter struct {
	mu     sync.Mutex
	clock  approval.Clock
	window time.Duration
	spacer bool
	free   []time.Time // per slot: when it may start a call again
	busy   []bool      // per slot: a call in it has not been answered yet
	queue  []chan struct{}
	stats  LimiterStats
}

// LimiterStats is a Limiter's accounting, in the limiter's own clock.
type LimiterStats struct {
	Calls  int           // calls let through
	Waited time.Duration // total time callers were held back
	First  time.Time     // when the first call was let through
	Last   time.Time     // when the latest call was let through
}

// MaxLimiterRate is the highest rate a Limiter keeps track of; it has one
// slot per call allowed in a second.
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
	return &Limiter{clock: clock, window: time.Second,
		free: make([]time.Time, perSecond), busy: make([]bool, perSecond)}
}

// newSpacer returns a Limiter that lets one call start every interval,
// whether or not the one before it has been answered.
func newSpacer(interval time.Duration, clock approval.Clock) *Limiter {
	return &Limiter{clock: clock, window: interval, spacer: true,
		free: make([]time.Time, 1), busy: make([]bool, 1)}
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

// Start blocks until a call may start or ctx ends, in which case it returns
// ctx's error and takes nothing. Otherwise the caller must call done once
// the call's answer (or failure) is in: the slot counts as in use until
// then and for a second after. done may be called more than once.
func (l *Limiter) Start(ctx context.Context) (done func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	wake := make(chan struct{}, 1)
	l.mu.Lock()
	arrived := l.clock.Now()
	l.queue = append(l.queue, wake)
	// A slot not in use never frees later than it did when the head of
	// the queue first looked (an answer frees a slot a window after now,
	// after every free slot), so the head keeps its timer until it fires.
	var timer <-chan time.Time
	var timerAt time.Time
	for {
		if l.queue[0] == wake {
			now := l.clock.Now()
			slot, at := l.pick()
			if slot >= 0 && !at.After(now) {
				l.take(slot, arrived, now)
				l.mu.Unlock()
				var once sync.Once
				return func() { once.Do(func() { l.release(slot) }) }, nil
			}
			if slot >= 0 && (timer == nil || !at.Equal(timerAt)) {
				timer, timerAt = l.clock.After(at.Sub(now)), at
			}
		}
		l.mu.Unlock()
		select {
		case <-wake:
		case <-timer:
			timer = nil
		case <-ctx.Done():
			l.mu.Lock()
			l.leave(wake)
			l.mu.Unlock()
			return nil, ctx.Err()
		}
		l.mu.Lock()
	}
}

// Wait blocks like Start for a call whose answer is in at once: for
// pacing that counts from the starts only (a spacer), or a caller that
// keeps no slot.
func (l *Limiter) Wait(ctx context.Context) error {
	done, err := l.Start(ctx)
	if err != nil {
		return err
	}
	done()
	return nil
}

// pick returns the slot that frees first among those not in use and when
// it does, or -1 when every slot waits for an answer. l.mu is held.
func (l *Limiter) pick() (slot int, at time.Time) {
	slot = -1
	for i, f := range l.free {
		if !l.busy[i] && (slot < 0 || f.Before(at)) {
			slot, at = i, f
		}
	}
	return slot, at
}

// take gives slot to the caller at the head of the queue. l.mu is held.
func (l *Limiter) take(slot int, arrived, now time.Time) {
	if l.spacer {
		l.free[slot] = now.Add(l.window)
	} else {
		l.busy[slot] = true
	}
	l.queue = l.queue[1:]
	l.stats.Calls++
	l.stats.Waited += now.Sub(arrived)
	if l.stats.First.IsZero() {
		l.stats.First = now
	}
	l.stats.Last = now
	l.wakeHead()
}

// release marks slot answered: it may start another call a window later.
func (l *Limiter) release(slot int) {
	if l.spacer {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.busy[slot] = false
	l.free[slot] = l.clock.Now().Add(l.window)
	l.wakeHead()
}

// leave takes a caller that gave up out of the queue. l.mu is held.
func (l *Limiter) leave(wake chan struct{}) {
	if i := slices.Index(l.queue, wake); i >= 0 {
		l.queue = slices.Delete(l.queue, i, i+1)
		if i == 0 {
			l.wakeHead()
		}
	}
}

// wakeHead tells the caller now at the head of the queue to look again.
// l.mu is held.
func (l *Limiter) wakeHead() {
	if len(l.queue) > 0 {
		select {
		case l.queue[0] <- struct{}{}:
		default:
		}
	}
}

// Stats returns the limiter's accounting so far.
func (l *Limiter) Stats() LimiterStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}
