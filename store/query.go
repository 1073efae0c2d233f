package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"rebootbot/approval"

	bolt "go.etcd.io/bbolt"
)

// pageSize is how many matching events one read transaction gathers. Long
// exports run as many short transactions, so a slow reader never holds the
// file open against the writer's remapping, and fn runs outside any
// transaction (it may even write to the store). It is a variable so that
// tests can cross pages with small logs.
var pageSize = 512

// Audit calls fn for each event matching q, newest first unless q.Oldest,
// stopping after q.Limit events (0: all) or when fn returns an error, which
// Audit then returns. Each filter is an index lookup; combined filters are
// intersected by leapfrogging between the indexes, so no query reads
// events that it does not return.
//
// q.User matches the actor and the requester of the request concerned.
// q.Since is inclusive and q.Until exclusive.
func (db *DB) Audit(ctx context.Context, q approval.AuditQuery, fn func(*approval.Event) error) error {
	return db.AuditJSON(ctx, q, func(raw []byte) error {
		var e approval.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("store: decode event: %w", err)
		}
		return fn(&e)
	})
}

// AuditJSON calls fn with the stored bytes of each event matching q, in q's
// order: the canonical JSON the audit chain hashes, so that a copy can be
// verified. The bytes are fn's to keep.
func (db *DB) AuditJSON(ctx context.Context, q approval.AuditQuery, fn func(raw []byte) error) error {
	if id, ok := approval.ParseRequestID(q.RequestID); ok {
		q.RequestID = approval.FormatRequestID(id)
	}
	desc := !q.Oldest
	var (
		started bool
		lo, hi  uint64 // inclusive bounds from the time range
		next    uint64 // where the next page starts
		done    bool
		sent    int
	)
	capacity := pageSize
	if q.Limit > 0 {
		capacity = min(capacity, q.Limit)
	}
	page := make([][]byte, 0, capacity)
	for !done {
		want := pageSize
		if q.Limit > 0 {
			want = min(want, q.Limit-sent)
		}
		page = page[:0]
		err := db.view(ctx, func(tx *bolt.Tx) error {
			if !started {
				var ok bool
				lo, hi, ok = seqBounds(tx, q)
				if !ok {
					done = true
					return nil
				}
				started = true
				next = lo
				if desc {
					next = hi
				}
			}
			s, err := newSearch(tx, q, desc)
			if err != nil {
				return err
			}
			if s == nil {
				done = true
				return nil
			}
			for seq, raw, ok := s.first(next); ; seq, raw, ok = s.next() {
				if !ok || (desc && seq < lo) || (!desc && seq > hi) {
					done = true
					return nil
				}
				page = append(page, bytes.Clone(raw))
				if len(page) == want {
					if desc {
						next, done = seq-1, seq == lo
					} else {
						next, done = seq+1, seq == hi
					}
					return nil
				}
			}
		})
		if err != nil {
			return err
		}
		for _, raw := range page {
			if err := fn(raw); err != nil {
				return err
			}
		}
		sent += len(page)
		if q.Limit > 0 && sent >= q.Limit {
			return nil
		}
	}
	return nil
}

// seqBounds turns q's time range into the range of sequence numbers it
// covers; ok is false when nothing can match. Times never go backwards in
// the log (see appender.append), so the range is contiguous.
func seqBounds(tx *bolt.Tx, q approval.AuditQuery) (lo, hi uint64, ok bool) {
	events := tx.Bucket(bucketEvents)
	idx := tx.Bucket(bucketIdxTime)
	if events == nil || idx == nil {
		return 0, 0, false
	}
	lo, hi = 1, events.Sequence()
	c := idx.Cursor()
	if !q.Since.IsZero() {
		k, _ := c.Seek(timeKey(q.Since))
		if len(k) != 16 {
			return 0, 0, false
		}
		lo = max(lo, binary.BigEndian.Uint64(k[8:]))
	}
	if !q.Until.IsZero() {
		k, _ := c.Seek(timeKey(q.Until))
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		if len(k) != 16 {
			return 0, 0, false
		}
		hi = min(hi, binary.BigEndian.Uint64(k[8:]))
	}
	return lo, hi, lo <= hi && hi > 0
}

// search intersects sorted lists of sequence numbers: the events bucket
// itself and one index range per filter.
type search struct {
	lists  []*seqList
	events *seqList
	desc   bool
}

// newSearch returns a search for q's filters, or nil when the file has no
// audit log.
func newSearch(tx *bolt.Tx, q approval.AuditQuery, desc bool) (*search, error) {
	events := tx.Bucket(bucketEvents)
	if events == nil {
		return nil, nil
	}
	s := &search{desc: desc}
	filters := []struct {
		bucket []byte
		key    string
	}{
		{bucketIdxRequest, q.RequestID},
		{bucketIdxInstance, q.Instance},
		{bucketIdxUser, q.User},
	}
	for _, f := range filters {
		if f.key == "" {
			continue
		}
		if !indexable(f.key) {
			return nil, nil
		}
		b, err := bucket(tx, f.bucket)
		if err != nil {
			return nil, err
		}
		s.lists = append(s.lists, &seqList{c: b.Cursor(), prefix: indexPrefix(f.key)})
	}
	s.events = &seqList{c: events.Cursor()}
	s.lists = append(s.lists, s.events)
	return s, nil
}

// first returns the first match at or beyond target in the search's
// direction, with the event's stored bytes (valid until the transaction
// ends).
func (s *search) first(target uint64) (uint64, []byte, bool) {
	for _, l := range s.lists {
		l.seek(target, s.desc)
	}
	return s.align()
}

// next returns the match after the last one returned.
func (s *search) next() (uint64, []byte, bool) {
	for _, l := range s.lists {
		l.step(s.desc)
	}
	return s.align()
}

// align moves every list to the furthest of their positions until all
// agree: the classic leapfrog join.
func (s *search) align() (uint64, []byte, bool) {
	for {
		x, agree := uint64(0), true
		for i, l := range s.lists {
			if !l.ok {
				return 0, nil, false
			}
			switch {
			case i == 0:
				x = l.seq
			case l.seq != x:
				agree = false
				if s.desc {
					x = min(x, l.seq)
				} else {
					x = max(x, l.seq)
				}
			}
		}
		if agree {
			return x, s.events.val, true
		}
		for _, l := range s.lists {
			if l.seq != x {
				l.seek(x, s.desc)
			}
		}
	}
}

// seqList walks the keys prefix‖seq of a bucket in seq order.
type seqList struct {
	c      *bolt.Cursor
	prefix []byte
	seq    uint64
	val    []byte
	ok     bool
}

// seek moves to target, or to the nearest entry past it in the direction
// of travel: the greatest seq ≤ target when desc, the least ≥ target
// otherwise.
func (l *seqList) seek(target uint64, desc bool) {
	key := append(bytes.Clone(l.prefix), u64(target)...)
	k, v := l.c.Seek(key)
	if desc && !bytes.Equal(k, key) {
		if k == nil {
			k, v = l.c.Last()
		} else {
			k, v = l.c.Prev()
		}
	}
	l.set(k, v)
}

// step moves one entry in the direction of travel.
func (l *seqList) step(desc bool) {
	if desc {
		l.set(l.c.Prev())
	} else {
		l.set(l.c.Next())
	}
}

func (l *seqList) set(k, v []byte) {
	l.ok = k != nil && len(k) == len(l.prefix)+8 && bytes.HasPrefix(k, l.prefix)
	if l.ok {
		l.seq, l.val = binary.BigEndian.Uint64(k[len(l.prefix):]), v
	}
}
