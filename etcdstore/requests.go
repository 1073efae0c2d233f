package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"rebootbot/approval"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Create assigns r.ID (R-<n>, n from seq/request), claims r's instances
// when r is open, stores r, appends events with their RequestID set to
// r.ID and remembers reply under key, all in one transaction conditioned
// on the request counter, the log's head and the delivery key being new.
// reply.RequestID is set to r.ID when empty.
//
// If an instance is held by another open request it returns a
// *approval.HeldError and stores nothing. If key was remembered before it
// stores nothing and returns an *approval.Error carrying the earlier
// reply's message: its kind when the earlier reply was an error, Conflict
// otherwise.
func (s *Store) Create(ctx context.Context, r *approval.Request, key string, reply approval.Reply, events []approval.Event) error {
	if r == nil {
		return errors.New("etcdstore: create: nil request")
	}
	if r.State == "" {
		return errors.New("etcdstore: create: request has no state")
	}
	ids := r.InstanceIDs()
	claims := distinct(ids)
	if !r.State.Open() {
		claims = nil
	}
	var gets []string
	if key != "" {
		gets = append(gets, s.deliveryKey(key))
	}
	for _, in := range claims {
		gets = append(gets, s.heldKey(in))
	}
	var id string
	ch := &change{what: "create", urgent: key != "", counts: true, gets: gets, own: gets}
	err := s.commit(ctx, ch, func(b *batch, got []*pb.RangeResponse) error {
		rest := got
		if key != "" {
			if earlier, ok, err := decodeReply(rest[0]); err != nil || ok {
				if err != nil {
					return err
				}
				return approval.CreateReplayed(earlier)
			}
			rest = rest[1:]
		}
		for i, in := range claims {
			if holder := kv(rest[i]); holder != nil {
				return &approval.HeldError{Instance: in, RequestID: string(holder.Value)}
			}
		}
		seq, err := b.nextSeq()
		if err != nil {
			return err
		}
		id = approval.FormatRequestID(seq)
		stored := *r
		stored.ID = id
		raw, err := json.Marshal(&stored)
		if err != nil {
			return fmt.Errorf("etcdstore: encode %s: %w", id, err)
		}
		var cmps []clientv3.Cmp
		ops := []clientv3.Op{clientv3.OpPut(s.requestKey(seq), string(raw))}
		if !stored.Settled() {
			ops = append(ops, clientv3.OpPut(s.openKey(seq), ""))
		}
		for _, in := range claims {
			ops = append(ops, clientv3.OpPut(s.heldKey(in), id))
		}
		for _, e := range events {
			e.RequestID = id
			if err := b.app.append(e, r.Requester, ids); err != nil {
				return err
			}
		}
		if key != "" {
			reply := reply
			if reply.RequestID == "" {
				reply.RequestID = id
			}
			c, op, err := s.putReply(key, reply)
			if err != nil {
				return err
			}
			cmps, ops = append(cmps, c), append(ops, op)
		}
		b.add(cmps, ops)
		return nil
	})
	if err != nil {
		return err
	}
	r.ID = id
	return nil
}

// Update runs fn on a decoded copy of request id and commits what it
// decided in one transaction conditioned on the request being unchanged
// since it was read, on the log's head and on key being new. When fn
// returns nil the request is saved if Change.Save (releasing its instances
// once it is terminal), Change.Events are appended (RequestID defaults to
// id) and Change.Reply is remembered under key; the request is returned as
// fn left it. When fn returns an error nothing is written and the error is
// returned.
//
// When another writer changed the request or the log in between, or a
// change sharing its transaction was refused, fn runs again on the fresh
// request: fn must act only on the request it is given. It runs in the
// goroutine that commits this process's writes, never after Update has
// returned.
// If key was remembered before, fn is not called and the stored request is
// returned with the earlier reply and replayed true. A missing request is a
// NotFound *approval.Error.
func (s *Store) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	var (
		out      *approval.Request
		reply    approval.Reply
		replayed bool
	)
	seq, valid := approval.ParseRequestID(id)
	var gets []string
	if valid {
		gets = append(gets, s.requestKey(seq))
	}
	if key != "" {
		gets = append(gets, s.deliveryKey(key))
	}
	ch := &change{what: "update " + id, urgent: key != "", gets: gets, own: gets}
	err := s.commit(ctx, ch, func(b *batch, got []*pb.RangeResponse) error {
		var stored *pb.RangeResponse
		if valid {
			stored = got[0]
		}
		if key != "" {
			earlier, ok, err := decodeReply(got[len(got)-1])
			if err != nil {
				return err
			}
			if ok {
				out, reply, replayed = nil, earlier, true
				if stored != nil && kv(stored) != nil {
					if out, err = decodeRequest(kv(stored).Value); err != nil {
						return err
					}
				}
				return nil
			}
		}
		if stored == nil || kv(stored) == nil {
			if valid {
				return notFound(approval.FormatRequestID(seq))
			}
			return notFound(id)
		}
		r, err := decodeRequest(kv(stored).Value)
		if err != nil {
			return err
		}
		storedID, wasOpen := r.ID, r.State.Open()
		change, err := fn(r)
		if err != nil {
			return err
		}
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.requestKey(seq)), "=", modRev(stored))}
		var ops []clientv3.Op
		if change.Save {
			if r.ID != storedID {
				return fmt.Errorf("etcdstore: update %s: the request's ID was changed to %q", storedID, r.ID)
			}
			saved, err := s.saveRequest(seq, r, wasOpen)
			if err != nil {
				return err
			}
			ops = append(ops, saved...)
		}
		ids := r.InstanceIDs()
		for _, e := range change.Events {
			if e.RequestID == "" {
				e.RequestID = r.ID
			}
			if err := b.app.append(e, r.Requester, ids); err != nil {
				return err
			}
		}
		if key != "" {
			c, op, err := s.putReply(key, change.Reply)
			if err != nil {
				return err
			}
			cmps, ops = append(cmps, c), append(ops, op)
		}
		out, reply, replayed = r, change.Reply, false
		b.add(cmps, ops)
		return nil
	})
	if err != nil {
		return nil, approval.Reply{}, false, err
	}
	return out, reply, replayed, nil
}

// saveRequest returns the writes that store r over its earlier version.
// Once r is terminal it lets go of the instances it held (each only where
// r still holds it, since a request terminal before may have seen them
// claimed again); once it is settled it leaves the open index.
func (s *Store) saveRequest(seq uint64, r *approval.Request, wasOpen bool) ([]clientv3.Op, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("etcdstore: encode %s: %w", r.ID, err)
	}
	ops := []clientv3.Op{clientv3.OpPut(s.requestKey(seq), string(raw))}
	if r.Settled() {
		ops = append(ops, clientv3.OpDelete(s.openKey(seq)))
	} else {
		ops = append(ops, clientv3.OpPut(s.openKey(seq), ""))
	}
	if wasOpen && !r.State.Open() {
		for _, in := range distinct(r.InstanceIDs()) {
			k := s.heldKey(in)
			ops = append(ops, clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", r.ID)},
				[]clientv3.Op{clientv3.OpDelete(k)}, nil))
		}
	}
	return ops, nil
}

// Record appends events that change no request and remembers reply under
// key, in one transaction conditioned on the log's head and on key being
// new. An event naming a stored request is indexed under that request's
// requester and instances too. If key was remembered before it appends
// nothing and returns the earlier reply with replayed true.
func (s *Store) Record(ctx context.Context, key string, reply approval.Reply, events []approval.Event) (approval.Reply, bool, error) {
	out, replayed := reply, false
	// The requests the events name, read with the head.
	var named []uint64
	for _, e := range events {
		if n, ok := approval.ParseRequestID(e.RequestID); ok && !slices.Contains(named, n) {
			named = append(named, n)
		}
	}
	var gets []string
	if key != "" {
		gets = append(gets, s.deliveryKey(key))
	}
	own := gets
	for _, n := range named {
		gets = append(gets, s.requestKey(n))
	}
	ch := &change{what: "record", urgent: key != "", gets: gets, own: own}
	err := s.commit(ctx, ch, func(b *batch, got []*pb.RangeResponse) error {
		out, replayed = reply, false
		rest := got
		if key != "" {
			earlier, ok, err := decodeReply(rest[0])
			if err != nil {
				return err
			}
			if ok {
				out, replayed = earlier, true
				return nil
			}
			rest = rest[1:]
		}
		requests := make(map[uint64]*approval.Request, len(named))
		for i, n := range named {
			if v := kv(rest[i]); v != nil {
				r, err := decodeRequest(v.Value)
				if err != nil {
					return err
				}
				requests[n] = r
			}
		}
		for _, e := range events {
			var requester string
			var ids []string
			if n, ok := approval.ParseRequestID(e.RequestID); ok && requests[n] != nil {
				requester, ids = requests[n].Requester, requests[n].InstanceIDs()
			}
			if err := b.app.append(e, requester, ids); err != nil {
				return err
			}
		}
		if key != "" {
			c, op, err := s.putReply(key, reply)
			if err != nil {
				return err
			}
			b.add([]clientv3.Cmp{c}, []clientv3.Op{op})
		}
		return nil
	})
	if err != nil {
		return approval.Reply{}, false, err
	}
	return out, replayed, nil
}

// Reply returns the reply remembered under key.
func (s *Store) Reply(ctx context.Context, key string) (approval.Reply, bool, error) {
	got, _, err := s.read(ctx, []clientv3.Op{clientv3.OpGet(s.deliveryKey(key))})
	if err != nil {
		return approval.Reply{}, false, err
	}
	return decodeReply(got[0])
}

// Get returns request id, or a NotFound *approval.Error.
func (s *Store) Get(ctx context.Context, id string) (*approval.Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	seq, ok := approval.ParseRequestID(id)
	if !ok {
		return nil, notFound(id)
	}
	got, _, err := s.read(ctx, []clientv3.Op{clientv3.OpGet(s.requestKey(seq))})
	if err != nil {
		return nil, err
	}
	v := kv(got[0])
	if v == nil {
		return nil, notFound(approval.FormatRequestID(seq))
	}
	return decodeRequest(v.Value)
}

// Open returns every request that is not settled, oldest first. It reads
// the open index, then those requests at the same revision.
func (s *Store) Open(ctx context.Context) ([]*approval.Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	resp, err := s.client.Get(ctx, s.openPrefix(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, unavailable(ctx, "list open requests", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	gets := make([]clientv3.Op, len(resp.Kvs))
	for i, k := range resp.Kvs {
		seq, ok := parseSeq(string(k.Key), s.openPrefix())
		if !ok {
			return nil, fmt.Errorf("etcdstore: open index holds a foreign key %q", k.Key)
		}
		gets[i] = clientv3.OpGet(s.requestKey(seq), clientv3.WithRev(resp.Header.Revision))
	}
	got, _, err := s.read(ctx, gets)
	if err != nil {
		return nil, err
	}
	open := make([]*approval.Request, 0, len(got))
	for i, g := range got {
		v := kv(g)
		if v == nil {
			return nil, fmt.Errorf("etcdstore: open request %s is missing", resp.Kvs[i].Key)
		}
		r, err := decodeRequest(v.Value)
		if err != nil {
			return nil, err
		}
		open = append(open, r)
	}
	return open, nil
}

func notFound(id string) error {
	return &approval.Error{Kind: approval.NotFound, Message: fmt.Sprintf("No request %s.", id)}
}

func decodeRequest(raw []byte) (*approval.Request, error) {
	return decodeJSON[approval.Request]("request", raw)
}

// decodeReply decodes the reply of a delivery key's get.
func decodeReply(r *pb.RangeResponse) (approval.Reply, bool, error) {
	v := kv(r)
	if v == nil {
		return approval.Reply{}, false, nil
	}
	reply, err := decodeJSON[approval.Reply]("reply", v.Value)
	if err != nil {
		return approval.Reply{}, false, err
	}
	return *reply, true, nil
}

// putReply returns the write remembering reply under key, conditioned on
// key being new: a delivery that raced to a second replica fails there
// and is answered as a replay.
func (s *Store) putReply(key string, reply approval.Reply) (clientv3.Cmp, clientv3.Op, error) {
	raw, err := json.Marshal(reply)
	if err != nil {
		return clientv3.Cmp{}, clientv3.Op{}, fmt.Errorf("etcdstore: encode reply: %w", err)
	}
	k := s.deliveryKey(key)
	return clientv3.Compare(clientv3.CreateRevision(k), "=", 0), clientv3.OpPut(k, string(raw)), nil
}

// distinct returns ids without repeats, in order.
func distinct(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
