// Package etcdstore keeps rebootbot's requests and audit log in etcd, so
// that several replicas of the bot share them. It implements
// approval.Store with the same contract as the bbolt store (package store):
// every state change is one etcd transaction together with its audit
// events, conditioned on the revisions it was decided from, so that two
// replicas never both act on one request, never both claim one instance,
// never both answer one delivery and never fork the audit chain. Events
// carry the SHA-256 of the one before them exactly as the bbolt store
// computes it, and Verify checks the chain the same way.
//
// Every key is under a prefix (DefaultPrefix unless told otherwise):
//
//	meta/version              layout version
//	meta/head                 the audit log's head: {"seq","hash","time"} of
//	                          the last event; every append is conditioned on
//	                          its ModRevision
//	seq/request               the last request number handed out; every
//	                          Create is conditioned on its ModRevision
//	requests/<seq>            request JSON (R-<seq>); each Update is
//	                          conditioned on the request's ModRevision
//	open/<seq>                "" for requests that are not Settled
//	held/<instance>           ID of the open request holding the instance
//	deliveries/<key>          Reply JSON for a delivery key (a trigger_id);
//	                          written only where the key does not exist yet
//	events/<seq>              the event's canonical JSON
//	idx/request/<id>/<^seq>   "" for each event of request id
//	idx/instance/<id>/<^seq>  "" for each event naming instance id (or, when
//	                          the event names none, of its request)
//	idx/user/<id>/<^seq>      "" for each event whose actor or requester is id
//	idx/time/<time><seq>      "" for each event, by time
//	election/                 the leader election (see Leader)
//
// <seq> is a sequence number and <time> a time (nanoseconds since 1970
// with the sign bit flipped), each as 16 lowercase hex digits so that keys
// sort in order; <^seq> is the sequence number's bitwise complement, so
// that an index lists its newest events first. etcd can stop a range read
// after n keys only in ascending key order, and "the latest 10 events of
// this instance" is the lookup people make. Index IDs are path-escaped, so
// no ID can reach into another's range.
//
// Instances are claimed only by Create, which is conditioned on
// seq/request: two creates never both read an instance as free. They are
// released by the Update that makes their request terminal, and only where
// the request still holds them.
//
// etcd allows 128 operations in a transaction unless --max-txn-ops says
// otherwise, and each nested transaction as many again less its parent's
// own; a change with more writes than that (a request for many instances)
// is sent as one transaction whose writes are grouped into nested ones,
// which commit or fail together with it.
//
// The changes one process makes at the same time share transactions (see
// committer): a group's audit events are appended in one transaction, one
// after the other, conditioned on the head once, so that N concurrent
// changes cost one round of consensus rather than N rounds each racing
// the others for the head.
package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"rebootbot/approval"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultPrefix is where the bot's keys live unless told otherwise.
const DefaultPrefix = "/rebootbot/"

// schemaVersion is the layout this package reads and writes.
const schemaVersion = "1"

// maxTxnOps is etcd's default --max-txn-ops.
const maxTxnOps = 128

// maxAttempts bounds how often a transaction is tried again after other
// writers got in first; each retry means another transaction committed,
// so reaching it means a storm of writes to one request or the log.
const maxAttempts = 200

var _ approval.Store = (*Store)(nil)

// Options tune New and Open.
type Options struct {
	// Prefix is where every key lives; empty means DefaultPrefix.
	Prefix string
	// Now stamps events whose Time is zero; nil means time.Now.
	Now func() time.Time
}

// Store is rebootbot's state in etcd. It is safe for concurrent use, and
// any number of Stores, in any number of processes, may share a prefix.
type Store struct {
	client *clientv3.Client
	owned  bool // Close closes the client
	prefix string
	now    func() time.Time
	// fence, when set, conditions every write on the leadership it holds.
	fence *Leader
	// commits gathers the concurrent writes of this process, fenced
	// copies included, into shared transactions (see committer).
	commits *committer
}

// New returns a Store over client. It writes the layout version under the
// prefix when there is none and refuses a prefix written by another
// layout. Close leaves the client open.
func New(ctx context.Context, client *clientv3.Client, opts Options) (*Store, error) {
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Store{client: client, prefix: prefix, now: now, commits: &committer{maxGroup: maxGroup, maxOps: maxGroupOps, grace: commitGrace}}
	s.commits.memo = []string{s.headKey(), s.requestSeqKey(), s.requestKey(0)[:len(s.requestKey(0))-16], s.deliveryKey("")}
	if err := s.init(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// init writes meta/version once and checks it.
func (s *Store) init(ctx context.Context) error {
	k := s.versionKey()
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, schemaVersion)).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return unavailable(ctx, "check the layout version", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && string(kvs[0].Value) != schemaVersion {
		return fmt.Errorf("etcdstore: layout version %q under %s is not supported (this build reads %q)", kvs[0].Value, s.prefix, schemaVersion)
	}
	return nil
}

// Close releases the client when the Store made it (Open).
func (s *Store) Close() error {
	if s.owned {
		return s.client.Close()
	}
	return nil
}

// Client returns the etcd client the Store uses.
func (s *Store) Client() *clientv3.Client { return s.client }

// Prefix returns the prefix every key of the Store is under.
func (s *Store) Prefix() string { return s.prefix }

// Check reports whether the cluster can be read with quorum, for health
// checks: a member cut off from the others fails it.
func (s *Store) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	resp, err := s.client.Get(ctx, s.versionKey())
	if err != nil {
		return unavailable(ctx, "check", err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("etcdstore: no layout version under %s", s.prefix)
	}
	return nil
}

// Fenced returns a Store whose every write is conditioned on l still
// leading: a write made after l's lease expired and another replica was
// elected fails with ErrNotLeader and changes nothing, even when this
// replica has not yet noticed that it lost.
func (s *Store) Fenced(l *Leader) *Store {
	c := *s
	c.owned = false
	c.fence = l
	return &c
}

// Keys.

func seqHex(n uint64) string { return fmt.Sprintf("%016x", n) }

func (s *Store) versionKey() string           { return s.prefix + "meta/version" }
func (s *Store) headKey() string              { return s.prefix + "meta/head" }
func (s *Store) requestSeqKey() string        { return s.prefix + "seq/request" }
func (s *Store) requestKey(seq uint64) string { return s.prefix + "requests/" + seqHex(seq) }
func (s *Store) openPrefix() string           { return s.prefix + "open/" }
func (s *Store) openKey(seq uint64) string    { return s.openPrefix() + seqHex(seq) }
func (s *Store) heldKey(instance string) string {
	return s.prefix + "held/" + url.PathEscape(instance)
}
func (s *Store) deliveryKey(key string) string { return s.prefix + "deliveries/" + key }
func (s *Store) eventPrefix() string           { return s.prefix + "events/" }
func (s *Store) eventKey(seq uint64) string    { return s.eventPrefix() + seqHex(seq) }
func (s *Store) timePrefix() string            { return s.prefix + "idx/time/" }

// indexPrefix returns the prefix of index kind's entries for id.
func (s *Store) indexPrefix(kind, id string) string {
	return s.prefix + "idx/" + kind + "/" + url.PathEscape(id) + "/"
}

// parseSeq reads the 16 hex digits after prefix in key.
func parseSeq(key, prefix string) (uint64, bool) {
	h, ok := strings.CutPrefix(key, prefix)
	if !ok || len(h) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(h, 16, 64)
	return n, err == nil
}

// timeHex returns t as 16 hex digits that sort in time order, also before
// 1970.
func timeHex(t time.Time) string { return seqHex(uint64(t.UnixNano()) ^ 1<<63) }

// Transactions.

// nest returns ops as a list of at most budget operations, grouping them
// into nested transactions (themselves within budget less their parent's
// operations) when there are more; etcd checks each level of a transaction
// against --max-txn-ops separately.
func nest(ops []clientv3.Op, budget int) []clientv3.Op {
	if len(ops) <= budget {
		return ops
	}
	k := budget / 2
	size := (len(ops) + k - 1) / k
	out := make([]clientv3.Op, 0, k)
	for i := 0; i < len(ops); i += size {
		out = append(out, clientv3.OpTxn(nil, nest(ops[i:min(i+size, len(ops))], budget-k), nil))
	}
	return out
}

// ranges appends the range responses of resps in the order their
// operations were given, looking into nested transactions.
func ranges(out []*pb.RangeResponse, resps []*pb.ResponseOp) []*pb.RangeResponse {
	for _, r := range resps {
		switch {
		case r.GetResponseRange() != nil:
			out = append(out, r.GetResponseRange())
		case r.GetResponseTxn() != nil:
			out = ranges(out, r.GetResponseTxn().Responses)
		}
	}
	return out
}

// read runs gets in one transaction, so they see one revision, and returns
// their responses in order.
func (s *Store) read(ctx context.Context, gets []clientv3.Op) ([]*pb.RangeResponse, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	resp, err := s.client.Txn(ctx).Then(nest(gets, maxTxnOps)...).Commit()
	if err != nil {
		return nil, 0, unavailable(ctx, "read", err)
	}
	return ranges(nil, resp.Responses), resp.Header.Revision, nil
}

// write commits ops if every compare holds. It reports false when one does
// not (another writer got in first) and ErrNotLeader when the Store is
// fenced and its leadership is gone.
func (s *Store) write(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var orElse []clientv3.Op
	if s.fence != nil {
		cmp, key, err := s.fence.fenceCmp()
		if err != nil {
			return false, err
		}
		cmps = append(cmps, cmp)
		orElse = append(orElse, clientv3.OpGet(key))
	}
	resp, err := s.client.Txn(ctx).If(cmps...).Then(nest(ops, maxTxnOps)...).Else(orElse...).Commit()
	if err != nil {
		return false, unavailable(ctx, "write", err)
	}
	if resp.Succeeded {
		return true, nil
	}
	if s.fence != nil {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if !s.fence.holds(kvs) {
			return false, ErrNotLeader
		}
	}
	return false, nil
}

// unavailable wraps an error of the etcd client: the caller's own
// cancellation as it is; anything else, a deadline that ran out while
// the cluster did not answer included, as Unavailable, since it means the
// cluster could not be reached or had no quorum.
func unavailable(ctx context.Context, what string, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("etcdstore: %s: %w", what, ctx.Err())
	}
	return &approval.Error{Kind: approval.Unavailable, Message: "The store (etcd) could not be reached; nothing was recorded.",
		Err: fmt.Errorf("etcdstore: %s: %w", what, err)}
}

// kv returns the only key-value of a single-key get, or nil.
func kv(r *pb.RangeResponse) *mvccpb.KeyValue {
	if len(r.Kvs) == 0 {
		return nil
	}
	return r.Kvs[0]
}

// modRev is the ModRevision of a single-key get, 0 when there is no key.
func modRev(r *pb.RangeResponse) int64 {
	if v := kv(r); v != nil {
		return v.ModRevision
	}
	return 0
}

func decodeJSON[T any](what string, raw []byte) (*T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("etcdstore: decode %s: %w", what, err)
	}
	return &v, nil
}
