package auditapi

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"rebootbot/approval"
	"rebootbot/store/bolttest"
)

// TestClientReadsWhatTheServerHolds checks that a Client dialled through
// the admin file streams the same bytes the log holds, for a query with
// every field set, and gets the same verify count.
func TestClientReadsWhatTheServerHolds(t *testing.T) {
	db := bolttest.Open(t, t0)
	mustFillLog(t, db, 40)
	mustStartAdmin(t, db)
	c, err := Dial(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range []approval.AuditQuery{
		{},
		{User: "U0ALICE", Instance: "ins-aaaaaaaa", Since: t0.Add(3e9), Until: t0.Add(35e9), Limit: 4, Oldest: true},
	} {
		var got, want strings.Builder
		collect := func(b *strings.Builder) func([]byte) error {
			return func(raw []byte) error { b.Write(raw); b.WriteByte('\n'); return nil }
		}
		if err := c.AuditJSON(ctx, q, collect(&got)); err != nil {
			t.Fatal(err)
		}
		if err := db.AuditJSON(ctx, q, collect(&want)); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() || got.Len() == 0 {
			t.Errorf("%+v: got\n%s\nwant\n%s", q, got.String(), want.String())
		}
	}
	n, err := c.Verify(ctx)
	if err != nil || n != 40 {
		t.Errorf("Verify = %d, %v; want 40 intact events", n, err)
	}
}

func TestDialRefusesBadFiles(t *testing.T) {
	db := bolttest.Open(t, t0)
	if _, err := Dial(db.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Dial without an admin file = %v, want os.ErrNotExist", err)
	}
	tests := []struct {
		name, content, want string
	}{
		{"Empty", `{}`, "not a valid admin file"},
		{"NotJSON", `addr=1`, "not a valid admin file"},
		{"NotLoopback", `{"addr":"192.0.2.1:80","token":"t"}`, "not a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(File(db.Path()), []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Dial(db.Path()); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Dial = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}
