package store

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"rebootbot/approval"
)

// compressedRecord marks a request stored as DEFLATE-compressed JSON. JSON
// never starts with this byte, so a request written as plain JSON by the
// first layout is told apart and read as it is.
//
// A request of a hundred instances is about 36 KB of JSON and only 4 KB
// compressed: the same field names and zones repeat for every instance.
// Each change to a request rewrites its record, and a record larger than a
// page needs a run of free pages side by side; at the JSON size the many
// changes of a fleet execution made the file grow by several times what it
// holds, and the bot's memory map of it with it.
const compressedRecord = 0x01

// plainRecordMax is the largest request stored as plain JSON. A request
// of a few instances fits in half a page as it is, and compressing it
// took a tenth of a millisecond inside the write transaction, which every
// click queued behind it waits for; reading it needs no inflating either.
const plainRecordMax = 2048

// recordWriter compresses requests. Requests are only written inside a
// write transaction, one at a time, so one compressor serves every write;
// it holds about a megabyte, which is why it is kept rather than made for
// each record.
type recordWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	zw  *flate.Writer
}

// encode returns r as a record, compressed unless it is small, in a slice
// of its own: bbolt keeps a value it is given until its transaction
// commits.
func (w *recordWriter) encode(r *approval.Request) ([]byte, error) {
	raw, err := json.Marshal(r)
	if err != nil || len(raw) <= plainRecordMax {
		return raw, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Reset()
	w.buf.WriteByte(compressedRecord)
	if w.zw == nil {
		if w.zw, err = flate.NewWriter(&w.buf, flate.BestSpeed); err != nil {
			return nil, err
		}
	} else {
		w.zw.Reset(&w.buf)
	}
	if _, err := w.zw.Write(raw); err != nil {
		return nil, err
	}
	if err := w.zw.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(w.buf.Bytes()), nil
}

// inflaters keeps decompressors between reads, which run concurrently.
var inflaters sync.Pool

// recordJSON returns the JSON of a stored request record: v itself when it
// is plain JSON, else v decompressed.
func recordJSON(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != compressedRecord {
		return v, nil
	}
	src := bytes.NewReader(v[1:])
	zr, _ := inflaters.Get().(io.ReadCloser)
	if zr == nil {
		zr = flate.NewReader(src)
	} else if err := zr.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, err
	}
	defer inflaters.Put(zr)
	out := bytes.NewBuffer(make([]byte, 0, 8*len(v)))
	if _, err := io.Copy(out, zr); err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return out.Bytes(), nil
}
