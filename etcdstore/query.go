package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"rebootbot/approval"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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
	lo, hi, sn, ok, err := s.seqBounds(ctx, q)
	if err != nil || !ok {
		return err
	}
	// The driving list: the first filter's index, or the log.
	drive := list{prefix: s.eventPrefix()}
	if len(filters) > 0 {
		drive = s.index(filters[0].kind, filters[0].id)
	}
	desc := !q.Oldest
	// Index keys hold inverted sequence numbers, so the usual newest-first
	// lookup of an index reads keys in ascending order (see page).
	forward := desc == drive.inverted
	sent := 0
	// window is how many sequence numbers a page looks at; it adapts to
	// how dense the driving list is.
	window := uint64(2 * pageSize)
	for lo <= hi {
		want := pageSize
		if q.Limit > 0 {
			want = min(want, q.Limit-sent)
			window = min(window, uint64(4*want))
		}
		var seqs []uint64
		var err error
		seqs, window, err = s.page(ctx, sn, drive, lo, hi, want, window, forward)
		if err != nil {
			return err
		}
		if len(seqs) == 0 {
			return nil
		}
		// seqs are in q's order: the next page starts past the last.
		last := seqs[len(seqs)-1]
		if desc {
			hi = last - 1
		} else {
			lo = last + 1
		}
		events, err := s.fetch(ctx, sn, seqs, filters[min(1, len(filters)):])
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
	}
	return nil
}

// list is a range of keys, each a prefix and a sequence number in 16 hex
// digits: the log itself, in sequence order, or an index, whose keys hold
// the number's bitwise complement so that they sort newest first.
type list struct {
	prefix   string
	inverted bool
}

// index returns the list of index kind's entries for id.
func (s *Store) index(kind, id string) list {
	return list{prefix: s.indexPrefix(kind, id), inverted: true}
}

// key returns the key of seq in l.
func (l list) key(seq uint64) string {
	if l.inverted {
		seq = ^seq
	}
	return l.prefix + seqHex(seq)
}

// span returns the keys holding [lo, hi], as a range's start and end.
func (l list) span(lo, hi uint64) (string, string) {
	if l.inverted {
		return l.key(hi), l.key(lo - 1)
	}
	return l.key(lo), l.key(hi + 1)
}

// seqs returns the sequence numbers of kvs, keys of l.
func (l list) seqs(kvs []*mvccpb.KeyValue) ([]uint64, error) {
	out := make([]uint64, len(kvs))
	for i, k := range kvs {
		seq, ok := parseSeq(string(k.Key), l.prefix)
		if !ok {
			return nil, fmt.Errorf("etcdstore: foreign key %q among the audit log's keys", k.Key)
		}
		if l.inverted {
			seq = ^seq
		}
		out[i] = seq
	}
	return out, nil
}

// page returns the first want sequence numbers of l in [lo, hi] in q's
// order (key order when forward, else the reverse), and the window to try
// next.
//
// etcd counts every key of a range it reads, whatever the limit, and can
// cut a range short only at its end in ascending key order. So page reads
// windows of sequence numbers from the end of [lo, hi] that q's order
// starts at, each sized by how dense the last was (eight times wider after
// an empty one), until it has want: a lookup costs about the keys it
// returns, not the size of the index, and one far back in a sparse index
// takes a few short reads.
func (s *Store) page(ctx context.Context, sn *snapshot, l list, lo, hi uint64, want int, window uint64, forward bool) ([]uint64, uint64, error) {
	// The window is at the high end of [lo, hi] when the first keys it
	// yields hold the highest sequence numbers.
	high := forward == l.inverted
	var out []uint64
	for lo <= hi && len(out) < want {
		wlo, whi := lo, hi
		if hi-lo+1 > window {
			if high {
				wlo = hi - window + 1
			} else {
				whi = lo + window - 1
			}
		}
		from, to := l.span(wlo, whi)
		opts := []clientv3.OpOption{clientv3.WithRange(to), clientv3.WithKeysOnly()}
		if forward {
			opts = append(opts, clientv3.WithLimit(int64(want-len(out))))
		}
		resp, err := sn.get(ctx, s, from, opts...)
		if err != nil {
			return nil, 0, err
		}
		seqs, err := l.seqs(resp.Kvs)
		if err != nil {
			return nil, 0, err
		}
		if !forward {
			slices.Reverse(seqs)
			seqs = seqs[:min(len(seqs), want-len(out))]
		}
		out = append(out, seqs...)
		if high {
			hi = wlo - 1
		} else {
			lo = whi + 1
		}
		// Size the next window to hold about twice what is still wanted.
		found := uint64(len(seqs))
		if resp.More {
			found = uint64(resp.Count)
		}
		if found == 0 {
			window *= 8
		} else {
			window = min(max(window*uint64(2*want)/found, uint64(want)), window*8)
		}
	}
	return out, window, nil
}

// fetch returns, in order, the stored bytes of the events seqs that are
// in every one of filters' indexes, read at one revision.
func (s *Store) fetch(ctx context.Context, sn *snapshot, seqs []uint64, filters []filter) ([][]byte, error) {
	per := 1 + len(filters)
	var got []*pb.RangeResponse
	for {
		gets := make([]clientv3.Op, 0, len(seqs)*per)
		for _, seq := range seqs {
			gets = append(gets, clientv3.OpGet(s.eventKey(seq), sn.opts()...))
			for _, f := range filters {
				gets = append(gets, clientv3.OpGet(s.index(f.kind, f.id).key(seq), sn.opts(clientv3.WithKeysOnly())...))
			}
		}
		var err error
		got, _, err = s.read(ctx, gets)
		if err == nil {
			break
		}
		if !sn.fallback(err) {
			return nil, err
		}
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
// numbers it covers, within the log as it stands now, read with quorum;
// ok is false when nothing can match. The snapshot it returns lets the
// rest of the lookup read at the same revision from the member it talks
// to.
func (s *Store) seqBounds(ctx context.Context, q approval.AuditQuery) (lo, hi uint64, sn *snapshot, ok bool, err error) {
	got, rev, err := s.read(ctx, []clientv3.Op{clientv3.OpGet(s.headKey())})
	if err != nil {
		return 0, 0, nil, false, err
	}
	sn = &snapshot{rev: rev}
	h, _, err := readHead(got[0])
	if err != nil {
		return 0, 0, nil, false, err
	}
	lo, hi = 1, h.Seq
	if !q.Since.IsZero() {
		seq, found, err := s.firstAt(ctx, sn, q.Since, h.Time)
		if err != nil || !found {
			return 0, 0, nil, false, err
		}
		lo = max(lo, seq)
	}
	if !q.Until.IsZero() {
		// The last event before Until is the one before the first at or
		// after it.
		seq, found, err := s.firstAt(ctx, sn, q.Until, h.Time)
		if err != nil {
			return 0, 0, nil, false, err
		}
		if found {
			hi = min(hi, seq-1)
		}
	}
	return lo, hi, sn, lo <= hi && hi > 0, nil
}

// firstAt returns the sequence number of the first event at or after t,
// through idx/time; last is the newest event's time. It reads windows of
// time from t, a minute wide and sixteen times wider each time one comes
// back empty, since etcd counts every key of a range it reads: one read
// to the end of the index would cost as much as the events after t.
func (s *Store) firstAt(ctx context.Context, sn *snapshot, t, last time.Time) (uint64, bool, error) {
	tp := s.timePrefix()
	for from, width := t, time.Minute; !from.After(last); from, width = from.Add(width), width*16 {
		to := tp + timeHex(from.Add(width))
		if from.Add(width).Before(from) || from.Add(width).After(last) {
			to = clientv3.GetPrefixRangeEnd(tp)
		}
		resp, err := sn.get(ctx, s, tp+timeHex(from), clientv3.WithRange(to), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
		if err != nil {
			return 0, false, err
		}
		if len(resp.Kvs) == 0 {
			continue
		}
		k := string(resp.Kvs[0].Key)
		seq, ok := parseSeq(tp+k[min(len(k), len(tp)+16):], tp)
		if !ok || len(k) != len(tp)+32 {
			return 0, false, fmt.Errorf("etcdstore: foreign key %q in the time index", k)
		}
		return seq, true, nil
	}
	return 0, false, nil
}

// snapshot is the revision a lookup of several reads reads at. The first
// read is linearizable (it goes through the leader); the others read the
// same revision from the member the client talks to without a round of
// quorum, which is what makes a lookup a few fast reads instead of a few
// slow ones. A member that lags behind the revision, or has compacted it
// away during a long scan, makes the lookup read with quorum from then on.
type snapshot struct{ rev int64 }

// opts returns extra with the options of a read at the snapshot.
func (sn *snapshot) opts(extra ...clientv3.OpOption) []clientv3.OpOption {
	if sn.rev == 0 {
		return extra
	}
	return append(extra, clientv3.WithSerializable(), clientv3.WithRev(sn.rev))
}

// fallback reports whether err calls for reading again with quorum, and
// makes later reads do so.
func (sn *snapshot) fallback(err error) bool {
	if sn.rev != 0 && (errors.Is(err, rpctypes.ErrFutureRev) || errors.Is(err, rpctypes.ErrCompacted)) {
		sn.rev = 0
		return true
	}
	return false
}

// get reads key at the snapshot.
func (sn *snapshot) get(ctx context.Context, s *Store, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	for {
		resp, err := s.client.Get(ctx, key, sn.opts(opts...)...)
		if err == nil {
			return resp, nil
		}
		if !sn.fallback(err) {
			return nil, unavailable(ctx, "audit", err)
		}
	}
}
