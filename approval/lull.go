package approval

import (
	"context"
	"sync"
	"time"
)

// Card and thread jobs give way to people. While commands and clicks
// arrive together, each of them waits on a store commit and shares the
// machine with the jobs the ones before it started (a card update and a
// start post for every approval), and Slack wants its answer within 3 s.
// A job about to take its turn waits while a command or click is being
// handled; once two were handled at the same time, it also waits until
// none has been for lullQuiet. It never waits more than lullMax, so that
// a steady stream of people cannot keep cards out of date. A lone click
// delays nothing: its card job goes as soon as the click is answered.
// The figures are in BENCHMARKS.md.
const (
	lullQuiet = 50 * time.Millisecond
	lullMax   = 500 * time.Millisecond
)

// lull tracks the commands and clicks being handled. It runs on the
// machine's time, not the engine's clock: it shares out the CPU now.
// Waiting jobs share one channel, closed when the lull comes, so that a
// burst of clicks wakes each of them once, not at every gap between
// clicks.
type lull struct {
	quiet, most time.Duration

	mu       sync.Mutex
	inFlight int           // calls being handled
	crowded  bool          // two or more were handled at once since the lull last came
	shut     chan struct{} // closed when the lull comes; nil during one
	spell    uint64        // counts the quiet spells begun, so that only the last one ends the wait
}

func newLull() *lull { return &lull{quiet: lullQuiet, most: lullMax} }

// begin marks a command or click as being handled until the returned
// function is called.
func (l *lull) begin() (end func()) {
	l.mu.Lock()
	l.inFlight++
	if l.inFlight > 1 {
		l.crowded = true
	}
	if l.shut == nil {
		l.shut = make(chan struct{})
	}
	l.spell++ // a quiet spell under way is broken
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.inFlight--
		if l.inFlight > 0 {
			return
		}
		if !l.crowded {
			l.come()
			return
		}
		l.spell++
		spell := l.spell
		time.AfterFunc(l.quiet, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.spell == spell {
				l.come()
			}
		})
	}
}

// come lets the waiting jobs go. l.mu must be held.
func (l *lull) come() {
	if l.shut != nil {
		close(l.shut)
		l.shut = nil
	}
	l.crowded = false
}

// wait returns once no call is being handled and, when calls came
// together, none has been for l.quiet since; or l.most after it was
// called. It reports false when ctx ends first.
func (l *lull) wait(ctx context.Context) bool {
	_, ok := l.waitUntil(ctx, time.Now().Add(l.most))
	return ok
}

// waitUntil is wait with its bound at deadline. came reports whether the
// lull came (rather than the deadline); ok is false when ctx ended first.
func (l *lull) waitUntil(ctx context.Context, deadline time.Time) (came, ok bool) {
	l.mu.Lock()
	shut := l.shut
	l.mu.Unlock()
	if shut == nil {
		return true, ctx.Err() == nil
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-shut:
		came = true
	case <-t.C:
	case <-ctx.Done():
		return false, false
	}
	return came, ctx.Err() == nil
}
