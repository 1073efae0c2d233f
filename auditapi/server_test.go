package auditapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
	"rebootbot/store"
	"rebootbot/store/bolttest"
)

// t0 is when the tests' logs start.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

var (
	testUsers     = []string{"U0ALICE", "U0BOB", "U0CAROL"}
	testInstances = []string{"ins-aaaaaaaa", "ins-bbbbbbbb", "ins-cccccccc", "ins-dddddddd"}
)

// mustFillLog records n events by turns of the test users on turns of the
// test instances; every fifth files a request on an instance of its own.
func mustFillLog(t *testing.T, db *store.DB, n int) {
	t.Helper()
	for i := range n {
		if i%5 == 0 {
			r := &approval.Request{
				Requester: testUsers[i%len(testUsers)], Channel: "C0123", Reason: "kernel patch",
				StopType: approval.Soft, Region: "ap-guangzhou", Required: 1, ApproverGroups: [][]string{{"U0BOB"}},
				State: approval.Pending, CreatedAt: t0, ExpiresAt: t0.Add(30 * time.Minute),
				Instances: []approval.Instance{{ID: fmt.Sprintf("ins-%08d", i), State: approval.InstanceRunning}},
			}
			requested := approval.Event{Type: approval.EventRequested, Actor: r.Requester, Instances: r.InstanceIDs()}
			if err := db.Create(context.Background(), r, "", approval.Reply{}, []approval.Event{requested}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		_, _, err := db.Record(context.Background(), "", approval.Reply{}, []approval.Event{{
			Type:      approval.EventRejected,
			Actor:     testUsers[i%len(testUsers)],
			Instances: []string{testInstances[i%len(testInstances)]},
			Details:   approval.Details{ErrorMessage: "not running"},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// mustStartAdmin serves db on a loopback port until the test ends.
func mustStartAdmin(t *testing.T, db *store.DB) (*Server, adminInfo) {
	t.Helper()
	admin := NewServer(db)
	if err := admin.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin, mustReadAdminFile(t, db.Path())
}

func mustReadAdminFile(t *testing.T, dbPath string) adminInfo {
	t.Helper()
	raw, err := os.ReadFile(File(dbPath))
	if err != nil {
		t.Fatal(err)
	}
	var info adminInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatalf("admin file %q: %v", raw, err)
	}
	return info
}

// get asks the admin endpoint with the given Authorization header.
func get(t *testing.T, addr, path, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestAdminFile(t *testing.T) {
	db := bolttest.Open(t, t0)
	admin, info := mustStartAdmin(t, db)
	st, err := os.Stat(File(db.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("admin file mode %v, want 0600", got)
	}
	host, _, err := net.SplitHostPort(info.Addr)
	if err != nil || host != "127.0.0.1" || info.Addr != admin.Addr() {
		t.Errorf("addr %q (Addr() %q), want 127.0.0.1:port", info.Addr, admin.Addr())
	}
	if len(info.Token) != 64 || strings.Trim(info.Token, "0123456789abcdef") != "" {
		t.Errorf("token is not 32 random bytes in hex (%d chars)", len(info.Token))
	}
	if info.PID != os.Getpid() {
		t.Errorf("pid %d, want %d", info.PID, os.Getpid())
	}
	if err := admin.Start(context.Background()); err == nil {
		t.Error("a second Start succeeded")
	}
	if err := admin.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(File(db.Path())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin file left behind after Close: %v", err)
	}
	if err := admin.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestAdminRequiresToken(t *testing.T) {
	db := bolttest.Open(t, t0)
	_, info := mustStartAdmin(t, db)
	tests := []struct {
		name string
		auth string
		want int
	}{
		{"Missing", "", http.StatusUnauthorized},
		{"Wrong", "Bearer " + strings.Repeat("0", 64), http.StatusUnauthorized},
		{"Prefix", "Bearer " + info.Token[:32], http.StatusUnauthorized},
		{"Longer", "Bearer " + info.Token + "0", http.StatusUnauthorized},
		{"OtherScheme", "Basic " + info.Token, http.StatusUnauthorized},
		{"Bare", info.Token, http.StatusUnauthorized},
		{"Right", "Bearer " + info.Token, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/audit/events", "/audit/verify"} {
				status, body := get(t, info.Addr, path, tt.auth)
				if status != tt.want {
					t.Errorf("%s: status %d, want %d", path, status, tt.want)
				}
				if strings.Contains(body, info.Token) {
					t.Errorf("%s: the body carries the token", path)
				}
			}
		})
	}
	if status, _ := get(t, info.Addr, "/audit/nothing", "Bearer "+info.Token); status != http.StatusNotFound {
		t.Errorf("unknown path: status %d, want 404", status)
	}
}

func TestAdminEvents(t *testing.T) {
	db := bolttest.Open(t, t0)
	mustFillLog(t, db, 20)
	_, info := mustStartAdmin(t, db)
	auth := "Bearer " + info.Token
	tests := []struct {
		name  string
		query string
		want  approval.AuditQuery
	}{
		{"All", "", approval.AuditQuery{}},
		{"UserLimit", "?user=U0BOB&limit=3", approval.AuditQuery{User: "U0BOB", Limit: 3}},
		{"InstanceOldest", "?instance=ins-aaaaaaaa&oldest=1", approval.AuditQuery{Instance: "ins-aaaaaaaa", Oldest: true}},
		{"Window", "?since=2026-03-01T09:00:10Z&until=2026-03-01T09:00:40Z", approval.AuditQuery{Since: t0.Add(10 * time.Second), Until: t0.Add(40 * time.Second)}},
		{"Request", "?request=R-2", approval.AuditQuery{RequestID: "R-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, info.Addr, "/audit/events"+tt.query, auth)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			var want strings.Builder
			err := db.AuditJSON(context.Background(), tt.want, func(raw []byte) error {
				want.Write(raw)
				want.WriteByte('\n')
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if body != want.String() || body == "" {
				t.Errorf("got\n%s\nwant\n%s", body, want.String())
			}
		})
	}
	for _, bad := range []string{"?limit=-1", "?limit=ten", "?since=yesterday", "?since=24h", "?until=x", "?oldest=maybe"} {
		if status, _ := get(t, info.Addr, "/audit/events"+bad, auth); status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, status)
		}
	}
	status, body := get(t, info.Addr, "/audit/verify", auth)
	var reply verifyReply
	if err := json.Unmarshal([]byte(body), &reply); err != nil || status != http.StatusOK || reply.Events == 0 || reply.BadSeq != 0 {
		t.Errorf("verify: status %d body %q", status, body)
	}
}

// TestAdminStopsWithContext checks that ending Start's context closes the
// endpoint and removes the admin file, as when the bot shuts down.
func TestAdminStopsWithContext(t *testing.T) {
	db := bolttest.Open(t, t0)
	ctx, cancel := context.WithCancel(context.Background())
	admin := NewServer(db)
	if err := admin.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	file := File(db.Path())
	cancel()
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, err := os.Stat(file)
		return errors.Is(err, os.ErrNotExist)
	}, "the admin file %s to go once the context ended", file)
	if conn, err := net.Dial("tcp", admin.Addr()); err == nil {
		conn.Close()
		t.Error("endpoint still accepts connections")
	}
}
