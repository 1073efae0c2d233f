package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"rebootbot/approval"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// pageSize is how many index entries one page of Audit reads. A variable
// so that tests can cross pages with small logs.
var pageSize = 256

// Audit calls fn for each event matching q, newest first unless q.Oldest,
// stopping after q.Limit events (0: all) or when fn returns an error,
// which Audit then returns. It covers the log as it stood when Audit
// began; fn runs outside any transaction and may write to the store.
//
// The time range becomes a range of sequence numbers through idx/time
// (times never go backwards in the log). One filter drives the scan: the
// request's index, else the instance's, else the user's, else the log
// itself, read a page at a time in q's order from the bound it reached.
// Each page's candidates are checked against the other filters' indexes
// and fetched in one read.
//
// q.User matches the actor and the requester of the request concerned.
// q.Since is inclusive and q.Until exclusive.
func (s *Store) Audit(ctx context.Context, q approval.AuditQuery, fn func(*approval.Event) error) error {
	return s.scan(ctx, q, func(raw []byte) error {
		var e approval.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("etcdstore: decode event: %w", err)
		}
		return fn(&e)
	})
}

// filter is one index an event must be in.
type filter struct{ kind, id string }

// scan calls fn with the stored bytes of each event matching q, in q's
// order.
func (s *Store) scan(ctx context.Context, q approval.AuditQuery, fn func(raw []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n, ok := approval.ParseRequestID(q.RequestID); ok {
		q.RequestID = approval.FormatRequestID(n)
	}
	var filters []filter
	for _, f := range []filter{{"request", q.RequestID}, {"instance", q.Instance}, {"user", q.User}} {
		if f.id == "" {
			continue
		}
		if !indexable(f.id) {
			return nil
		}
		filters = append(filters, f)
	}
	lo, hi, ok, err := s.seqBounds(ctx, q)
	if err != nil || !ok {
		return err
	}
	// The driving list: the first filter's index, or the log.
	drive := s.eventPrefix()
	if len(filters) > 0 {
		drive = s.indexPrefix(filters[0].kind, filters[0].id)
	}
	desc := !q.Oldest
	sent := 0
	// window is how many sequence numbers a newest-first page looks at;
	// it adapts to how dense the driving list is.
	window := uint64(2 * pageSize)
	for lo <= hi {
		want := pageSize
		if q.Limit > 0 {
			want = min(want, q.Limit-sent)
			window = min(window, uint64(4*want))
		}
		var seqs []uint64
		var err error
		if desc {
			seqs, hi, window, err = s.pageDown(ctx, drive, lo, hi, want, window)
		} else {
			seqs, lo, err = s.pageUp(ctx, drive, lo, hi, want)
		}
		if err != nil {
			return err
		}
		if len(seqs) == 0 {
			return nil
		}
		events, err := s.fetch(ctx, seqs, filters[min(1, len(filters)):])
		if err != nil {
			return err
		}
		for _, raw := range events {
			if err := fn(raw); err != nil {
				return err
			}
			sent++
			if q.Limit > 0 && sent >= q.Limit {
				return nil
			}
		}
		if desc && hi == 0 {
			return nil
		}
	}
	return nil
}

// pageUp returns the first want sequence numbers of list (a key prefix
// followed by 16 hex digits) in [lo, hi], oldest first, and where the next
// page starts.
func (s *Store) pageUp(ctx context.Context, list string, lo, hi uint64, want int) ([]uint64, uint64, error) {
	resp, err := s.client.Get(ctx, list+seqHex(lo), clientv3.WithRange(list+seqHex(hi+1)), clientv3.WithKeysOnly(), clientv3.WithLimit(int64(want)))
	if err != nil {
		return nil, 0, unavailable(ctx, "audit", err)
	}
	seqs, err := keySeqs(resp.Kvs, list)
	if err != nil || len(seqs) == 0 {
		return nil, hi + 1, err
	}
	return seqs, seqs[len(seqs)-1] + 1, nil
}

// pageDown returns the last want sequence numbers of list in [lo, hi],
// newest first, where the next page ends, and the window to try next.
//
// etcd returns a range's keys in ascending order and can cut it short only
// at its end: a descending sort with a limit reads the whole range first.
// So pageDown reads windows of sequence numbers just below hi, widening
// them while they come back empty and sizing the next one by how dense
// the last was; a lookup far back in a sparse index takes a few short
// reads instead of one read of every entry.
func (s *Store) pageDown(ctx context.Context, list string, lo, hi uint64, want int, window uint64) ([]uint64, uint64, uint64, error) {
	for {
		from := lo
		if hi-lo+1 > window {
			from = hi - window + 1
		}
		resp, err := s.client.Get(ctx, list+seqHex(from), clientv3.WithRange(list+seqHex(hi+1)), clientv3.WithKeysOnly())
		if err != nil {
			return nil, 0, 0, unavailable(ctx, "audit", err)
		}
		seqs, err := keySeqs(resp.Kvs, list)
		if err != nil {
			return nil, 0, 0, err
		}
		if len(seqs) == 0 {
			if from == lo {
				return nil, 0, window, nil
			}
			hi, window = from-1, window*8
			continue
		}
		// Size the next window to hold about twice what is wanted.
		next := max(window*uint64(2*want)/uint64(len(seqs)), uint64(want))
		window = min(next, window*8)
		if len(seqs) > want {
			seqs = seqs[len(seqs)-want:]
		}
		slices.Reverse(seqs)
		return seqs, seqs[len(seqs)-1] - 1, window, nil
	}
}

// keySeqs returns the sequence numbers at the end of list's keys.
func keySeqs(kvs []*mvccpb.KeyValue, list string) ([]uint64, error) {
	seqs := make([]uint64, len(kvs))
	for i, k := range kvs {
		seq, ok := parseSeq(string(k.Key), list)
		if !ok {
			return nil, fmt.Errorf("etcdstore: foreign key %q among the audit log's keys", k.Key)
		}
		seqs[i] = seq
	}
	return seqs, nil
}

// fetch returns, in order, the stored bytes of the events seqs that are
// in every one of filters' indexes, read at one revision.
func (s *Store) fetch(ctx context.Context, seqs []uint64, filters []filter) ([][]byte, error) {
	per := 1 + len(filters)
	gets := make([]clientv3.Op, 0, len(seqs)*per)
	for _, seq := range seqs {
		gets = append(gets, clientv3.OpGet(s.eventKey(seq)))
		for _, f := range filters {
			gets = append(gets, clientv3.OpGet(s.indexPrefix(f.kind, f.id)+seqHex(seq), clientv3.WithKeysOnly()))
		}
	}
	got, _, err := s.read(ctx, gets)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(seqs))
	for i, seq := range seqs {
		rs := got[i*per : (i+1)*per]
		e := kv(rs[0])
		if e == nil {
			return nil, fmt.Errorf("etcdstore: event %d is indexed but missing", seq)
		}
		match := true
		for _, r := range rs[1:] {
			match = match && kv(r) != nil
		}
		if match {
			out = append(out, e.Value)
		}
	}
	return out, nil
}

// seqBounds turns q's time range into the inclusive range of sequence
// numbers it covers, within the log as it stands now; ok is false when
// nothing can match.
func (s *Store) seqBounds(ctx context.Context, q approval.AuditQuery) (lo, hi uint64, ok bool, err error) {
	tp := s.timePrefix()
	gets := []clientv3.Op{clientv3.OpGet(s.headKey())}
	if !q.Since.IsZero() {
		gets = append(gets, clientv3.OpGet(tp+timeHex(q.Since), clientv3.WithRange(clientv3.GetPrefixRangeEnd(tp)), clientv3.WithKeysOnly(), clientv3.WithLimit(1)))
	}
	if !q.Until.IsZero() {
		// The last event before Until is the one before the first at
		// or after it: a descending read with a limit would make etcd
		// read the whole range first.
		gets = append(gets, clientv3.OpGet(tp+timeHex(q.Until), clientv3.WithRange(clientv3.GetPrefixRangeEnd(tp)), clientv3.WithKeysOnly(), clientv3.WithLimit(1)))
	}
	got, _, err := s.read(ctx, gets)
	if err != nil {
		return 0, 0, false, err
	}
	h, _, err := readHead(got[0])
	if err != nil {
		return 0, 0, false, err
	}
	lo, hi = 1, h.Seq
	timeSeq := func(key []byte) (uint64, error) {
		k := string(key)
		if len(k) != len(tp)+32 {
			return 0, fmt.Errorf("etcdstore: foreign key %q in the time index", k)
		}
		seq, ok := parseSeq(tp+k[len(tp)+16:], tp)
		if !ok {
			return 0, fmt.Errorf("etcdstore: foreign key %q in the time index", k)
		}
		return seq, nil
	}
	i := 1
	if !q.Since.IsZero() {
		v := kv(got[i])
		if v == nil {
			return 0, 0, false, nil
		}
		seq, err := timeSeq(v.Key)
		if err != nil {
			return 0, 0, false, err
		}
		lo = max(lo, seq)
		i++
	}
	if !q.Until.IsZero() {
		if v := kv(got[i]); v != nil {
			seq, err := timeSeq(v.Key)
			if err != nil {
				return 0, 0, false, err
			}
			if seq == 0 {
				return 0, 0, false, nil
			}
			hi = min(hi, seq-1)
		}
	}
	return lo, hi, lo <= hi && hi > 0, nil
}
