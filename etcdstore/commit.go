package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"rebootbot/approval"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// maxGroup bounds how many changes share one transaction. It is also
// bounded by etcd's limit on a transaction's compares (maxTxnCmps), since
// most changes bring one or two.
const maxGroup = 64

// maxTxnCmps bounds a group's compares, and the operations at the top of
// its transaction: etcd allows a nested transaction as many operations as
// --max-txn-ops less the most its parent has of compares or operations,
// so keeping both to half leaves half for every nested one.
const maxTxnCmps = maxTxnOps / 2

// maxGroupOps bounds the writes of one transaction, nested ones included,
// and maxGroupBytes the size of their keys and values (etcd refuses
// requests over 1.5 MiB unless --max-request-bytes says otherwise). A
// single change larger than either still goes, alone.
const (
	maxGroupOps   = 8 * maxTxnOps
	maxGroupBytes = 1 << 20
)

// committer makes the concurrent changes of one process share etcd
// transactions, as the bbolt store's committer makes them share fsyncs.
// Every change appends to the audit log and so is conditioned on its head:
// etcd can commit only one of them at a time whatever is sent, and each
// one commit costs a round of consensus and a WAL fsync on a majority of
// members. Changes are queued; while one transaction is on its way the
// changes that arrive wait and go together into the next one: their reads
// in one range request, their compares and writes in one Txn, their audit
// events numbered and chained in the order of the group. Nobody waits for
// a timer: an idle store sends the first change at once.
//
// A change whose own decision fails (its function returns an error, or it
// finds its delivery answered before) is answered alone and left out; the
// rest go. When the transaction's compares fail (another process wrote
// one of the keys read), the group is read and decided again. Changes that
// read or write the same request, delivery or instance do not share a
// transaction: the second waits for the next one, so that it decides on
// what the first committed. The leader's background writes (through a
// fenced Store, without a delivery key) go after the others: a replica's
// answers to commands and clicks, and what those lead to, such as a new
// request's card that a click may follow at once.
//
// A change whose caller's ctx ends before the change is in a transaction
// is left out: nothing of it is written. Once it is in one, the
// transaction may commit whatever the caller does, so the caller waits up
// to grace for the outcome and, failing that, is told the outcome is not
// known, never that nothing was recorded.
type committer struct {
	mu      sync.Mutex
	urgent  []*change // changes a person waits on, oldest first
	queue   []*change // background changes, oldest first
	running bool      // a goroutine is committing the queues

	// maxGroup and maxOps bound a group (maxGroup and maxGroupOps unless
	// a test asks for less).
	maxGroup, maxOps int
	// grace is how long a caller whose ctx ended waits for the outcome
	// of a transaction its change is in (commitGrace unless a test asks
	// for other).
	grace time.Duration

	// The rest belongs to the goroutine committing the queues.
	memo       []string                     // prefixes of the keys it remembers
	known      map[string]*pb.RangeResponse // what it last wrote or found there
	knownBytes int
}

// change is one Create, Update or Record waiting for its transaction.
type change struct {
	what   string
	urgent bool     // not the leader's background work
	counts bool     // takes a request number from seq/request
	gets   []string // keys decide reads, in order, besides the head
	own    []string // keys no other change of its transaction may touch
	// decide reads got (one response per key of gets, in order) and adds
	// the change's compares, writes and events to b. It runs once for
	// every transaction the change is tried in and must set what its
	// caller reads afresh each time. An error answers the change with that
	// error; a change that adds no writes and no events is answered at
	// once with nil.
	decide func(b *batch, got []*pb.RangeResponse) error

	ctx   context.Context
	store *Store // the Store the change was made through: its fence
	done  chan error

	// mu is held while decide runs; left is set when the caller gave up,
	// after which decide is not called again, so that it never runs
	// concurrently with the caller's own code. inTxn is set while the
	// change's writes are in a transaction being built or sent, whose
	// outcome is not known yet.
	mu    sync.Mutex
	left  bool
	inTxn bool
}

// commitGrace is how long a caller whose ctx ended waits for the outcome
// of the transaction its change is in. A healthy cluster commits in
// milliseconds; this keeps a click's answer within Slack's 3 s and lets
// most transactions under way tell their outcome.
const commitGrace = 300 * time.Millisecond

// outcomeUnknown is what send returns when a transaction was sent and no
// outcome came back: it may have committed.
type outcomeUnknown struct{ err error }

func (e *outcomeUnknown) Error() string { return e.err.Error() }
func (e *outcomeUnknown) Unwrap() error { return e.err }

// commit queues ch, to be decided by decide, and returns once it is
// committed, refused, or ctx ends.
func (s *Store) commit(ctx context.Context, ch *change, decide func(b *batch, got []*pb.RangeResponse) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ch.decide, ch.ctx, ch.store, ch.done = decide, ctx, s, make(chan error, 1)
	// A replica's writes that are not the leader's are its answers to
	// Slack and what they lead to (a new request's card), which a click
	// may follow at once.
	ch.urgent = ch.urgent || s.fence == nil
	c := s.commits
	c.mu.Lock()
	if ch.urgent {
		c.urgent = append(c.urgent, ch)
	} else {
		c.queue = append(c.queue, ch)
	}
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	select {
	case err := <-ch.done:
		return err
	case <-ctx.Done():
	}
	if !ch.leave(false) {
		t := time.NewTimer(c.grace)
		defer t.Stop()
		select {
		case err := <-ch.done:
			return err
		case <-t.C:
		}
		if !ch.leave(true) {
			select {
			case err := <-ch.done:
				return err
			default:
			}
			return approval.Unconfirmed(fmt.Errorf("etcdstore: %s: %w", ch.what, context.Cause(ctx)))
		}
	}
	select {
	case err := <-ch.done:
		return err
	default:
		return unavailable(ctx, ch.what, ctx.Err())
	}
}

// leave marks ch as given up by its caller unless its writes are in a
// transaction under way (or even then, with anyway), and reports whether
// they were not: then nothing of ch is written.
func (ch *change) leave(anyway bool) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.inTxn && !anyway {
		return false
	}
	ch.left = true
	return !ch.inTxn
}

// outOfTxn clears inTxn on chs, whose transaction did not commit: they
// are decided again, or left out if their callers gave up meanwhile.
func outOfTxn(chs []*change) {
	for _, ch := range chs {
		ch.mu.Lock()
		ch.inTxn = false
		ch.mu.Unlock()
	}
}

// answer gives ch its outcome; later answers are dropped.
func (ch *change) answer(err error) {
	select {
	case ch.done <- err:
	default:
	}
}

// gone reports whether ch's caller gave up waiting.
func (ch *change) gone() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.left
}

// loop commits the queues, group by group, until they are empty.
func (c *committer) loop() {
	for {
		group := c.take()
		if len(group) == 0 {
			return
		}
		c.run(group)
	}
}

// take removes the next group from the queues: urgent changes first, then
// background ones, up to maxGroup in all. A group holds the writes of at
// most one leadership (see Store.Fenced); a lost leadership refuses
// exactly those. It stops the loop when the queues are empty.
func (c *committer) take() []*change {
	c.mu.Lock()
	defer c.mu.Unlock()
	var group []*change
	var fence *Leader
	// Background changes keep a quarter of a group when any wait, so that
	// a flood of commands and clicks does not hold back for long the
	// leader's work.
	room := c.maxGroup
	if len(c.queue) > 0 {
		room -= c.maxGroup / 4
	}
	for _, q := range []*[]*change{&c.urgent, &c.queue} {
		rest := (*q)[:0]
		for _, ch := range *q {
			f := ch.store.fence
			switch {
			case ch.gone():
			case len(group) < room && (f == nil || fence == nil || f == fence):
				if f != nil {
					fence = f
				}
				group = append(group, ch)
			default:
				rest = append(rest, ch)
			}
		}
		clear((*q)[len(rest):])
		*q = rest
		room = c.maxGroup
	}
	if len(group) == 0 {
		c.running = false
	}
	return group
}

// putBack returns changes left out of a group to the front of their
// queues, in order, for the next group.
func (c *committer) putBack(later []*change) {
	if len(later) == 0 {
		return
	}
	var urgent, queue []*change
	for _, ch := range later {
		if ch.urgent {
			urgent = append(urgent, ch)
		} else {
			queue = append(queue, ch)
		}
	}
	c.mu.Lock()
	c.urgent = append(urgent, c.urgent...)
	c.queue = append(queue, c.queue...)
	c.mu.Unlock()
}

// run commits group: it decides the changes in order on what their keys
// hold and sends one transaction, and decides again on what the
// transaction found while its compares fail.
func (c *committer) run(group []*change) {
	var fresh map[string]*pb.RangeResponse
	for attempt := 0; ; attempt++ {
		group = slices.DeleteFunc(group, (*change).gone)
		if len(group) == 0 {
			return
		}
		if attempt == maxAttempts {
			for _, ch := range group {
				ch.answer(&approval.Error{Kind: approval.Unavailable, Message: "The store is too busy; nothing was recorded. Try again.",
					Err: fmt.Errorf("etcdstore: %s: lost %d races to other writers", ch.what, maxAttempts)})
			}
			return
		}
		ctx, stop := groupContext(group, c.grace)
		var err error
		fresh, err = c.try(ctx, &group, fresh)
		stop()
		if err != nil {
			c.forget()
		}
		if err != nil || fresh == nil {
			for _, ch := range group {
				ch.answer(err)
			}
			return
		}
	}
}

// try makes one attempt at committing *group, leaving in it the changes
// to answer with the outcome. It returns nil when the transaction
// committed, or the error that answers all of them; when the transaction's
// compares failed, it returns what the group's keys held then, to decide
// on next time.
//
// Keys are read with quorum before deciding unless fresh (what the last
// attempt found) or the committer's memory of what it wrote holds them.
// What memory holds may be out of date when other replicas write: a change
// decided on it is committed only if the keys it was decided on are
// unchanged, by its own compares (the request's revision, the head, the
// counter, the delivery key) or, for a change answered without writing
// (a refusal, a replay), by compares added for it.
func (c *committer) try(ctx context.Context, group *[]*change, fresh map[string]*pb.RangeResponse) (map[string]*pb.RangeResponse, error) {
	s := (*group)[0].store
	var keys []string
	seen := map[string]bool{}
	need := func(k string) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	need(s.headKey())
	for _, ch := range *group {
		if ch.counts {
			need(s.requestSeqKey())
		}
		for _, k := range ch.gets {
			need(k)
		}
	}
	if fresh == nil {
		fresh = map[string]*pb.RangeResponse{}
	}
	var unknown []string
	for _, k := range keys {
		if fresh[k] == nil && c.known[k] == nil && !strings.HasPrefix(k, s.deliveryKey("")) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		gets := make([]clientv3.Op, len(unknown))
		for i, k := range unknown {
			gets[i] = clientv3.OpGet(k)
		}
		got, _, err := s.read(ctx, gets)
		if err != nil {
			return nil, err
		}
		for i, k := range unknown {
			fresh[k] = got[i]
		}
	}
	value := func(k string) *pb.RangeResponse {
		if v := fresh[k]; v != nil {
			return v
		}
		if v := c.known[k]; v != nil {
			return v
		}
		// A delivery not known is taken to be new: its reply is
		// written only where the key does not exist, and a replay shows
		// as failed compares.
		return &pb.RangeResponse{}
	}
	h, headRev, err := readHead(value(s.headKey()))
	if err != nil {
		return nil, err
	}
	b := &batch{s: s, app: &appender{s: s, head: h, headRev: headRev}, written: map[string]bool{}}
	if seen[s.requestSeqKey()] {
		b.counter = value(s.requestSeqKey())
	}
	owned := map[string]bool{}
	var in, held, later []*change
	var heldErrs []error
	var checks []clientv3.Cmp
	for _, ch := range *group {
		if slices.ContainsFunc(ch.own, func(k string) bool { return owned[k] }) {
			later = append(later, ch)
			continue
		}
		mine := make([]*pb.RangeResponse, len(ch.gets))
		var assumed []clientv3.Cmp
		for i, k := range ch.gets {
			mine[i] = value(k)
			if fresh[k] == nil {
				assumed = append(assumed, clientv3.Compare(clientv3.ModRevision(k), "=", modRev(mine[i])))
			}
		}
		m := b.mark()
		ch.mu.Lock()
		if ch.left {
			ch.mu.Unlock()
			continue
		}
		err := ch.decide(b, mine)
		answered := err != nil || b.empty(m)
		switch {
		case answered && len(assumed) == 0:
			b.rollback(m)
			ch.answer(err)
		case answered && m.cmps+len(checks)+len(assumed)+3 > maxTxnCmps:
			b.rollback(m)
			later = append(later, ch)
		case answered:
			// Decided on what memory holds: answered once the
			// transaction shows those keys unchanged.
			b.rollback(m)
			checks = append(checks, assumed...)
			held, heldErrs = append(held, ch), append(heldErrs, err)
		case !b.keep(m, len(in) == 0, len(checks)):
			b.rollback(m)
			later = append(later, ch)
		default:
			// From here its caller cannot take the change out: it
			// goes with the transaction.
			ch.inTxn = true
			in = append(in, ch)
			for _, k := range ch.own {
				owned[k] = true
			}
		}
		ch.mu.Unlock()
	}
	c.putBack(later)
	*group = in
	if len(in) == 0 && len(held) == 0 {
		return nil, nil
	}
	cmps, ops, err := b.finish()
	if err != nil {
		outOfTxn(in)
		*group = append(in, held...)
		return nil, err
	}
	cmps = append(cmps, checks...)
	var fence *Leader
	for _, ch := range append(in, held...) {
		if ch.store.fence != nil {
			fence = ch.store.fence
		}
	}
	again, err := c.send(ctx, s, fence, cmps, ops, keys)
	if unknown := (*outcomeUnknown)(nil); errors.As(err, &unknown) {
		// The changes written may have committed; those answered
		// without writing wrote nothing either way.
		for _, ch := range in {
			ch.answer(approval.Unconfirmed(fmt.Errorf("etcdstore: %s: %w", ch.what, unknown.err)))
		}
		*group = held
		return nil, unknown.err
	}
	if err != nil || again != nil {
		outOfTxn(in)
	}
	if errors.Is(err, ErrNotLeader) {
		// The leader's writes are refused; the others go without them.
		var rest []*change
		for _, ch := range append(in, held...) {
			if ch.store.fence != nil {
				ch.answer(err)
			} else {
				rest = append(rest, ch)
			}
		}
		*group = rest
		return map[string]*pb.RangeResponse{}, nil
	}
	if err != nil {
		*group = append(in, held...)
		return nil, err
	}
	if again != nil {
		*group = append(in, held...)
		return again, nil
	}
	for i, ch := range held {
		ch.answer(heldErrs[i])
	}
	return nil, nil
}

// send commits ops if every compare holds, and fence's leadership when
// fence is set. When one does not it returns what keys hold now, read in
// the same transaction, and ErrNotLeader when the leadership is gone.
// What a committed transaction wrote is remembered.
func (c *committer) send(ctx context.Context, s *Store, fence *Leader, cmps []clientv3.Cmp, ops []clientv3.Op, keys []string) (map[string]*pb.RangeResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, unavailable(ctx, "write", err)
	}
	var orElse []clientv3.Op
	if fence != nil {
		cmp, key, err := fence.fenceCmp()
		if err != nil {
			return nil, err
		}
		cmps = append(cmps, cmp)
		orElse = append(orElse, clientv3.OpGet(key))
	}
	rereads := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		rereads[i] = clientv3.OpGet(k)
	}
	orElse = append(orElse, nest(rereads, maxTxnCmps-len(orElse))...)
	resp, err := s.client.Txn(ctx).If(cmps...).Then(nest(ops, maxTxnCmps)...).Else(orElse...).Commit()
	if err != nil {
		return nil, &outcomeUnknown{unavailable(ctx, "write", err)}
	}
	if resp.Succeeded {
		c.remember(ops, resp.Header.Revision)
		return nil, nil
	}
	got := ranges(nil, resp.Responses)
	if fence != nil {
		if !fence.holds(got[0].Kvs) {
			return nil, ErrNotLeader
		}
		got = got[1:]
	}
	now := make(map[string]*pb.RangeResponse, len(keys))
	for i, k := range keys {
		now[k] = got[i]
		if c.memorable(k) {
			c.learn(k, got[i])
		}
	}
	return now, nil
}

// maxKnownBytes bounds the values the committer remembers.
const maxKnownBytes = 4 << 20

// memorable reports whether the committer remembers key: the head, the
// request counter, requests and deliveries, which its changes read again
// and again. Instance claims are always read.
func (c *committer) memorable(key string) bool {
	for _, p := range c.memo {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// learn remembers what key holds.
func (c *committer) learn(key string, r *pb.RangeResponse) {
	if old := c.known[key]; old != nil {
		c.knownBytes -= size(old)
	}
	if c.knownBytes+size(r) > maxKnownBytes {
		c.forget()
	}
	if c.known == nil {
		c.known = map[string]*pb.RangeResponse{}
	}
	c.known[key] = r
	c.knownBytes += size(r)
}

// forget drops everything remembered, after a transaction whose outcome
// is unknown.
func (c *committer) forget() {
	c.known, c.knownBytes = nil, 0
}

// remember records what ops wrote at rev.
func (c *committer) remember(ops []clientv3.Op, rev int64) {
	for _, op := range ops {
		k := string(op.KeyBytes())
		switch {
		case op.IsTxn() || !c.memorable(k):
		case op.IsPut():
			c.learn(k, &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{{Key: op.KeyBytes(), Value: op.ValueBytes(), ModRevision: rev}}, Count: 1})
		case op.IsDelete():
			c.learn(k, &pb.RangeResponse{})
		}
	}
}

func size(r *pb.RangeResponse) int {
	n := 64
	for _, kv := range r.Kvs {
		n += len(kv.Key) + len(kv.Value)
	}
	return n
}

// groupContext returns a context for a group's requests to etcd that
// lasts as long as the longest any caller in it waits, grace included,
// and a function releasing it. A caller that stops waiting does not end
// the others' request.
func groupContext(group []*change, grace time.Duration) (context.Context, func()) {
	var last time.Time
	for _, ch := range group {
		d, ok := ch.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if d.After(last) {
			last = d
		}
	}
	return context.WithDeadline(context.Background(), last.Add(grace))
}

// batch collects the compares, writes and events of a group's changes
// for one transaction.
type batch struct {
	s       *Store
	app     *appender
	counter *pb.RangeResponse // seq/request as read, when a change counts
	taken   uint64            // request numbers handed out
	cmps    []clientv3.Cmp
	ops     []clientv3.Op
	written map[string]bool // keys the ops of the changes in the batch write
	size    int             // bytes of the keys and values written
}

// mark is where a batch stood before a change was decided.
type mark struct {
	cmps, ops, appOps, appN int
	head                    head
	taken                   uint64
}

func (b *batch) mark() mark {
	return mark{cmps: len(b.cmps), ops: len(b.ops), appOps: len(b.app.ops), appN: b.app.n,
		head: b.app.head, taken: b.taken}
}

// rollback takes the batch back to m, leaving out what was added since.
func (b *batch) rollback(m mark) {
	clear(b.cmps[m.cmps:])
	b.cmps = b.cmps[:m.cmps]
	clear(b.ops[m.ops:])
	b.ops = b.ops[:m.ops]
	clear(b.app.ops[m.appOps:])
	b.app.ops, b.app.n, b.app.head = b.app.ops[:m.appOps], m.appN, m.head
	b.taken = m.taken
}

// empty reports whether nothing that writes was added since m.
func (b *batch) empty(m mark) bool {
	return len(b.ops) == m.ops && b.app.n == m.appN && b.taken == m.taken
}

// keep keeps what was added since m and reports true, unless it writes a
// key an earlier change of the batch writes (etcd refuses a transaction
// that writes a key twice) or, when the batch held changes before, it
// takes the batch over a group's bounds; then it keeps nothing and
// reports false.
func (b *batch) keep(m mark, first bool, checks int) bool {
	var keys []string
	size := b.size
	for _, op := range b.ops[m.ops:] {
		keys = opKeys(keys, op)
		size += opSize(op)
	}
	for _, op := range b.app.ops[m.appOps:] {
		size += opSize(op)
	}
	for _, k := range keys {
		if b.written[k] {
			return false
		}
	}
	// The head, the request counter and the fence bring a compare each,
	// the head and the counter a write.
	full := len(b.cmps)+checks+3 > maxTxnCmps || len(b.ops)+len(b.app.ops)+2 > b.s.commits.maxOps || size > maxGroupBytes
	if full && !first {
		return false
	}
	for _, k := range keys {
		b.written[k] = true
	}
	b.size = size
	return true
}

// add adds a change's compares and writes.
func (b *batch) add(cmps []clientv3.Cmp, ops []clientv3.Op) {
	b.cmps = append(b.cmps, cmps...)
	b.ops = append(b.ops, ops...)
}

// nextSeq hands out the next request number: requests created in one
// transaction are numbered in the order of the group.
func (b *batch) nextSeq() (uint64, error) {
	last, err := b.lastSeq()
	if err != nil {
		return 0, err
	}
	b.taken++
	return last + b.taken, nil
}

// lastSeq is the request number last handed out before the batch.
func (b *batch) lastSeq() (uint64, error) {
	if b.counter == nil {
		return 0, fmt.Errorf("etcdstore: the request counter was not read")
	}
	var last uint64
	if v := kv(b.counter); v != nil {
		if _, err := fmt.Sscan(string(v.Value), &last); err != nil {
			return 0, fmt.Errorf("etcdstore: decode the request counter %q: %w", v.Value, err)
		}
	}
	return last, nil
}

// finish returns the transaction's compares and writes: the changes',
// then the audit log's (its events and head), then the request counter's.
func (b *batch) finish() ([]clientv3.Cmp, []clientv3.Op, error) {
	cmps, ops := b.cmps, b.ops
	appCmps, appOps, err := b.app.finish()
	if err != nil {
		return nil, nil, err
	}
	cmps, ops = append(cmps, appCmps...), append(ops, appOps...)
	if b.taken > 0 {
		last, err := b.lastSeq()
		if err != nil {
			return nil, nil, err
		}
		k := b.s.requestSeqKey()
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", modRev(b.counter)))
		ops = append(ops, clientv3.OpPut(k, fmt.Sprint(last+b.taken)))
	}
	return cmps, ops, nil
}

// opKeys appends the keys op writes, looking into nested transactions.
func opKeys(keys []string, op clientv3.Op) []string {
	if op.IsTxn() {
		_, then, orElse := op.Txn()
		for _, o := range then {
			keys = opKeys(keys, o)
		}
		for _, o := range orElse {
			keys = opKeys(keys, o)
		}
		return keys
	}
	if op.IsPut() || op.IsDelete() {
		keys = append(keys, string(op.KeyBytes()))
	}
	return keys
}

// opSize is the bytes of op's keys and values.
func opSize(op clientv3.Op) int {
	if op.IsTxn() {
		n := 0
		_, then, orElse := op.Txn()
		for _, o := range then {
			n += opSize(o)
		}
		for _, o := range orElse {
			n += opSize(o)
		}
		return n
	}
	return len(op.KeyBytes()) + len(op.ValueBytes())
}
