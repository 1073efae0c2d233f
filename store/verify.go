package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"rebootbot/approval"

	bolt "go.etcd.io/bbolt"
)

// verifyPage is how many records one read transaction of Verify checks
// (a variable so that tests can cross pages with small logs).
var verifyPage = 8192

// Verify checks the whole audit chain as it stood when Verify began: every
// record is valid JSON, carries the sequence number it is stored under,
// follows its predecessor without a gap and holds the hash of its
// predecessor's bytes; the last record's hash is the head kept in meta, so
// editing or deleting the newest record is caught too. It returns the
// number of records checked; a *approval.VerifyError names the first bad
// one (with the count of good records before it).
//
// When a record's prev_hash does not match, either its predecessor's
// content or its own prev_hash was changed; the next link tells which, so
// an edited record is named itself rather than its successor.
//
// On a DB opened read-only (the audit CLI's), the whole file is first read
// and checked for damage by bbolt's consistency check, which returns a
// *DamagedError; a DB that writes was checked when it was opened.
func (db *DB) Verify(ctx context.Context) (uint64, error) {
	if db.readOnly {
		if err := db.checkFile(); err != nil {
			return 0, err
		}
	}
	var (
		v        verifier
		started  bool
		headSeq  uint64
		headHash string
		finished bool
	)
	for !finished {
		err := db.view(ctx, func(tx *bolt.Tx) error {
			events := tx.Bucket(bucketEvents)
			meta := tx.Bucket(bucketMeta)
			if events == nil || meta == nil {
				return errors.New("store: not a rebootbot database")
			}
			if !started {
				headSeq, headHash, started = events.Sequence(), string(meta.Get(metaHeadHash)), true
			}
			c := events.Cursor()
			n := 0
			for k, raw := c.Seek(u64(v.last + 1)); k != nil; k, raw = c.Next() {
				if len(k) == 8 && binary.BigEndian.Uint64(k) > headSeq {
					break
				}
				if err := v.record(k, raw); err != nil {
					return err
				}
				if n++; n == verifyPage {
					return nil
				}
			}
			finished = true
			return nil
		})
		if err != nil {
			return badCount(err), err
		}
	}
	if err := v.end(headSeq, headHash); err != nil {
		return badCount(err), err
	}
	return v.last, nil
}

// badCount is how many records were found good before the bad one.
func badCount(err error) uint64 {
	var ve *approval.VerifyError
	if errors.As(err, &ve) && ve.Seq > 0 {
		return ve.Seq - 1
	}
	return 0
}

// verifier walks the chain one record at a time.
type verifier struct {
	last     uint64 // seq of the last record read
	lastHash string // hash of its bytes
	// suspect is set when record last's prev_hash does not match record
	// last-1: record last-1's content or record last's prev_hash changed.
	suspect bool
}

// chainRecord is the part of an event the chain check reads.
type chainRecord struct {
	Seq      *uint64 `json:"seq"`
	PrevHash *string `json:"prev_hash"`
}

var (
	canonicalHead = []byte(`{"seq":`)
	canonicalTail = []byte(`,"prev_hash":"`)
)

// chainFields returns a record's seq and prev_hash fields, or a problem
// that makes it unreadable. The store writes events as json.Marshal lays
// out approval.Event: {"seq":N, first and ,"prev_hash":"H"} last. Once the
// bytes are known to be valid JSON those two are read in place, which
// halves the time of a full decode; a record of any other shape (only an
// edited one can be) is decoded in full.
func chainFields(raw []byte) (seq uint64, prevHash, problem string) {
	if !json.Valid(raw) {
		return 0, "", "record is not valid JSON"
	}
	if rest, ok := bytes.CutPrefix(raw, canonicalHead); ok {
		end := bytes.IndexByte(rest, ',')
		tail := bytes.LastIndex(raw, canonicalTail)
		if end > 0 && tail > 0 && tail+len(canonicalTail) <= len(raw)-2 && bytes.HasSuffix(raw, []byte(`"}`)) {
			h := raw[tail+len(canonicalTail) : len(raw)-2]
			n, err := strconv.ParseUint(string(rest[:end]), 10, 64)
			if err == nil && isHex(h) {
				return n, string(h), ""
			}
		}
	}
	var rec chainRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return 0, "", "record is not an event: " + err.Error()
	}
	switch {
	case rec.Seq == nil:
		return 0, "", "record has no seq field"
	case rec.PrevHash == nil:
		return 0, "", "record has no prev_hash field"
	}
	return *rec.Seq, *rec.PrevHash, ""
}

// isHex reports whether b is lowercase hex (or empty, the first record's).
func isHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (v *verifier) record(k, raw []byte) error {
	expect := v.last + 1
	if len(k) != 8 {
		return v.fail(expect, fmt.Sprintf("a record is stored under key %x, which is not a sequence number", k))
	}
	seq := binary.BigEndian.Uint64(k)
	if seq != expect {
		return v.fail(expect, fmt.Sprintf("sequence gap: record %d is missing", expect))
	}
	fieldSeq, prevHash, problem := chainFields(raw)
	switch {
	case problem != "":
		return v.fail(seq, problem)
	case fieldSeq != seq:
		return v.fail(seq, fmt.Sprintf("seq field %d stored under key %d", fieldSeq, seq))
	}
	if v.suspect {
		if prevHash == v.lastHash {
			return v.contentChanged()
		}
		return v.mismatch()
	}
	if prevHash != v.lastHash {
		if seq == 1 {
			return &approval.VerifyError{Seq: 1, Reason: "the first record has a prev_hash"}
		}
		v.suspect = true
	}
	v.last, v.lastHash = seq, approval.HashBytes(raw)
	return nil
}

// end checks the last record against the head kept in meta.
func (v *verifier) end(headSeq uint64, headHash string) error {
	if v.suspect {
		if v.last == headSeq && v.lastHash == headHash {
			return v.contentChanged()
		}
		return v.mismatch()
	}
	if v.last < headSeq {
		return &approval.VerifyError{Seq: v.last + 1, Reason: fmt.Sprintf("record %d is missing: the log ends at %d but its head is %d", v.last+1, v.last, headSeq)}
	}
	if headSeq > 0 && v.lastHash != headHash {
		return &approval.VerifyError{Seq: v.last, Reason: "content changed: its hash does not match the log's head"}
	}
	return nil
}

// fail reports a bad record. An unresolved prev_hash mismatch comes
// before it and is reported instead.
func (v *verifier) fail(seq uint64, reason string) error {
	if v.suspect {
		return v.mismatch()
	}
	return &approval.VerifyError{Seq: seq, Reason: reason}
}

// mismatch reports record last, whose prev_hash does not match its
// predecessor, when nothing shows the predecessor to be the changed one.
func (v *verifier) mismatch() error {
	return &approval.VerifyError{Seq: v.last, Reason: fmt.Sprintf("prev_hash does not match record %d", v.last-1)}
}

// contentChanged reports record last-1, whose successor's prev_hash holds
// a hash its bytes no longer have, while that successor itself is intact.
func (v *verifier) contentChanged() error {
	return &approval.VerifyError{Seq: v.last - 1, Reason: fmt.Sprintf("content changed: record %d holds a different hash of it", v.last)}
}
