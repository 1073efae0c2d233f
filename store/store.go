// Package store keeps rebootbot's requests and its append-only audit log in
// one bbolt file. It implements approval.Store: every state change is
// written in the same transaction as its audit events, and every event
// carries the SHA-256 of the one before it so that editing or deleting a
// record is detected by Verify.
//
// The file holds these buckets:
//
//	requests        8-byte big-endian seq → request (R-<seq>): 0x01 then
//	                its JSON, DEFLATE-compressed (see compressedRecord);
//	                files of layout 1 hold plain JSON, still read as such
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
//	health          what the write probe last wrote (see Probe)
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
	"os"
	"slices"
	"strings"
	"sync"
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
	// Check reads the whole of an existing file and runs bbolt's
	// consistency check on it before Open returns (see DamagedError). It
	// takes about as long as reading the file once.
	Check bool
	// ProbeEvery, when positive, makes the DB write a few bytes to its
	// health bucket that often (and every few seconds while writes fail),
	// so that Writable tells whether the file can be written even while
	// nothing else writes. Close stops it.
	ProbeEvery time.Duration
	// OnWritable, when set, is called when the file stops being writable,
	// with the error, and with nil once it is writable again.
	OnWritable func(err error)
	// OnCommit, when set, is told of every committed write transaction,
	// from the goroutine that committed it.
	OnCommit func(Commit)
}

// Commit describes a committed write transaction.
type Commit struct {
	Writes int           // the writes it carried
	Urgent bool          // they were writes someone waits on (clicks, commands)
	Took   time.Duration // from its start until it was durable
}

// DB is a bbolt file holding requests and the audit log. It is safe for
// concurrent use.
type DB struct {
	bolt     *bolt.DB
	path     string
	now      func() time.Time
	readOnly bool

	writes    writeState
	records   recordWriter  // compresses requests as they are written
	decoded   decodedCache  // small requests as last read or written
	group     *committer    // concurrent writes share transactions
	probeStop chan struct{} // closed by Close; nil without a probe
	probeDone chan struct{}
	closeOnce sync.Once
}

// schemaVersion is the layout this package writes. Layout 2 stores
// requests compressed; it reads files of layout 1 too, and marks them 2
// when it opens them for writing, so that an older build refuses a file
// it could no longer read instead of misreading it.
const schemaVersion = "2"

// readableVersions are the layouts this package reads.
var readableVersions = []string{"1", schemaVersion}

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
	bucketHealth        = []byte("health")

	allBuckets = [][]byte{
		bucketRequests, bucketOpenRequests, bucketOpenInstances, bucketDeliveries,
		bucketEvents, bucketIdxRequest, bucketIdxInstance, bucketIdxUser, bucketIdxTime,
		bucketMeta, bucketHealth,
	}

	metaVersion  = []byte("version")
	metaHeadHash = []byte("head_hash") // hex SHA-256 of the last event's bytes
	metaHeadTime = []byte("head_time") // 8-byte time of the last event
)

// Open opens or creates the database at path. If another process holds the
// file for longer than opts.Timeout it returns an error that wraps
// ErrLocked.
//
// An existing file is opened for reading and looked at before anything is
// written to it: an empty file, a file that is not bbolt's, or one shorter
// than its pages say is a *DamagedError, and so is one that fails the full
// check when opts.Check is set. The file is then left untouched.
func Open(path string, opts Options) (*DB, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	if err := checkEmpty(path); err != nil {
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	bopts := &bolt.Options{
		Timeout:         timeout,
		NoSync:          opts.NoSync,
		ReadOnly:        true,
		FreelistType:    bolt.FreelistMapType,
		PreLoadFreelist: true,
	}
	_, statErr := os.Stat(path)
	if statErr == nil {
		db, err := openChecked(path, bopts, opts.Check, !opts.ReadOnly, now)
		if err != nil || opts.ReadOnly {
			return db, err
		}
		if err := db.Close(); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	} else if opts.ReadOnly {
		return nil, fmt.Errorf("open %s: %w", path, statErr)
	}
	bopts.ReadOnly = false
	b, err := openBolt(path, bopts)
	if err != nil {
		return nil, openError(path, err)
	}
	db := &DB{bolt: b, path: path, now: now}
	db.group = &committer{commit: db.commit, grace: commitGrace, now: time.Now, onCommit: opts.OnCommit}
	db.writes.kick, db.writes.on = make(chan struct{}, 1), opts.OnWritable
	if err := db.init(); err != nil {
		b.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if opts.ProbeEvery > 0 {
		db.probeStop, db.probeDone = make(chan struct{}), make(chan struct{})
		go db.probe(opts.ProbeEvery)
	}
	return db, nil
}

// openChecked opens an existing file read-only and checks it: its size
// against its pages, with full the whole file (see checkFile), and that it
// is a rebootbot database (or, with blank, a bbolt file still without
// buckets).
//
// The size is checked on a first opening that reads no more than the
// header pages: bbolt reads the free list while opening, and on a
// truncated file that read would go past the file's end.
func openChecked(path string, bopts *bolt.Options, full, blank bool, now func() time.Time) (*DB, error) {
	first := *bopts
	first.PreLoadFreelist = false
	b, err := openBolt(path, &first)
	if err != nil {
		return nil, openError(path, err)
	}
	err = (&DB{bolt: b, path: path}).checkSize()
	b.Close()
	if err != nil {
		return nil, err
	}
	if b, err = openBolt(path, bopts); err != nil {
		return nil, openError(path, err)
	}
	db := &DB{bolt: b, path: path, now: now, readOnly: true}
	if full {
		err = db.checkFile()
	}
	if err == nil {
		if err = db.view(context.Background(), func(tx *bolt.Tx) error { return identify(tx, blank) }); err != nil {
			err = fmt.Errorf("open %s: %w", path, err)
		}
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// openBolt opens path with bbolt under guard. bbolt reads the header and
// free-list pages while opening; when that panics, the file it opened is
// closed here, which also lets go of its lock.
func openBolt(path string, bopts *bolt.Options) (*bolt.DB, error) {
	var file *os.File
	o := *bopts
	o.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, mode)
		file = f
		return f, err
	}
	var b *bolt.DB
	err := guard(func() error {
		var err error
		b, err = bolt.Open(path, 0o600, &o)
		return err
	})
	if _, panicked := err.(*panicError); panicked && file != nil {
		file.Close()
	}
	return b, err
}

// init creates the buckets of a new file.
func (db *DB) init() error {
	return db.update(context.Background(), func(tx *bolt.Tx) error {
		if err := identify(tx, true); err != nil {
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

// identify returns an error unless tx reads a rebootbot database of the
// layout this build reads. With blank, a bbolt file without any bucket (a
// new one, whose buckets are not made yet) passes too; a bbolt file with
// other buckets belongs to another program and is never written to.
func identify(tx *bolt.Tx, blank bool) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if k, _ := tx.Cursor().First(); k == nil && blank {
			return nil
		}
		return errors.New("not a rebootbot database (it has no meta bucket)")
	}
	if v := meta.Get(metaVersion); v != nil && !slices.Contains(readableVersions, string(v)) {
		return fmt.Errorf("database layout version %q is not supported (this build reads %s)", v, strings.Join(readableVersions, " and "))
	}
	return nil
}

// Close stops the write probe and releases the file.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		if db.probeStop != nil {
			close(db.probeStop)
			<-db.probeDone
		}
	})
	return db.bolt.Close()
}

// Path returns the file the DB was opened from.
func (db *DB) Path() string { return db.path }

// Check reports whether the database can be read and written, for health
// checks: a read, and the outcome of the last write (see Writable).
func (db *DB) Check(ctx context.Context) error {
	err := db.view(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("store: meta bucket missing")
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.Writable()
}

// view runs fn in a read transaction after checking ctx.
func (db *DB) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.guard(func() error { return db.bolt.View(fn) })
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
