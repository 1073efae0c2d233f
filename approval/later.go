package approval

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errStopped ends the context of work that will not run because the
// engine stopped first.
var errStopped = errors.New("approval: the engine stopped before its turn came")

// laterQueue runs work once the lull comes (see lull), at most as many
// at a time as its slots hold, in the order it was queued. Work waiting
// holds no goroutine: a burst of clicks leaves a card update, a start
// post and an answer waiting for every approval, and with a goroutine
// each (holding the stack it grew) the collector scanned thousands of
// stacks during the very burst they wait out, and with a thousand
// requests it ran without pause against the memory limit. One goroutine
// waits for the lull on behalf of them all, and starts each piece of
// work when it may go.
type laterQueue struct {
	lull  *lull
	slots chan struct{} // a token for each piece of work running
	// spawn starts the queue's goroutine as background work of its
	// owner; it reports false once the owner takes no more.
	spawn func(fn func(ctx context.Context)) bool

	mu      sync.Mutex
	waiting []laterWork // oldest first
	pumping bool        // the queue's goroutine runs
}

// laterWork is one piece of queued work.
type laterWork struct {
	// run does the work with a turn (a token in the slots) held; it must
	// give it back.
	run func(ctx context.Context, turn *jobTurn)
	// drop is called instead of run when the work will never run.
	drop func()
	at   time.Time // when it was queued, on the machine's clock
}

// add queues run to go once the lull lets it and a slot is free. It
// reports false, and queues nothing, when the owner takes no more work;
// drop is called in place of run if the owner stops before it ran.
func (q *laterQueue) add(run func(ctx context.Context, turn *jobTurn), drop func()) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.pumping {
		if !q.spawn(q.pump) {
			return false
		}
		q.pumping = true
	}
	q.waiting = append(q.waiting, laterWork{run: run, drop: drop, at: time.Now()})
	return true
}

// pump starts the queued work, piece by piece, until none is left; it
// returns once the work it started has ended.
func (q *laterQueue) pump(ctx context.Context) {
	var running sync.WaitGroup
	defer running.Wait()
	released := 0 // work at the front that no longer waits for the lull
	for {
		q.mu.Lock()
		if len(q.waiting) == 0 {
			q.pumping = false
			q.mu.Unlock()
			return
		}
		front := q.waiting[0].at
		q.mu.Unlock()
		if released == 0 {
			came, ok := q.lull.waitUntil(ctx, front.Add(q.lull.most))
			if !ok {
				q.dropAll()
				return
			}
			released = q.releasable(came)
		}
		select {
		case q.slots <- struct{}{}:
		case <-ctx.Done():
			q.dropAll()
			return
		}
		q.mu.Lock()
		w := q.waiting[0]
		q.waiting[0] = laterWork{}
		q.waiting = q.waiting[1:]
		q.mu.Unlock()
		released--
		turn := &jobTurn{slots: q.slots, lull: q.lull, held: true}
		running.Go(func() { w.run(ctx, turn) })
	}
}

// releasable returns how many pieces of work at the front may go now:
// all of them once the lull came, else those that have waited the
// lull's bound.
func (q *laterQueue) releasable(came bool) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if came {
		return len(q.waiting)
	}
	bound := time.Now().Add(-q.lull.most)
	n := 1 // the front's bound has passed
	for n < len(q.waiting) && !q.waiting[n].at.After(bound) {
		n++
	}
	return n
}

// dropAll empties the queue, telling each piece of work it will not run.
func (q *laterQueue) dropAll() {
	q.mu.Lock()
	dropped := q.waiting
	q.waiting = nil
	q.pumping = false
	q.mu.Unlock()
	for _, w := range dropped {
		if w.drop != nil {
			w.drop()
		}
	}
}

// AnswerJobs is how many answers to commands and clicks go to Slack at
// once (see Engine.AfterLull).
const AnswerJobs = 16

// AfterLull runs fn in the background once the commands and clicks being
// handled together let it, as the engine's card and thread jobs wait,
// and at most AnswerJobs at a time: for whatever else talks to Slack on
// their behalf, such as the answers to them. Nothing waits meanwhile. It
// reports false, and fn never runs, once the engine takes no more work.
// Otherwise fn runs once: with a context that has already ended if the
// engine stopped before fn's turn came, and that ends when the engine
// gives up on its background work.
func (e *Engine) AfterLull(fn func(ctx context.Context)) bool {
	return e.answers.add(func(ctx context.Context, turn *jobTurn) {
		defer turn.give()
		fn(ctx)
	}, func() {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(errStopped)
		fn(ctx)
	})
}
