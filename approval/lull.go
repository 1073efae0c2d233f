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
type lull struct {
	quiet, most time.Duration

	mu       sync.Mutex
	inFlight int           // calls being handled
	last     time.Time     // when the last one ended
	crowded  time.Time     // when two or more were last handled at once
	idle     chan struct{} // closed when inFlight drops to zero, if made
}

func newLull() *lull { return &lull{quiet: lullQuiet, most: lullMax} }

// begin marks a command or click as being handled until the returned
// function is called.
func (l *lull) begin() (end func()) {
	l.mu.Lock()
	l.inFlight++
	if l.inFlight > 1 {
		l.crowded = time.Now()
	}
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.inFlight--
		l.last = time.Now()
		if l.inFlight == 0 && l.idle != nil {
			close(l.idle)
			l.idle = nil
		}
	}
}

// wait returns once no call is being handled and, when calls came
// together lately, none has been for l.quiet; or l.most after it was
// called. It reports false when ctx ends first.
func (l *lull) wait(ctx context.Context) bool {
	give := time.NewTimer(l.most)
	defer give.Stop()
	var nap *time.Timer
	for {
		var idle <-chan struct{}
		var d time.Duration
		l.mu.Lock()
		if l.inFlight > 0 {
			if l.idle == nil {
				l.idle = make(chan struct{})
			}
			idle = l.idle
		} else if time.Since(l.crowded) < l.quiet {
			d = time.Until(l.last.Add(l.quiet))
		}
		l.mu.Unlock()
		if idle == nil && d <= 0 {
			return ctx.Err() == nil
		}
		var napped <-chan time.Time
		if idle == nil {
			if nap == nil {
				nap = time.NewTimer(d)
				defer nap.Stop()
			} else {
				nap.Reset(d)
			}
			napped = nap.C
		}
		select {
		case <-idle:
		case <-napped:
		case <-give.C:
			return ctx.Err() == nil
		case <-ctx.Done():
			return false
		}
	}
}
