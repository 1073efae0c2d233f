package approval

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzChainFields checks that reading a record never panics and that the
// in-place reading of canonical records agrees with a full decode.
func FuzzChainFields(f *testing.F) {
	e := Event{Seq: 7, Time: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), Type: EventApproved, Actor: "U0BOB", PrevHash: HashBytes([]byte("x"))}
	canonical, _ := e.CanonicalBytes()
	f.Add(canonical)
	f.Add([]byte(`{"seq":1,"prev_hash":""}`))
	f.Add([]byte(`{"seq":1,"prev_hash":"}`))
	f.Add([]byte(`{"prev_hash":"ab","seq":2}`))
	f.Add([]byte(`{"seq":-1,"prev_hash":"ab"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, raw []byte) {
		seq, prev, problem := chainFields(raw)
		if problem != "" {
			return
		}
		var rec struct {
			Seq      uint64 `json:"seq"`
			PrevHash string `json:"prev_hash"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatalf("chainFields read %q, which does not decode: %v", raw, err)
		}
		if bytes.Count(raw, []byte(`"seq"`)) == 1 && bytes.Count(raw, []byte(`"prev_hash"`)) == 1 && (rec.Seq != seq || rec.PrevHash != prev) {
			t.Errorf("chainFields(%q) = %d, %q; a full decode says %d, %q", raw, seq, prev, rec.Seq, rec.PrevHash)
		}
	})
}
