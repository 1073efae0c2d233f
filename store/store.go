// Package store keeps rebootbot's requests and its append-only audit log in
// one bbolt file. It implements approval.Store: every state change is
// written in the same transaction as its audit events, and every event
// carries the SHA-256 of the one before it so that editing or deleting a
// record is detected by Verify.
//
// The file holds these buckets:
//
//	requests        8-byte big-endian seq → request JSON (R-<seq>)
//	open_requests   seq → nothing, for requests that are not terminal
//	open_instances  instance ID → ID of the open request holding it
//	deliveries      delivery key (a Slack trigger_id) → Reply JSON
//	events          8-byte big-endian seq → the event's canonical JSON
//	idx_request     request ID ‖ 0x00 ‖ seq
//	idx_instance    instance ID ‖ 0x00 ‖ seq
//	idx_user        user ID ‖ 0x00 ‖ seq (the actor, and the requester of
//	                the request concerned)
//	idx_time        8-byte time ‖ seq
//	meta            schema version, the audit log's head hash and time
//
// Deliveries are kept for good: a key and its reply take about a hundred
// bytes, so a busy bot adds a few megabytes a year, and forgetting a key
// would let a late redelivery act twice.
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"rebootbot/approval"

	bolt "go.etcd.io/bbolt"
)

// ErrLocked reports that another process holds the database file.
var ErrLocked = errors.New("database is locked by another process")

var _ approval.Store = (*DB)(nil)

// Options tune Open.
type Options struct {
	// Timeout is how long Open waits for another process to let go of the
	// file; 0 means one second.
	Timeout time.Duration
	// NoSync skips fsync after each commit. For benchmarks and tests only:
	// a crash may lose or corrupt the last transactions.
	NoSync bool
	// ReadOnly opens the file for reading only, sharing it with other
	// readers. The file must exist; nothing can be written through the DB.
	ReadOnly bool
	// Now stamps events whose Time is zero; nil means time.Now.
	Now func() time.Time
}

// DB is a bbolt file holding requests and the audit log. It is safe for
// concurrent use.
type DB struct {
	bolt *bolt.DB
	path string
	now  func() time.Time
}

// schemaVersion is the layout this package reads and writes.
const schemaVersion = "1"

var (
	bucketRequests      = []byte("requests")
	bucketOpenRequests  = []byte("open_requests")
	bucketOpenInstances = []byte("open_instances")
	bucketDeliveries    = []byte("deliveries")
	bucketEvents        = []byte("events")
	bucketIdxRequest    = []byte("idx_request")
	bucketIdxInstance   = []byte("idx_instance")
	bucketIdxUser       = []byte("idx_user")
	bucketIdxTime       = []byte("idx_time")
	bucketMeta          = []byte("meta")

	allBuckets = [][]byte{
		bucketRequests, bucketOpenRequests, bucketOpenInstances, bucketDeliveries,
		bucketEvents, bucketIdxRequest, bucketIdxInstance, bucketIdxUser, bucketIdxTime,
		bucketMeta,
	}

	metaVersion  = []byte("version")
	metaHeadHash = []byte("head_hash") // hex SHA-256 of the last event's bytes
	metaHeadTime = []byte("head_time") // 8-byte time of the last event
)

// Open opens or creates the database at path. If another process holds the
// file for longer than opts.Timeout it returns an error that wraps
// ErrLocked.
func Open(path string, opts Options) (*DB, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	bopts := &bolt.Options{
		Timeout:      timeout,
		NoSync:       opts.NoSync,
		ReadOnly:     opts.ReadOnly,
		FreelistType: bolt.FreelistMapType,
	}
	b, err := bolt.Open(path, 0o600, bopts)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	db := &DB{bolt: b, path: path, now: now}
	if err := db.init(opts.ReadOnly); err != nil {
		b.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// init creates the buckets of a new file and refuses a file written by a
// newer layout.
func (db *DB) init(readOnly bool) error {
	check := func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if readOnly {
				return errors.New("not a rebootbot database")
			}
			return nil
		}
		if v := meta.Get(metaVersion); v != nil && string(v) != schemaVersion {
			return fmt.Errorf("database layout version %q is not supported (this build reads %q)", v, schemaVersion)
		}
		return nil
	}
	if readOnly {
		return db.bolt.View(check)
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return tx.Bucket(bucketMeta).Put(metaVersion, []byte(schemaVersion))
	})
}

// Close releases the file.
func (db *DB) Close() error { return db.bolt.Close() }

// Path returns the file the DB was opened from.
func (db *DB) Path() string { return db.path }

// Check reports whether the database can be read, for health checks.
func (db *DB) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("store: meta bucket missing")
		}
		return nil
	})
}

// view runs fn in a read transaction after checking ctx.
func (db *DB) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.View(fn)
}

// update runs fn in a write transaction after checking ctx.
func (db *DB) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.Update(fn)
}

// bucket returns the named bucket, or an error naming it when a read-only
// file lacks it.
func bucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	b := tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("store: bucket %s missing", name)
	}
	return b, nil
}

// u64 returns n as 8 big-endian bytes, so that keys sort numerically.
func u64(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

// timeKey returns t as 8 bytes that sort in time order, also before 1970.
func timeKey(t time.Time) []byte {
	return u64(uint64(t.UnixNano()) ^ 1<<63)
}

// timeFromKey is the inverse of timeKey.
func timeFromKey(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^1<<63)).UTC()
}
