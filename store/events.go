package store

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"rebootbot/approval"

	bolt "go.etcd.io/bbolt"
)

// timePrecision is what event times are cut to: fine enough to order what
// people do, short enough to keep records small.
const timePrecision = time.Microsecond

// appendFill is how full pages of append-only buckets are left on a split.
const appendFill = 0.95

// appender adds events to the audit log inside one write transaction.
type appender struct {
	now      func() time.Time
	events   *bolt.Bucket
	meta     *bolt.Bucket
	idxReq   *bolt.Bucket
	idxIns   *bolt.Bucket
	idxUser  *bolt.Bucket
	idxTime  *bolt.Bucket
	headHash string
	headTime time.Time
}

// appender returns an appender for write transaction tx, picking up the
// log's head from meta.
func (db *DB) appender(tx *bolt.Tx) *appender {
	a := &appender{
		now:     db.now,
		events:  tx.Bucket(bucketEvents),
		meta:    tx.Bucket(bucketMeta),
		idxReq:  tx.Bucket(bucketIdxRequest),
		idxIns:  tx.Bucket(bucketIdxInstance),
		idxUser: tx.Bucket(bucketIdxUser),
		idxTime: tx.Bucket(bucketIdxTime),
	}
	// Sequence-keyed buckets only ever grow at their end, and each index
	// key's entries grow at the end of its range: pack pages on a split
	// instead of leaving them half empty for inserts that never come. The
	// instance index is the exception: one event of a fleet request adds
	// an entry to each of a hundred ranges spread over the whole index, so
	// its inserts land in the middle of full pages, and a packed split
	// would leave a nearly empty page behind for each of them. It keeps
	// bbolt's even split.
	for _, b := range []*bolt.Bucket{a.events, a.idxTime, a.idxReq, a.idxUser} {
		b.FillPercent = appendFill
	}
	a.headHash = string(a.meta.Get(metaHeadHash))
	if b := a.meta.Get(metaHeadTime); len(b) == 8 {
		a.headTime = timeFromKey(b)
	}
	return a
}

// append stores e as the next record of the log and indexes it. requester
// is the requester of the request concerned (indexed as a user besides the
// actor); instances are indexed when e lists none of its own. The caller's
// event is not modified; the stored one is returned.
//
// Times never go backwards in the log: an event stamped before its
// predecessor (a clock stepped back, or two writers that read the clock
// before queueing for the write lock) is stored with its predecessor's
// time. The log's order is then its time order, which lets a time range
// become a range of sequence numbers.
func (a *appender) append(e approval.Event, requester string, instances []string) (approval.Event, error) {
	seq, err := a.events.NextSequence()
	if err != nil {
		return e, fmt.Errorf("store: next event sequence: %w", err)
	}
	if e.Time.IsZero() {
		e.Time = a.now()
	}
	e.Time = e.Time.UTC().Truncate(timePrecision)
	if e.Time.Before(a.headTime) {
		e.Time = a.headTime
	}
	e.Seq = seq
	e.PrevHash = a.headHash
	raw, err := e.CanonicalBytes()
	if err != nil {
		return e, fmt.Errorf("store: encode event: %w", err)
	}
	key := u64(seq)
	if err := a.events.Put(key, raw); err != nil {
		return e, fmt.Errorf("store: put event %d: %w", seq, err)
	}
	a.headHash = approval.HashBytes(raw)
	a.headTime = e.Time
	tk := timeKey(e.Time)
	if err := a.meta.Put(metaHeadHash, []byte(a.headHash)); err != nil {
		return e, err
	}
	if err := a.meta.Put(metaHeadTime, tk); err != nil {
		return e, err
	}
	if err := a.idxTime.Put(append(tk, key...), nil); err != nil {
		return e, err
	}
	if err := putIndex(a.idxReq, seq, e.RequestID); err != nil {
		return e, err
	}
	if len(e.Instances) > 0 {
		instances = e.Instances
	}
	if err := putIndex(a.idxIns, seq, instances...); err != nil {
		return e, err
	}
	if err := putIndex(a.idxUser, seq, e.Actor, requester); err != nil {
		return e, err
	}
	return e, nil
}

// putIndex adds key‖0x00‖seq to b for every distinct usable key.
func putIndex(b *bolt.Bucket, seq uint64, keys ...string) error {
	for i, k := range keys {
		if !indexable(k) || slices.Contains(keys[:i], k) {
			continue
		}
		if err := b.Put(indexKey(k, seq), nil); err != nil {
			return fmt.Errorf("store: index %q: %w", k, err)
		}
	}
	return nil
}

// indexable reports whether k can be an index key. A key holding the
// separator byte could be confused with another key's entries; IDs never
// hold one, so such keys are left out of the index.
func indexable(k string) bool {
	return k != "" && len(k) < 1024 && strings.IndexByte(k, 0) < 0
}

// indexPrefix returns the prefix shared by every entry of key k.
func indexPrefix(k string) []byte {
	p := make([]byte, 0, len(k)+1+8)
	p = append(p, k...)
	return append(p, 0)
}

func indexKey(k string, seq uint64) []byte {
	return append(indexPrefix(k), u64(seq)...)
}
