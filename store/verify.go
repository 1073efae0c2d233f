package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

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
// editing or deleting the newest record is caught too (see
// approval.ChainVerifier). It returns the number of records checked; a
// *approval.VerifyError names the first bad one (with the count of good
// records before it).
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
		v        approval.ChainVerifier
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
			for k, raw := c.Seek(u64(v.Last() + 1)); k != nil; k, raw = c.Next() {
				if len(k) != 8 {
					return v.Bad(v.Last()+1, fmt.Sprintf("a record is stored under key %x, which is not a sequence number", k))
				}
				seq := binary.BigEndian.Uint64(k)
				if seq > headSeq {
					break
				}
				if err := v.Add(seq, raw); err != nil {
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
			return approval.VerifiedBefore(err), err
		}
	}
	if err := v.End(headSeq, headHash); err != nil {
		return approval.VerifiedBefore(err), err
	}
	return v.Last(), nil
}
