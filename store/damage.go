package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// DamagedError reports a database file that cannot be trusted: empty, not
// a bbolt file, shorter than its pages say, or failing bbolt's consistency
// check. Open and Verify return it before anything is written, so the file
// is left exactly as it was for whoever restores or inspects it.
type DamagedError struct {
	Path    string
	Problem string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("BOT_DB %s is damaged: %s; the file was left as it is (restore a backup, or move it aside to start afresh)", e.Path, e.Problem)
}

// guard runs fn with faults on the memory-mapped file turned into panics
// and returns any panic as an error. bbolt trusts the file: on a damaged
// one it panics (failed assertions, bad offsets) or touches memory past
// the end of a truncated file, which the runtime reports as a fault that
// would otherwise kill the process. Faults become panics only on the
// calling goroutine, which is why every read of the file runs under guard.
func guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = &panicError{value: r}
		}
	}()
	return fn()
}

// panicError is a panic caught by guard.
type panicError struct{ value any }

func (e *panicError) Error() string {
	msg := oneLine(fmt.Sprint(e.value))
	if _, fault := e.value.(interface{ Addr() uintptr }); fault {
		return "a page could not be read (" + msg + ")"
	}
	return "its pages do not hold together (bbolt: " + msg + ")"
}

// oneLine keeps the first line of s.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

// openError turns what bolt.Open said about an existing file into the
// error Open returns: a lock held elsewhere, a file that cannot be opened
// at all (permissions), or a damaged file.
func openError(path string, err error) error {
	var pe *panicError
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		return fmt.Errorf("open %s: %w", path, ErrLocked)
	case errors.As(err, &pe):
		return &DamagedError{Path: path, Problem: pe.Error()}
	case errors.Is(err, bolt.ErrInvalid):
		return &DamagedError{Path: path, Problem: "it is not a bbolt database (no valid header page)"}
	case errors.Is(err, bolt.ErrChecksum):
		return &DamagedError{Path: path, Problem: "both header pages fail their checksum"}
	case errors.Is(err, bolt.ErrVersionMismatch):
		return &DamagedError{Path: path, Problem: "its header names a bbolt format this build does not read"}
	case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("open %s: %w", path, err)
	}
	return &DamagedError{Path: path, Problem: oneLine(err.Error())}
}

// checkEmpty refuses an existing file of zero bytes. bbolt would quietly
// make it a new database, and a rebootbot file that has lost its content
// must not start again from R-1 as if nothing had happened.
func checkEmpty(path string) error {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("open %s: %w", path, err)
	case info.Mode().IsRegular() && info.Size() == 0:
		return &DamagedError{Path: path, Problem: "the file is empty (0 bytes), so it is not a rebootbot database"}
	}
	return nil
}

// maxCheckProblems is how many of the consistency check's findings a
// DamagedError names.
const maxCheckProblems = 3

// checkFile reads the whole file and runs bbolt's consistency check on
// it, in one read transaction. It must not run beside a writer in this
// process (bbolt's check reads the free list a writer changes), so Open
// runs it before any write and Verify only on a read-only DB.
//
// bbolt's check runs on a goroutine of its own, where a fault cannot be
// turned into a panic; so every page reachable from the root is read here
// first, under guard, after checkSize has made sure that the file holds
// all its pages. Then the check only touches memory known to be there.
func (db *DB) checkFile() error {
	return db.guard(func() error {
		return db.bolt.View(func(tx *bolt.Tx) error {
			var x byte
			tx.ForEach(func(name []byte, b *bolt.Bucket) error { x ^= readBucket(b); return nil })
			runtime.KeepAlive(x)
			var problems []string
			n := 0
			for err := range tx.Check() {
				if n++; len(problems) < maxCheckProblems {
					problems = append(problems, oneLine(err.Error()))
				}
			}
			if n > 0 {
				msg := fmt.Sprintf("bbolt's consistency check found %d problem(s): %s", n, strings.Join(problems, "; "))
				return &DamagedError{Path: db.path, Problem: msg}
			}
			return nil
		})
	})
}

// checkSize compares the file's size with the pages its header says it
// has: a truncated file would fault on the first read past its end.
func (db *DB) checkSize() error {
	return db.guard(func() error {
		return db.bolt.View(func(tx *bolt.Tx) error {
			info, err := os.Stat(db.path)
			if err != nil {
				return err
			}
			if want := tx.Size(); info.Size() < want {
				return &DamagedError{Path: db.path, Problem: fmt.Sprintf("the file is %d bytes but its pages reach %d bytes (it was truncated)", info.Size(), want)}
			}
			return nil
		})
	})
}

// guard runs fn under guard and reports a panic as damage to db's file.
func (db *DB) guard(fn func() error) error {
	err := guard(fn)
	if pe, ok := err.(*panicError); ok {
		return &DamagedError{Path: db.path, Problem: pe.Error()}
	}
	return err
}

// readBucket touches every key and value of b and of the buckets nested
// in it, so that a page that cannot be read faults here, under guard. The
// result only keeps the reads from being optimised away.
func readBucket(b *bolt.Bucket) byte {
	var x byte
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		x ^= touch(k)
		if v == nil {
			if child := b.Bucket(k); child != nil {
				x ^= readBucket(child)
			}
			continue
		}
		x ^= touch(v)
	}
	return x
}

// touch reads one byte of every memory page b spans.
func touch(b []byte) byte {
	var x byte
	for i := 0; i < len(b); i += 4096 {
		x ^= b[i]
	}
	if len(b) > 0 {
		x ^= b[len(b)-1]
	}
	return x
}
