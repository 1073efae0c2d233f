package etcdstore

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"rebootbot/approval"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// timePrecision is what event times are cut to, as in the bbolt store.
const timePrecision = time.Microsecond

// maxIndexID is the longest ID that is indexed; longer ones are no Slack
// or CVM ID, and leaving them out keeps keys small.
const maxIndexID = 1024

// head is the audit log's last event, kept at meta/head.
type head struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
}

// readHead decodes meta/head from its get; rev is its ModRevision (0 for a
// log with no events).
func readHead(r *pb.RangeResponse) (h head, rev int64, err error) {
	v := kv(r)
	if v == nil {
		return head{}, 0, nil
	}
	if err := json.Unmarshal(v.Value, &h); err != nil {
		return head{}, 0, fmt.Errorf("etcdstore: decode the audit log's head: %w", err)
	}
	return h, v.ModRevision, nil
}

// appender builds the writes that add events to the audit log after the
// head it was read with. Its compare makes the transaction fail if any
// other event was appended since, so the chain never forks.
type appender struct {
	s       *Store
	head    head
	headRev int64
	ops     []clientv3.Op
	n       int
}

// append adds e as the next record and indexes it. requester is the
// requester of the request concerned (indexed as a user besides the
// actor); instances are indexed when e lists none of its own.
//
// As in the bbolt store, times never go backwards in the log: an event
// stamped before its predecessor is stored with its predecessor's time,
// so that a time range is a range of sequence numbers.
func (a *appender) append(e approval.Event, requester string, instances []string) error {
	seq := a.head.Seq + 1
	if e.Time.IsZero() {
		e.Time = a.s.now()
	}
	e.Time = e.Time.UTC().Truncate(timePrecision)
	if e.Time.Before(a.head.Time) {
		e.Time = a.head.Time
	}
	e.Seq = seq
	e.PrevHash = a.head.Hash
	raw, err := e.CanonicalBytes()
	if err != nil {
		return fmt.Errorf("etcdstore: encode event: %w", err)
	}
	s := a.s
	a.ops = append(a.ops,
		clientv3.OpPut(s.eventKey(seq), string(raw)),
		clientv3.OpPut(s.timePrefix()+timeHex(e.Time)+seqHex(seq), ""),
	)
	if len(e.Instances) > 0 {
		instances = e.Instances
	}
	a.index("request", seq, e.RequestID)
	a.index("instance", seq, instances...)
	a.index("user", seq, e.Actor, requester)
	a.head = head{Seq: seq, Hash: approval.HashBytes(raw), Time: e.Time}
	a.n++
	return nil
}

// index adds an entry of kind for every distinct usable id.
func (a *appender) index(kind string, seq uint64, ids ...string) {
	for i, id := range ids {
		if !indexable(id) || slices.Contains(ids[:i], id) {
			continue
		}
		a.ops = append(a.ops, clientv3.OpPut(a.s.index(kind, id).key(seq), ""))
	}
}

// indexable reports whether id is indexed.
func indexable(id string) bool { return id != "" && len(id) <= maxIndexID }

// finish returns the compare and writes that commit the appended events
// and the new head; none when nothing was appended.
func (a *appender) finish() ([]clientv3.Cmp, []clientv3.Op, error) {
	if a.n == 0 {
		return nil, nil, nil
	}
	raw, err := json.Marshal(a.head)
	if err != nil {
		return nil, nil, fmt.Errorf("etcdstore: encode the audit log's head: %w", err)
	}
	cmp := clientv3.Compare(clientv3.ModRevision(a.s.headKey()), "=", a.headRev)
	return []clientv3.Cmp{cmp}, append(a.ops, clientv3.OpPut(a.s.headKey(), string(raw))), nil
}
