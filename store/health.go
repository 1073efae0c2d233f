package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"rebootbot/approval"

	bolt "go.etcd.io/bbolt"
)

// CannotRecord is what a user is told when a change could not be written:
// nothing the bot does counts unless it is recorded, so nothing was done.
const CannotRecord = "rebootbot cannot record anything right now (its database cannot be written), so nothing was done. Try again later; the operators are told by its health check."

// probeRetry is how often the probe runs while the file cannot be
// written, to notice soon that it can be again.
const probeRetry = 2 * time.Second

// probeSpace is how much the probe writes to confirm that the file can be
// written after a write failed. A few bytes would fit in pages bbolt
// already has, while the writes that failed needed the file to grow; a
// value this size needs fresh pages unless the file has as many free.
const probeSpace = 64 << 10

var (
	probeKey      = []byte("probe")       // the time of the last probe
	probeSpaceKey = []byte("probe_space") // probeSpace bytes, written and deleted again
)

// writeState remembers whether the file can be written: a failed write
// marks it unwritable, and only a probe that writes probeSpace bytes marks
// it writable again (a small write that happens to fit proves little).
type writeState struct {
	mu    sync.Mutex
	err   error     // why the file cannot be written; nil while it can
	since time.Time // when err was first seen
	gen   uint64    // counts failed writes, so a probe that began before one does not clear it
	kick  chan struct{}
	on    func(error) // Options.OnWritable
}

// failed records a failed write and wakes the probe.
func (w *writeState) failed(err error, now time.Time) {
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.since = now
	}
	w.err = err
	w.gen++
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	if first && w.on != nil {
		w.on(err)
	}
}

// recovered clears the failure unless a write failed after gen.
func (w *writeState) recovered(gen uint64) {
	w.mu.Lock()
	was := w.err != nil && w.gen == gen
	if was {
		w.err = nil
	}
	w.mu.Unlock()
	if was && w.on != nil {
		w.on(nil)
	}
}

// state returns the failure, when it began, and the failure count.
func (w *writeState) state() (error, time.Time, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err, w.since, w.gen
}

// Writable returns nil when the last write to the file succeeded (or
// nothing failed since a probe confirmed it), and otherwise why the file
// cannot be written.
func (db *DB) Writable() error {
	err, since, _ := db.writes.state()
	if err == nil {
		return nil
	}
	return fmt.Errorf("store: %s cannot be written (since %s): %w", db.path, since.UTC().Format(time.RFC3339), err)
}

// Probe writes to the health bucket and records the result: the time of
// the probe while writes work, and probeSpace bytes (then deleting them)
// while they do not, so that the file is marked writable again only once
// it can grow.
func (db *DB) Probe(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	failure, _, gen := db.writes.state()
	put := func(key, value []byte) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketHealth)
			if err != nil {
				return err
			}
			if value == nil {
				return b.Delete(key)
			}
			return b.Put(key, value)
		}
	}
	var err error
	if failure == nil {
		err = db.commit(put(probeKey, timeKey(time.Now())))
	} else {
		err = db.commit(put(probeSpaceKey, make([]byte, probeSpace)))
		if err == nil {
			err = db.commit(put(probeSpaceKey, nil))
		}
	}
	if err != nil {
		if !errors.Is(err, bolt.ErrDatabaseNotOpen) {
			db.writes.failed(err, time.Now())
		}
		return err
	}
	db.writes.recovered(gen)
	return nil
}

// commit runs fn in a write transaction under guard.
func (db *DB) commit(fn func(tx *bolt.Tx) error) error {
	return db.guard(func() error { return db.bolt.Update(fn) })
}

// update runs fn in a write transaction after checking ctx, and returns
// once it is committed. Concurrent updates share transactions (see
// committer), so fn may run more than once and must set everything it
// reports afresh each time. When fn succeeds but the transaction cannot be
// committed, the file could not be written: that is recorded for Writable
// and returned as an Unavailable *approval.Error whose message says
// nothing was recorded.
func (db *DB) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return db.write(ctx, db.group.do, fn)
}

// updateDelivery is update for the effect of a delivery (a command or a
// click) that Slack is waiting to have answered: it is committed ahead of
// background writes.
func (db *DB) updateDelivery(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	return db.write(ctx, db.group.doFirst, fn)
}

// write is update and updateDelivery, queueing fn with enqueue.
func (db *DB) write(ctx context.Context, enqueue func(context.Context, func(tx *bolt.Tx) error) error, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var fnErr error
	err := enqueue(ctx, func(tx *bolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	// A caller that stopped waiting says nothing about the file, and fn
	// may still be running: fnErr is not read.
	switch {
	case errors.Is(err, errLeftOut):
		return approval.NotRecorded(fmt.Errorf("store: write %s: %w", db.path, err))
	case errors.Is(err, errUnconfirmed):
		return approval.Unconfirmed(fmt.Errorf("store: write %s: %w", db.path, err))
	}
	if err == nil || fnErr != nil || errors.Is(err, bolt.ErrDatabaseNotOpen) || errors.Is(err, bolt.ErrDatabaseReadOnly) {
		return err
	}
	db.writes.failed(err, time.Now())
	var damaged *DamagedError
	if errors.As(err, &damaged) {
		return err
	}
	return &approval.Error{Kind: approval.Unavailable, Message: CannotRecord, Err: fmt.Errorf("store: write %s: %w", db.path, err)}
}

// probe runs Probe every interval, every probeRetry while writes fail, and
// at once after a write fails, until Close.
func (db *DB) probe(every time.Duration) {
	defer close(db.probeDone)
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-db.probeStop:
			return
		case <-db.writes.kick:
		case <-t.C:
		}
		next := every
		if db.Probe(context.Background()) != nil {
			next = min(every, probeRetry)
		}
		t.Reset(next)
	}
}
