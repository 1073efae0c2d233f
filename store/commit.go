package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxGroup bounds how many writes share one transaction, so that one
// commit never holds a caller back for long.
const maxGroup = 64

// maxGroupBeside bounds the background writes of a transaction while
// writes someone waits on are queued or were just committed: applying a
// background write costs about a tenth of a millisecond of CPU, so sixteen
// of them keep the commit a click may find in progress short.
const maxGroupBeside = 16

// maxBackgroundWait bounds how long the oldest background write waits
// behind a stream of urgent transactions before it gets one of its own,
// which then takes up to maxGroup of them: during a burst of clicks the
// executions' progress goes in a few full transactions rather than many
// small ones, each of which the clicks arriving meanwhile wait for.
const maxBackgroundWait = 50 * time.Millisecond

// maxGroupNodes bounds the B+tree nodes a shared transaction brings into
// memory before the writes queued after it wait for the next one. A
// request of a hundred instances storing its results appends a hundred
// events, and their instance index entries land on as many pages spread
// over the index; sixty-four such writes in one transaction would hold
// most of the index in memory as nodes and rewrite it on commit. Small
// writes touch few nodes, so they still share transactions sixty-four
// at a time.
const maxGroupNodes = 512

// committer makes concurrent writes share transactions and so share one
// fsync. A write is queued; when no transaction is being committed the
// queue's writes go into one at once, and writes that arrive during a
// commit wait for it and go together into the next. Nobody waits for a
// timer: an idle store commits the first write immediately, a busy one
// commits as fast as fsync allows and carries more writes each time. Every
// caller still returns only after its own write is durable.
//
// bbolt's DB.Batch gives the same guarantee but starts each group with a
// fixed delay (10 ms by default), which an idle bot would pay on every
// click.
//
// Writes someone is waiting on (a click, a command) go ahead of background
// work in the queue and commit in transactions of their own, so that a
// burst of executions storing their progress holds a click's answer back
// by no more than the commit in progress. While such writes keep coming,
// background transactions stay small (maxGroupBeside), so that the commit
// a click finds in progress is a short one; and background writes wait
// behind them for at most maxBackgroundWait, then go in a full
// transaction, so that executions go on during a burst of clicks.
//
// A caller whose ctx ends while its write waits in a queue takes the write
// out: it was never run, so nothing was recorded. Once the write is in a
// transaction it may commit, so its caller waits up to grace for the
// outcome and, failing that, is told the outcome is not known.
type committer struct {
	commit func(fn func(tx *bolt.Tx) error) error // one write transaction
	grace  time.Duration                          // how long a caller whose ctx ended waits for a write under way
	now    func() time.Time                       // the clock queued writes are timed on
	// onCommit, when set, is told of each committed transaction.
	onCommit func(Commit)

	mu          sync.Mutex
	urgent      []*write // writes a person waits on, oldest first
	queue       []*write // background writes, oldest first
	running     bool     // a goroutine is committing the queues
	lastUrgent  bool     // the last transaction was of urgent writes
	lastStarved bool     // the last transaction was of background writes that had waited too long
}

// write is one caller's transaction function and where its result goes.
type write struct {
	fn     func(tx *bolt.Tx) error
	err    chan error
	urgent bool      // queued by doFirst
	queued time.Time // when it was queued
}

// commitGrace is how long a caller whose ctx ended waits for the outcome
// of its write when the write is already in a transaction. A local commit
// takes milliseconds unless the disk stalls; this keeps a click's answer
// within Slack's 3 s and still gives most commits time to tell.
const commitGrace = 300 * time.Millisecond

// errLeftOut is returned (wrapped with the ctx's error) for a write taken
// out of the queue because its caller's ctx ended: it was never run.
var errLeftOut = errors.New("store: left out of the queue, not written")

// errUnconfirmed is returned (wrapped) for a write whose transaction was
// under way when its caller's ctx ended and did not end within the grace:
// it may have been committed.
var errUnconfirmed = errors.New("store: outcome not known in time")

// do runs fn in a write transaction, possibly shared with other callers'
// functions, and returns once that transaction is committed (fn's error,
// or the commit's). fn may run more than once: when another function in
// its group fails, the group is rolled back and run again without it. fn
// must therefore set everything it reports afresh on each run.
//
// When ctx ends first, do returns an error wrapping errLeftOut if fn was
// still queued (and then it never runs), or errUnconfirmed if its
// transaction did not end within the grace; fn may then still run, and
// its caller must not read what fn sets.
func (c *committer) do(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return c.enqueue(ctx, &c.queue, fn, false)
}

// doFirst is do for a write someone is waiting on: it goes ahead of the
// background writes queued before it.
func (c *committer) doFirst(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return c.enqueue(ctx, &c.urgent, fn, true)
}

func (c *committer) enqueue(ctx context.Context, q *[]*write, fn func(tx *bolt.Tx) error, urgent bool) error {
	w := &write{fn: fn, err: make(chan error, 1), urgent: urgent, queued: c.now()}
	c.mu.Lock()
	*q = append(*q, w)
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	select {
	case err := <-w.err:
		return err
	case <-ctx.Done():
	}
	if c.remove(w) {
		return fmt.Errorf("%w: %w", errLeftOut, context.Cause(ctx))
	}
	t := time.NewTimer(c.grace)
	defer t.Stop()
	select {
	case err := <-w.err:
		return err
	case <-t.C:
	}
	// Put back after a full transaction, the write may be queued again.
	if c.remove(w) {
		return fmt.Errorf("%w: %w", errLeftOut, context.Cause(ctx))
	}
	return fmt.Errorf("%w: %w", errUnconfirmed, context.Cause(ctx))
}

// remove takes w out of its queue and reports whether it was there, that
// is, not in a transaction.
func (c *committer) remove(w *write) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := &c.queue
	if w.urgent {
		q = &c.urgent
	}
	i := slices.Index(*q, w)
	if i < 0 {
		return false
	}
	*q = slices.Delete(*q, i, i+1)
	return true
}

// loop commits the queues, group by group, until they are empty.
func (c *committer) loop() {
	for {
		c.mu.Lock()
		group := c.next()
		if len(group) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.run(group)
	}
}

// next takes the writes of the next transaction out of the queues. Urgent
// writes go alone, up to maxGroup, unless the oldest background write has
// waited maxBackgroundWait. Background writes go up to maxGroup when the
// store is calm or they have waited that long, and up to maxGroupBeside
// when urgent writes are queued or the last transaction was theirs. After
// a transaction of background writes that had waited too long, urgent
// writes go next: behind a backlog of executions every background write
// has waited that long, and a click must not wait for all of them. c.mu
// must be held.
func (c *committer) next() []*write {
	starved := len(c.queue) > 0 && c.now().Sub(c.queue[0].queued) >= maxBackgroundWait
	if len(c.urgent) > 0 && (!starved || c.lastStarved) {
		c.lastUrgent, c.lastStarved = true, false
		return take(&c.urgent, maxGroup)
	}
	limit := maxGroup
	if (len(c.urgent) > 0 || c.lastUrgent) && !starved {
		limit = maxGroupBeside
	}
	c.lastUrgent, c.lastStarved = false, starved
	return take(&c.queue, limit)
}

// take removes up to n writes from the front of q and returns them.
func take(q *[]*write, n int) []*write {
	n = min(n, len(*q))
	group := slices.Clone((*q)[:n])
	clear((*q)[:n])
	*q = (*q)[n:]
	return group
}

// run commits group in one transaction. A function that fails rolls the
// transaction back; it is then run alone, so that its error is the one it
// gets from the committed state, and the rest are committed without it.
// A transaction that fails to commit fails every write in it. Once the
// transaction holds maxGroupNodes nodes, the writes not yet run go back
// to the front of their queues.
func (c *committer) run(group []*write) {
	for len(group) > 0 {
		failed, taken := -1, len(group)
		start := c.now()
		err := c.commit(func(tx *bolt.Tx) error {
			taken = len(group)
			for i, w := range group {
				if err := w.fn(tx); err != nil {
					failed = i
					return err
				}
				if st := tx.Stats(); i+1 < len(group) && st.GetNodeCount() >= maxGroupNodes {
					taken = i + 1
					break
				}
			}
			return nil
		})
		if failed < 0 {
			if err == nil {
				c.committed(group[0].urgent, taken, start)
			}
			for _, w := range group[:taken] {
				w.err <- err
			}
			c.putBack(group[taken:])
			return
		}
		if len(group) == 1 {
			group[0].err <- err
			return
		}
		alone := group[failed]
		start = c.now()
		err = c.commit(alone.fn)
		if err == nil {
			c.committed(alone.urgent, 1, start)
		}
		alone.err <- err
		group = append(group[:failed:failed], group[failed+1:]...)
	}
}

// committed tells onCommit of a transaction of n writes, begun at start.
func (c *committer) committed(urgent bool, n int, start time.Time) {
	if c.onCommit != nil {
		c.onCommit(Commit{Writes: n, Urgent: urgent, Took: c.now().Sub(start)})
	}
}

// putBack returns writes that did not fit in a transaction to the front
// of their queues, in their order, ahead of those queued since.
func (c *committer) putBack(rest []*write) {
	if len(rest) == 0 {
		return
	}
	var urgent, background []*write
	for _, w := range rest {
		if w.urgent {
			urgent = append(urgent, w)
		} else {
			background = append(background, w)
		}
	}
	c.mu.Lock()
	c.urgent = append(urgent, c.urgent...)
	c.queue = append(background, c.queue...)
	c.mu.Unlock()
}
