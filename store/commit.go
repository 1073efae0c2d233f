package store

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

// maxGroup bounds how many writes share one transaction, so that one
// commit never holds a caller back for long.
const maxGroup = 64

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
// work in the queue, so that a burst of executions storing their progress
// does not hold a click's answer back by more than the commit in progress.
type committer struct {
	commit func(fn func(tx *bolt.Tx) error) error // one write transaction

	mu      sync.Mutex
	urgent  []*write // writes a person waits on, oldest first
	queue   []*write // background writes, oldest first
	running bool     // a goroutine is committing the queues
}

// write is one caller's transaction function and where its result goes.
type write struct {
	fn  func(tx *bolt.Tx) error
	err chan error
}

// do runs fn in a write transaction, possibly shared with other callers'
// functions, and returns once that transaction is committed (fn's error,
// or the commit's). fn may run more than once: when another function in
// its group fails, the group is rolled back and run again without it. fn
// must therefore set everything it reports afresh on each run.
func (c *committer) do(fn func(tx *bolt.Tx) error) error {
	return c.enqueue(&c.queue, fn)
}

// doFirst is do for a write someone is waiting on: it goes ahead of the
// background writes queued before it.
func (c *committer) doFirst(fn func(tx *bolt.Tx) error) error {
	return c.enqueue(&c.urgent, fn)
}

func (c *committer) enqueue(q *[]*write, fn func(tx *bolt.Tx) error) error {
	w := &write{fn: fn, err: make(chan error, 1)}
	c.mu.Lock()
	*q = append(*q, w)
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	return <-w.err
}

// loop commits the queues, group by group, until they are empty: the
// urgent writes first, then background ones up to maxGroup.
func (c *committer) loop() {
	for {
		c.mu.Lock()
		var group []*write
		for _, q := range []*[]*write{&c.urgent, &c.queue} {
			n := min(len(*q), maxGroup-len(group))
			group = append(group, (*q)[:n]...)
			clear((*q)[:n])
			*q = (*q)[n:]
		}
		if len(group) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.run(group)
	}
}

// run commits group in one transaction. A function that fails rolls the
// transaction back; it is then run alone, so that its error is the one it
// gets from the committed state, and the rest are committed without it.
// A transaction that fails to commit fails every write in it.
func (c *committer) run(group []*write) {
	for len(group) > 0 {
		failed := -1
		err := c.commit(func(tx *bolt.Tx) error {
			for i, w := range group {
				if err := w.fn(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, w := range group {
				w.err <- err
			}
			return
		}
		if len(group) == 1 {
			group[0].err <- err
			return
		}
		alone := group[failed]
		alone.err <- c.commit(alone.fn)
		group = append(group[:failed:failed], group[failed+1:]...)
	}
}
