package approval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ChainVerifier checks the audit chain one record at a time, in sequence
// order: every record is valid JSON, carries the sequence number it is
// stored under, follows its predecessor without a gap and holds the hash
// of its predecessor's bytes. Every store's Verify walks its records
// through one, so that both name the same record for the same damage.
//
// When a record's prev_hash does not match, either its predecessor's
// content or its own prev_hash was changed; the next link tells which, so
// an edited record is named itself rather than its successor.
type ChainVerifier struct {
	last     uint64 // seq of the last record read
	lastHash string // hash of its bytes
	// suspect is set when record last's prev_hash does not match record
	// last-1: record last-1's content or record last's prev_hash changed.
	suspect bool
}

// Last returns the sequence number of the last record read.
func (v *ChainVerifier) Last() uint64 { return v.last }

// Add checks the record stored under seq with bytes raw.
func (v *ChainVerifier) Add(seq uint64, raw []byte) error {
	expect := v.last + 1
	if seq != expect {
		return v.Bad(expect, fmt.Sprintf("sequence gap: record %d is missing", expect))
	}
	fieldSeq, prevHash, problem := chainFields(raw)
	switch {
	case problem != "":
		return v.Bad(seq, problem)
	case fieldSeq != seq:
		return v.Bad(seq, fmt.Sprintf("seq field %d stored under key %d", fieldSeq, seq))
	}
	if v.suspect {
		if prevHash == v.lastHash {
			return v.contentChanged()
		}
		return v.mismatch()
	}
	if prevHash != v.lastHash {
		if seq == 1 {
			return &VerifyError{Seq: 1, Reason: "the first record has a prev_hash"}
		}
		v.suspect = true
	}
	v.last, v.lastHash = seq, HashBytes(raw)
	return nil
}

// Bad reports record seq as unreadable for reason (for example a record
// stored under a key that is not a sequence number). An unresolved
// prev_hash mismatch comes before it and is reported instead.
func (v *ChainVerifier) Bad(seq uint64, reason string) error {
	if v.suspect {
		return v.mismatch()
	}
	return &VerifyError{Seq: seq, Reason: reason}
}

// End checks the last record read against the log's head: its sequence
// number and the hash of its bytes, as the store keeps them beside the
// log. It catches the newest record edited or deleted.
func (v *ChainVerifier) End(headSeq uint64, headHash string) error {
	if v.suspect {
		if v.last == headSeq && v.lastHash == headHash {
			return v.contentChanged()
		}
		return v.mismatch()
	}
	if v.last < headSeq {
		return &VerifyError{Seq: v.last + 1, Reason: fmt.Sprintf("record %d is missing: the log ends at %d but its head is %d", v.last+1, v.last, headSeq)}
	}
	if headSeq > 0 && v.lastHash != headHash {
		return &VerifyError{Seq: v.last, Reason: "content changed: its hash does not match the log's head"}
	}
	return nil
}

// mismatch reports record last, whose prev_hash does not match its
// predecessor, when nothing shows the predecessor to be the changed one.
func (v *ChainVerifier) mismatch() error {
	return &VerifyError{Seq: v.last, Reason: fmt.Sprintf("prev_hash does not match record %d", v.last-1)}
}

// contentChanged reports record last-1, whose successor's prev_hash holds
// a hash its bytes no longer have, while that successor itself is intact.
func (v *ChainVerifier) contentChanged() error {
	return &VerifyError{Seq: v.last - 1, Reason: fmt.Sprintf("content changed: record %d holds a different hash of it", v.last)}
}

// VerifiedBefore returns how many records were found good before the bad
// one that err names; 0 when err is no *VerifyError.
func VerifiedBefore(err error) uint64 {
	var ve *VerifyError
	if errors.As(err, &ve) && ve.Seq > 0 {
		return ve.Seq - 1
	}
	return 0
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
// that makes it unreadable. Stores write events as json.Marshal lays out
// Event: {"seq":N, first and ,"prev_hash":"H"} last. Once the bytes are
// known to be valid JSON those two are read in place, which halves the
// time of a full decode; a record of any other shape (only an edited one
// can be) is decoded in full.
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
