package testutil

import (
	"sync"
	"time"
)

// FakeClock is a clock that moves only when told to: it has the methods of
// approval.Clock, and tests drive expiry, back-off and rate limits with
// Advance instead of sleeping.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

// NewFakeClock returns a FakeClock standing at t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{now: t} }

// Now returns the time the clock stands at.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the clock's time once Advance has
// moved it d past now; at once when d is not positive.
func (c *FakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock forward by d and fires every timer that is due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// Waiters returns how many timers are waiting, so tests can tell when a
// goroutine has gone to sleep on the clock.
func (c *FakeClock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// WaitersWithin returns how many timers are due within d of now, so
// tests can tell a short wait from a sweep's long one.
func (c *FakeClock) WaitersWithin(d time.Duration) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, w := range c.waiters {
		if !w.at.After(c.now.Add(d)) {
			n++
		}
	}
	return n
}

// Ticker returns a clock function that reads start at its first call and
// one step later at each call after, so that records stored through it get
// distinct, predictable times (store.Options.Now).
func Ticker(start time.Time, step time.Duration) func() time.Time {
	c := NewFakeClock(start)
	return func() time.Time {
		now := c.Now()
		c.Advance(step)
		return now
	}
}
