package store

import (
	"bytes"
	"sync"

	"rebootbot/approval"
)

// maxDecoded bounds how many requests decodedCache keeps.
const maxDecoded = 256

// maxDecodedInstances is the most instances a request decodedCache keeps
// may have. A fleet's requests are read less often for their size, and
// keeping them decoded would cost memory that a fleet execution needs.
const maxDecodedInstances = 10

// decodedCache keeps recently read or written small requests decoded,
// each with the record it was decoded from. A request is read and
// rewritten many times in a few seconds of its life (the click, the
// execution, the card, the thread), and decoding its record is most of
// what a read costs. An entry is used only when the stored record is, byte
// for byte, the one it came from, so it is never stale and never needs to
// be invalidated; callers get a copy of their own.
type decodedCache struct {
	mu      sync.Mutex
	entries map[uint64]decodedEntry
}

type decodedEntry struct {
	record []byte
	r      *approval.Request
}

// get returns a copy of the request decoded from record, if kept.
func (c *decodedCache) get(seq uint64, record []byte) *approval.Request {
	c.mu.Lock()
	e, ok := c.entries[seq]
	c.mu.Unlock()
	if !ok || !bytes.Equal(e.record, record) {
		return nil
	}
	return e.r.Clone()
}

// put keeps a copy of r, decoded from (or encoded as) record, dropping an
// arbitrary entry when full.
func (c *decodedCache) put(seq uint64, record []byte, r *approval.Request) {
	if len(r.Instances) > maxDecodedInstances {
		c.mu.Lock()
		delete(c.entries, seq)
		c.mu.Unlock()
		return
	}
	e := decodedEntry{record: bytes.Clone(record), r: r.Clone()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[uint64]decodedEntry, maxDecoded)
	}
	if _, ok := c.entries[seq]; !ok && len(c.entries) >= maxDecoded {
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[seq] = e
}
