package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"rebootbot/approval"

	bolt "go.etcd.io/bbolt"
)

// Create assigns r.ID (R-<n>, n from the requests bucket's sequence),
// claims r's instances when r is open, stores r, appends events with their
// RequestID set to r.ID and remembers reply under key, all in one
// transaction. reply.RequestID is set to r.ID when empty, since the caller
// cannot know the ID beforehand.
//
// If an instance is held by another open request it returns a
// *approval.HeldError and stores nothing. If key was remembered before
// (the same command delivered twice and racing past the caller's own
// check) it stores nothing and returns an *approval.Error carrying the
// earlier reply's message: its kind when the earlier reply was an error,
// Conflict otherwise.
func (db *DB) Create(ctx context.Context, r *approval.Request, key string, reply approval.Reply, events []approval.Event) error {
	if r == nil {
		return errors.New("store: create: nil request")
	}
	if r.State == "" {
		return errors.New("store: create: request has no state")
	}
	var id string
	err := db.writerFor(key)(ctx, func(tx *bolt.Tx) error {
		id = ""
		if key != "" {
			earlier, ok, err := getReply(tx, key)
			if err != nil {
				return err
			}
			if ok {
				return approval.CreateReplayed(earlier)
			}
		}
		ids := r.InstanceIDs()
		held := tx.Bucket(bucketOpenInstances)
		if r.State.Open() {
			for _, in := range ids {
				if holder := held.Get([]byte(in)); holder != nil {
					return &approval.HeldError{Instance: in, RequestID: string(holder)}
				}
			}
		}
		reqs := tx.Bucket(bucketRequests)
		reqs.FillPercent = appendFill
		seq, err := reqs.NextSequence()
		if err != nil {
			return fmt.Errorf("store: next request sequence: %w", err)
		}
		id = approval.FormatRequestID(seq)
		stored := *r
		stored.ID = id
		if err := db.putRequest(tx, seq, &stored); err != nil {
			return err
		}
		if r.State.Open() {
			for _, in := range ids {
				if err := held.Put([]byte(in), []byte(id)); err != nil {
					return fmt.Errorf("store: claim %s: %w", in, err)
				}
			}
		}
		app := db.appender(tx)
		for _, e := range events {
			e.RequestID = id
			if _, err := app.append(e, r.Requester, ids); err != nil {
				return err
			}
		}
		if key != "" {
			stored := reply
			if stored.RequestID == "" {
				stored.RequestID = id
			}
			return putReply(tx, key, stored)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.ID = id
	return nil
}

// Update runs fn on a decoded copy of request id inside one write
// transaction. When fn returns nil the request is saved if Change.Save
// (releasing its instances once it is terminal), Change.Events are appended
// (RequestID defaults to id) and Change.Reply is remembered under key; the
// request is returned as fn left it. When fn returns an error nothing is
// written and the error is returned. If key was remembered before, fn is
// not called and the stored request is returned with the earlier reply and
// replayed true. A missing request is a NotFound *approval.Error.
func (db *DB) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	var (
		out      *approval.Request
		reply    approval.Reply
		replayed bool
	)
	err := db.writerFor(key)(ctx, func(tx *bolt.Tx) error {
		out, reply, replayed = nil, approval.Reply{}, false
		if key != "" {
			earlier, ok, err := getReply(tx, key)
			if err != nil {
				return err
			}
			if ok {
				_, r, err := db.getRequest(tx, id)
				if err != nil && approval.ErrorKind(err) != approval.NotFound {
					return err
				}
				out, reply, replayed = r, earlier, true
				return nil
			}
		}
		seq, r, err := db.getRequest(tx, id)
		if err != nil {
			return err
		}
		storedID := r.ID
		change, err := fn(r)
		if err != nil {
			return err
		}
		if change.Save {
			if r.ID != storedID {
				return fmt.Errorf("store: update %s: the request's ID was changed to %q", storedID, r.ID)
			}
			if err := db.saveRequest(tx, seq, r); err != nil {
				return err
			}
		}
		app := db.appender(tx)
		ids := r.InstanceIDs()
		for _, e := range change.Events {
			if e.RequestID == "" {
				e.RequestID = r.ID
			}
			if _, err := app.append(e, r.Requester, ids); err != nil {
				return err
			}
		}
		if key != "" {
			if err := putReply(tx, key, change.Reply); err != nil {
				return err
			}
		}
		out, reply = r, change.Reply
		return nil
	})
	if err != nil {
		return nil, approval.Reply{}, false, err
	}
	return out, reply, replayed, nil
}

// Record appends events that change no request and remembers reply under
// key, in one transaction. An event naming a stored request is indexed
// under that request's requester and instances too. If key was remembered
// before it appends nothing and returns the earlier reply with replayed
// true.
func (db *DB) Record(ctx context.Context, key string, reply approval.Reply, events []approval.Event) (approval.Reply, bool, error) {
	var (
		out      approval.Reply
		replayed bool
	)
	err := db.writerFor(key)(ctx, func(tx *bolt.Tx) error {
		out, replayed = reply, false
		if key != "" {
			earlier, ok, err := getReply(tx, key)
			if err != nil {
				return err
			}
			if ok {
				out, replayed = earlier, true
				return nil
			}
		}
		app := db.appender(tx)
		for _, e := range events {
			var requester string
			var ids []string
			if e.RequestID != "" {
				_, r, err := db.getRequest(tx, e.RequestID)
				switch {
				case err == nil:
					requester, ids = r.Requester, r.InstanceIDs()
				case approval.ErrorKind(err) != approval.NotFound:
					return err
				}
			}
			if _, err := app.append(e, requester, ids); err != nil {
				return err
			}
		}
		if key != "" {
			return putReply(tx, key, reply)
		}
		return nil
	})
	if err != nil {
		return approval.Reply{}, false, err
	}
	return out, replayed, nil
}

// Reply returns the reply remembered under key.
func (db *DB) Reply(ctx context.Context, key string) (approval.Reply, bool, error) {
	var (
		reply approval.Reply
		ok    bool
	)
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		reply, ok, err = getReply(tx, key)
		return err
	})
	return reply, ok, err
}

// Get returns request id, or a NotFound *approval.Error.
func (db *DB) Get(ctx context.Context, id string) (*approval.Request, error) {
	var r *approval.Request
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		_, r, err = db.getRequest(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Open returns every request that is not terminal, oldest first. It reads
// the open_requests index, not every request ever made.
func (db *DB) Open(ctx context.Context) ([]*approval.Request, error) {
	var open []*approval.Request
	err := db.view(ctx, func(tx *bolt.Tx) error {
		reqs, err := bucket(tx, bucketRequests)
		if err != nil {
			return err
		}
		idx, err := bucket(tx, bucketOpenRequests)
		if err != nil {
			return err
		}
		return idx.ForEach(func(k, _ []byte) error {
			v := reqs.Get(k)
			if v == nil {
				return fmt.Errorf("store: open request %x is missing", k)
			}
			r, err := db.decodeRequest(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			open = append(open, r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return open, nil
}

// getRequest reads and decodes request id.
func (db *DB) getRequest(tx *bolt.Tx, id string) (uint64, *approval.Request, error) {
	seq, ok := approval.ParseRequestID(id)
	if !ok {
		return 0, nil, notFound(id)
	}
	reqs, err := bucket(tx, bucketRequests)
	if err != nil {
		return 0, nil, err
	}
	v := reqs.Get(u64(seq))
	if v == nil {
		return 0, nil, notFound(approval.FormatRequestID(seq))
	}
	r, err := db.decodeRequest(seq, v)
	return seq, r, err
}

// decodeRequest decodes the stored record v of request seq, or returns a
// copy of the request kept decoded from that very record.
func (db *DB) decodeRequest(seq uint64, v []byte) (*approval.Request, error) {
	if r := db.decoded.get(seq, v); r != nil {
		return r, nil
	}
	r, err := decodeRequest(v)
	if err == nil {
		db.decoded.put(seq, v, r)
	}
	return r, err
}

func notFound(id string) error {
	return &approval.Error{Kind: approval.NotFound, Message: fmt.Sprintf("No request %s.", id)}
}

// decodeRequest decodes a stored request, compressed or plain JSON (see
// compressedRecord); json.Unmarshal copies, so the result outlives the
// transaction.
func decodeRequest(v []byte) (*approval.Request, error) {
	raw, err := recordJSON(v)
	if err != nil {
		return nil, fmt.Errorf("store: decode request: %w", err)
	}
	var r approval.Request
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("store: decode request: %w", err)
	}
	return &r, nil
}

// putRequest stores r under seq as a compressed record and keeps it in the
// open index until it is settled.
func (db *DB) putRequest(tx *bolt.Tx, seq uint64, r *approval.Request) error {
	raw, err := db.records.encode(r)
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", r.ID, err)
	}
	if err := tx.Bucket(bucketRequests).Put(u64(seq), raw); err != nil {
		return fmt.Errorf("store: put %s: %w", r.ID, err)
	}
	db.decoded.put(seq, raw, r)
	if !r.Settled() {
		return tx.Bucket(bucketOpenRequests).Put(u64(seq), nil)
	}
	return nil
}

// saveRequest stores r over its earlier version. Once r is terminal it lets
// go of the instances it holds; once it is settled (nothing more owed to
// Slack) it leaves the open index.
func (db *DB) saveRequest(tx *bolt.Tx, seq uint64, r *approval.Request) error {
	if err := db.putRequest(tx, seq, r); err != nil {
		return err
	}
	if r.State.Open() {
		return nil
	}
	if r.Settled() {
		if err := tx.Bucket(bucketOpenRequests).Delete(u64(seq)); err != nil {
			return err
		}
	}
	held := tx.Bucket(bucketOpenInstances)
	for _, in := range r.InstanceIDs() {
		if string(held.Get([]byte(in))) == r.ID {
			if err := held.Delete([]byte(in)); err != nil {
				return fmt.Errorf("store: release %s: %w", in, err)
			}
		}
	}
	return nil
}

func getReply(tx *bolt.Tx, key string) (approval.Reply, bool, error) {
	var reply approval.Reply
	b, err := bucket(tx, bucketDeliveries)
	if err != nil {
		return reply, false, err
	}
	v := b.Get([]byte(key))
	if v == nil {
		return reply, false, nil
	}
	if err := json.Unmarshal(v, &reply); err != nil {
		return reply, false, fmt.Errorf("store: decode reply: %w", err)
	}
	return reply, true, nil
}

func putReply(tx *bolt.Tx, key string, reply approval.Reply) error {
	raw, err := json.Marshal(reply)
	if err != nil {
		return fmt.Errorf("store: encode reply: %w", err)
	}
	if err := tx.Bucket(bucketDeliveries).Put([]byte(key), raw); err != nil {
		return fmt.Errorf("store: remember delivery: %w", err)
	}
	return nil
}

// writerFor returns how to commit a write for delivery key: ahead of
// background writes when someone waits for its answer (key is set).
func (db *DB) writerFor(key string) func(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if key != "" {
		return db.updateDelivery
	}
	return db.update
}
