package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/auditapi"
	"rebootbot/store"
	"rebootbot/store/bolttest"

	bolt "go.etcd.io/bbolt"
)

// t0 is when the tests' audit logs start.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// cliResult is what one `bot audit` run printed and returned.
type cliResult struct {
	stdout, stderr string
	err            error
}

func runAudit(env map[string]string, args ...string) cliResult {
	var stdout, stderr bytes.Buffer
	err := audit(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return cliResult{stdout.String(), stderr.String(), err}
}

// mustRunAudit runs `bot audit` and fails the test on an error.
func mustRunAudit(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	res := runAudit(env, args...)
	if res.err != nil {
		t.Fatalf("audit %s: %v\nstderr: %s", strings.Join(args, " "), res.err, res.stderr)
	}
	return res
}

// mustFillLog files n requests through the Store API, by turns of three
// users on one or two of four instances; every third is approved and
// rebooted, the others denied, and every fifth command is rejected
// outright.
func mustFillLog(t *testing.T, db *store.DB, n int) {
	t.Helper()
	ctx := context.Background()
	users := []string{"U0ALICE", "U0BOB", "U0CAROL"}
	instances := []string{"ins-aaaaaaaa", "ins-bbbbbbbb", "ins-cccccccc", "ins-dddddddd"}
	for i := range n {
		user := users[i%len(users)]
		ids := instances[i%4 : i%4+1]
		if i%2 == 1 {
			ids = []string{instances[i%4], instances[(i+1)%4]}
		}
		if i%5 == 4 {
			mustRecord(t, db, approval.Event{Type: approval.EventRejected, Actor: user, Instances: ids, Details: approval.Details{ErrorMessage: "not running"}})
			continue
		}
		r := &approval.Request{
			Requester: user, Channel: "C0123", Reason: "kernel patch", StopType: approval.Soft,
			Region: "ap-guangzhou", Required: 1, ApproverGroups: [][]string{{"U0BOB"}},
			State: approval.Pending, CreatedAt: t0, ExpiresAt: t0.Add(30 * time.Minute),
		}
		for _, id := range ids {
			r.Instances = append(r.Instances, approval.Instance{ID: id, State: approval.InstanceRunning})
		}
		requested := approval.Event{Type: approval.EventRequested, Actor: user, Instances: ids, Details: approval.Details{Reason: r.Reason, StopType: r.StopType, Region: r.Region}}
		if err := db.Create(ctx, r, fmt.Sprintf("cmd-%d", i), approval.Reply{}, []approval.Event{requested}); err != nil {
			t.Fatal(err)
		}
		steps := []approval.EventType{approval.EventDenied}
		if i%3 == 0 {
			steps = []approval.EventType{approval.EventApproved, approval.EventExecuting, approval.EventCompleted}
		}
		for _, typ := range steps {
			_, _, _, err := db.Update(ctx, r.ID, "", func(r *approval.Request) (approval.Change, error) {
				r.State = map[approval.EventType]approval.State{
					approval.EventDenied: approval.Denied, approval.EventApproved: approval.Approved,
					approval.EventExecuting: approval.Executing, approval.EventCompleted: approval.Succeeded,
				}[typ]
				r.CardCurrent = r.State.Terminal()
				return approval.Change{Save: true, Events: []approval.Event{{Type: typ, Actor: "U0BOB"}}}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

func mustRecord(t *testing.T, db *store.DB, e approval.Event) {
	t.Helper()
	if _, _, err := db.Record(context.Background(), "", approval.Reply{}, []approval.Event{e}); err != nil {
		t.Fatal(err)
	}
}

// mustFilledFile writes a log of about 75 events to a new file and closes
// it, returning its path and every event, oldest first.
func mustFilledFile(t *testing.T) (string, []approval.Event) {
	t.Helper()
	db := bolttest.Open(t, t0)
	mustFillLog(t, db, 30)
	all := mustAudit(t, db, approval.AuditQuery{Oldest: true})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return db.Path(), all
}

// mustAudit returns the events matching q, as the store finds them.
func mustAudit(t *testing.T, db *store.DB, q approval.AuditQuery) []approval.Event {
	t.Helper()
	var out []approval.Event
	if err := db.Audit(context.Background(), q, func(e *approval.Event) error { out = append(out, *e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// storeSeqs returns the sequence numbers of the events the store finds for
// q in the closed file at path.
func storeSeqs(t *testing.T, path string, q approval.AuditQuery) []uint64 {
	t.Helper()
	db, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var seqs []uint64
	for _, e := range mustAudit(t, db, q) {
		seqs = append(seqs, e.Seq)
	}
	return seqs
}

// jsonlSeqs checks that every line is a canonical event and returns their
// sequence numbers.
func jsonlSeqs(t *testing.T, out string) []uint64 {
	t.Helper()
	var got []uint64
	for line := range strings.Lines(out) {
		line = strings.TrimSuffix(line, "\n")
		e, err := decodeEvent([]byte(line))
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		canonical, _ := e.CanonicalBytes()
		if string(canonical) != line {
			t.Errorf("line is not the canonical form:\n got %s\nwant %s", line, canonical)
		}
		got = append(got, e.Seq)
	}
	return got
}

// adminInfo is what a test reads of the admin file.
type adminInfo struct {
	Addr  string `json:"addr"`
	Token string `json:"token"`
}

func mustReadAdminFile(t *testing.T, dbPath string) adminInfo {
	t.Helper()
	raw, err := os.ReadFile(auditapi.File(dbPath))
	if err != nil {
		t.Fatal(err)
	}
	var info adminInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatalf("admin file: %v", err)
	}
	return info
}

// mustServeAudit serves db's audit log as the running bot does, until the
// test ends.
func mustServeAudit(t *testing.T, db *store.DB) *auditapi.Server {
	t.Helper()
	srv := auditapi.NewServer(db)
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestAuditListJSONL(t *testing.T) {
	path, all := mustFilledFile(t)
	res := mustRunAudit(t, nil, "list", "--format", "jsonl", "--db", path)
	got := jsonlSeqs(t, res.stdout)
	var want []uint64
	for _, e := range slices.Backward(all) {
		want = append(want, e.Seq)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want every event newest first %v", got, want)
	}
}

func TestAuditListCSV(t *testing.T) {
	path, all := mustFilledFile(t)
	res := mustRunAudit(t, nil, "list", "--format=csv", "--oldest", "--db", path)
	rows, err := csv.NewReader(strings.NewReader(res.stdout)).ReadAll()
	if err != nil {
		t.Fatalf("output is not CSV: %v", err)
	}
	if len(rows) != len(all)+1 {
		t.Fatalf("got %d rows, want a header and %d events", len(rows), len(all))
	}
	if !slices.Equal(rows[0], csvHeader) {
		t.Errorf("header %v, want %v", rows[0], csvHeader)
	}
	for i, row := range rows[1:] {
		e := all[i]
		var details approval.Details
		if err := json.Unmarshal([]byte(row[6]), &details); err != nil {
			t.Fatalf("row %d details %q: %v", i+1, row[6], err)
		}
		want := []string{strconv.FormatUint(e.Seq, 10), e.Time.Format(time.RFC3339Nano), e.RequestID, string(e.Type), e.Actor, strings.Join(e.Instances, " ")}
		if !slices.Equal(row[:6], want) || !equalJSON(t, details, e.Details) {
			t.Errorf("row %d = %v, want %v and details %+v", i+1, row, want, e.Details)
		}
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestAuditListTable(t *testing.T) {
	path, all := mustFilledFile(t)
	if len(all) <= 50 {
		t.Fatalf("need more than 50 events, have %d", len(all))
	}
	tests := []struct {
		name     string
		args     []string
		rows     int
		moreNote bool
	}{
		{"DefaultLimit", nil, 50, true},
		{"Limit", []string{"--limit", "3"}, 3, true},
		{"All", []string{"--limit", "0"}, len(all), false},
		{"ExactlyAll", []string{"--limit", strconv.Itoa(len(all))}, len(all), false},
		{"NoMatch", []string{"--instance", "ins-99999999"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mustRunAudit(t, nil, append([]string{"list", "--db", path}, tt.args...)...)
			lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
			if tt.rows == 0 {
				if res.stdout != "No matching audit events.\n" {
					t.Errorf("stdout %q, want the no-match sentence", res.stdout)
				}
				return
			}
			if !strings.HasPrefix(lines[0], "SEQ ") || len(lines) != tt.rows+1 {
				t.Fatalf("got %d lines starting %q, want a header and %d rows", len(lines), lines[0], tt.rows)
			}
			// The newest event comes first, columns aligned.
			newest := all[len(all)-1]
			if f := strings.Fields(lines[1]); f[0] != strconv.FormatUint(newest.Seq, 10) || f[3] != cell(newest.RequestID) {
				t.Errorf("first row %q, want seq %d of %s", lines[1], newest.Seq, newest.RequestID)
			}
			col := strings.Index(lines[0], "TYPE")
			if i := strings.Index(lines[1], string(newest.Type)); i != col {
				t.Errorf("type column at %d, header at %d:\n%s\n%s", i, col, lines[0], lines[1])
			}
			if got := strings.Contains(res.stderr, "More events match"); got != tt.moreNote {
				t.Errorf("more-events note %v, want %v (stderr %q)", got, tt.moreNote, res.stderr)
			}
		})
	}
}

func TestAuditListFilters(t *testing.T) {
	path, _ := mustFilledFile(t)
	tests := []struct {
		name string
		args []string
		want approval.AuditQuery
	}{
		{"Request", []string{"--request", "r-3"}, approval.AuditQuery{RequestID: "R-3"}},
		{"Instance", []string{"--instance", "ins-bbbbbbbb"}, approval.AuditQuery{Instance: "ins-bbbbbbbb"}},
		{"User", []string{"--user", "U0BOB"}, approval.AuditQuery{User: "U0BOB"}},
		{"SlackMention", []string{"--user", "<@U0BOB>"}, approval.AuditQuery{User: "U0BOB"}},
		{"SinceTime", []string{"--since", "2026-03-01T09:00:30Z"}, approval.AuditQuery{Since: t0.Add(30e9)}},
		{"UntilTime", []string{"--until", "2026-03-01T09:00:30Z"}, approval.AuditQuery{Until: t0.Add(30e9)}},
		{"SinceDate", []string{"--since", "2026-03-02"}, approval.AuditQuery{Since: t0.Add(15 * 3600e9)}},
		{"SinceLongAgo", []string{"--since", "36500d"}, approval.AuditQuery{}},
		{"UntilLongAgo", []string{"--until", "876000h"}, approval.AuditQuery{Until: t0.AddDate(-100, 0, 0)}},
		{"LimitOldest", []string{"--limit", "5", "--oldest"}, approval.AuditQuery{Limit: 5, Oldest: true}},
		{"Combined", []string{"--instance", "ins-aaaaaaaa", "--user", "U0ALICE", "--since", "2026-03-01T09:00:10Z", "--limit", "4"},
			approval.AuditQuery{Instance: "ins-aaaaaaaa", User: "U0ALICE", Since: t0.Add(10e9), Limit: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mustRunAudit(t, nil, append([]string{"list", "--format", "jsonl", "--db", path}, tt.args...)...)
			got := jsonlSeqs(t, res.stdout)
			if want := storeSeqs(t, path, tt.want); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

func TestAuditUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		help string // the command whose --help the error points to
	}{
		{"NoCommand", nil, "bot audit"},
		{"UnknownCommand", []string{"show"}, "bot audit"},
		{"FlagForCommand", []string{"--colour"}, "bot audit"},
		{"UnknownFlag", []string{"list", "--colour"}, "bot audit"},
		{"BadFormat", []string{"list", "--format", "xml"}, "bot audit"},
		{"BadRequest", []string{"list", "--request", "42"}, "bot audit"},
		{"BadInstance", []string{"list", "--instance", "ins-XYZ"}, "bot audit"},
		{"BadUser", []string{"list", "--user", "<@>"}, "bot audit"},
		{"BadSince", []string{"list", "--since", "yesterday"}, "bot audit"},
		{"NegativeSince", []string{"list", "--since", "-5h"}, "bot audit"},
		{"NaNDays", []string{"list", "--since", "NaNd"}, "bot audit"},
		{"NegativeLimit", []string{"list", "--limit", "-3"}, "bot audit"},
		{"LimitMinusOne", []string{"list", "--limit", "-1"}, "bot audit"},
		{"LimitMinusOneJSONL", []string{"list", "--format", "jsonl", "--limit=-1"}, "bot audit"},
		{"ExtraArgument", []string{"list", "R-1"}, "bot audit"},
		{"VerifyArgument", []string{"verify", "now"}, "bot audit"},
		{"VerifyFlag", []string{"verify", "--limit", "3"}, "bot audit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runAudit(nil, tt.args...)
			mustBeUsageError(t, res.err, tt.help)
			if res.stdout != "" || res.stderr != "" {
				t.Errorf("printed on a bad command line (main prints the one line):\nstdout %q\nstderr %q", res.stdout, res.stderr)
			}
		})
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"list", "-h"}, {"verify", "--help"}} {
		res := runAudit(nil, args...)
		if res.err != nil || !strings.Contains(res.stdout, "usage: bot audit") || res.stderr != "" {
			t.Errorf("audit %v = %v, stdout %q; want the usage on stdout", args, res.err, res.stdout)
		}
	}
}

func TestAuditVerify(t *testing.T) {
	path, all := mustFilledFile(t)
	res := mustRunAudit(t, nil, "verify", "--db", path)
	if want := "audit log intact: " + strconv.Itoa(len(all)) + " events\n"; res.stdout != want {
		t.Errorf("stdout %q, want %q", res.stdout, want)
	}

	mustTamper(t, path, 7)
	res = runAudit(nil, "verify", "--db", path)
	var exit *exitError
	if !errors.As(res.err, &exit) || exit.Code != 1 {
		t.Fatalf("got %v, want an *exitError with code 1", res.err)
	}
	if !strings.Contains(res.stdout, "BROKEN at record 7: content changed") || !strings.Contains(res.stdout, "6 records before it are intact") {
		t.Errorf("stdout %q does not name record 7", res.stdout)
	}
}

// mustTamper edits record seq of the file at path behind the store's back.
func mustTamper(t *testing.T, path string, seq uint64) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bolt.Tx) error {
		events := tx.Bucket([]byte("events"))
		key := binary.BigEndian.AppendUint64(nil, seq)
		raw := bytes.Clone(events.Get(key))
		raw = bytes.Replace(raw, []byte(`"actor":"`), []byte(`"actor":"X`), 1)
		return events.Put(key, raw)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAuditFindsDatabase(t *testing.T) {
	path, all := mustFilledFile(t)
	want := "audit log intact: " + strconv.Itoa(len(all)) + " events\n"
	if res := mustRunAudit(t, map[string]string{"BOT_DB": path}, "verify"); res.stdout != want {
		t.Errorf("with BOT_DB: stdout %q, want %q", res.stdout, want)
	}
	missing := filepath.Join(t.TempDir(), "none.db")
	res := runAudit(map[string]string{"BOT_DB": path}, "verify", "--db", missing)
	if res.err == nil || !strings.Contains(res.err.Error(), "no database at "+missing) {
		t.Errorf("--db over BOT_DB with a missing file: got %v", res.err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("audit created %s", missing)
	}
}

func TestAuditTableShowsTypedTextSafely(t *testing.T) {
	db := bolttest.Open(t, t0)
	mustRecord(t, db, approval.Event{
		Type:    approval.EventRejected,
		Actor:   "U0ALICE\x1b[2J",
		Details: approval.Details{Reason: "disk\tfull\n\x1b[31mred\u202eevil", Note: `say "hi"`},
	})
	db.Close()
	res := mustRunAudit(t, nil, "list", "--db", db.Path())
	if strings.ContainsAny(res.stdout, "\x1b\t\u202e") || strings.Count(res.stdout, "\n") != 2 {
		t.Errorf("table output carries control characters:\n%q", res.stdout)
	}
	if !strings.Contains(res.stdout, `note="say \"hi\""`) || !strings.Contains(res.stdout, "U0ALICE?[2J") {
		t.Errorf("table output %q lacks the quoted note or the cleaned actor", res.stdout)
	}
}

func TestAuditWhileLockedWithoutAdmin(t *testing.T) {
	holder := bolttest.Open(t, t0)
	res := runAudit(nil, "list", "--db", holder.Path())
	if res.err == nil || !strings.Contains(res.err.Error(), "locked by another process that does not serve audit requests") {
		t.Errorf("got %v, want the locked-without-admin explanation", res.err)
	}
}

// TestAuditThroughAdmin runs every command against a database held by
// another process (the test, standing in for the running bot) and compares
// the output with what the same commands print once the file is free.
func TestAuditThroughAdmin(t *testing.T) {
	holder := bolttest.Open(t, t0)
	mustFillLog(t, holder, 30)
	admin := mustServeAudit(t, holder)
	info := mustReadAdminFile(t, holder.Path())

	commands := [][]string{
		{"list"},
		{"list", "--format", "jsonl"},
		{"list", "--format", "csv", "--oldest", "--limit", "0"},
		{"list", "--format", "jsonl", "--user", "U0BOB", "--instance", "ins-cccccccc", "--since", "2026-03-01T09:00:20Z", "--until", "24h"},
		{"list", "--request", "R-2"},
		{"verify"},
	}
	remote := make([]cliResult, len(commands))
	for i, args := range commands {
		remote[i] = mustRunAudit(t, nil, append(args, "--db", holder.Path())...)
		if strings.Contains(remote[i].stdout+remote[i].stderr, info.Token) {
			t.Fatalf("audit %v printed the admin token", args)
		}
	}
	if err := admin.Close(); err != nil {
		t.Fatal(err)
	}
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	for i, args := range commands {
		local := mustRunAudit(t, nil, append(args, "--db", holder.Path())...)
		if remote[i] != local {
			t.Errorf("audit %v through the bot:\n%s\nfrom the file:\n%s", args, remote[i].stdout, local.stdout)
		}
	}
	if !strings.Contains(remote[0].stdout, "SEQ ") || !strings.HasPrefix(remote[5].stdout, "audit log intact") {
		t.Errorf("unexpected output: %q, %q", remote[0].stdout, remote[5].stdout)
	}
}

func TestAuditVerifyThroughAdminFindsBadRecord(t *testing.T) {
	path, _ := mustFilledFile(t)
	mustTamper(t, path, 3)
	holder, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Close() })
	mustServeAudit(t, holder)
	res := runAudit(nil, "verify", "--db", holder.Path())
	var exit *exitError
	if !errors.As(res.err, &exit) || exit.Code != 1 || !strings.Contains(res.stdout, "BROKEN at record 3: content changed") {
		t.Errorf("got %v, stdout %q; want exit 1 naming record 3", res.err, res.stdout)
	}
}

func TestAuditStaleAdminFile(t *testing.T) {
	holder := bolttest.Open(t, t0)
	mustServeAudit(t, holder)
	info := mustReadAdminFile(t, holder.Path())
	const forged = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name string
		info adminInfo
		want string
	}{
		{"WrongToken", adminInfo{Addr: info.Addr, Token: forged}, "refused the admin token"},
		{"NotLoopback", adminInfo{Addr: "192.0.2.1:80", Token: forged}, "not a loopback address"},
		{"Empty", adminInfo{}, "not a valid admin file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, _ := json.Marshal(tt.info)
			if err := os.WriteFile(auditapi.File(holder.Path()), raw, 0o600); err != nil {
				t.Fatal(err)
			}
			res := runAudit(nil, "verify", "--db", holder.Path())
			if res.err == nil || !strings.Contains(res.err.Error(), tt.want) {
				t.Fatalf("got %v, want an error saying %q", res.err, tt.want)
			}
			if strings.Contains(res.err.Error()+res.stdout+res.stderr, forged) {
				t.Error("the token was printed")
			}
		})
	}
}

func TestAuditTableShowsSelection(t *testing.T) {
	db := bolttest.Open(t, t0)
	mustRecord(t, db, approval.Event{
		Type: approval.EventRejected, Actor: "U0ALICE", Instances: []string{"ins-aaaaaaaa"},
		Details: approval.Details{Reason: "rollout", Selector: []string{"tag:role=web", "zone:ap-guangzhou-3"}, Fingerprint: "3627f582"},
	})
	db.Close()
	res := mustRunAudit(t, nil, "list", "--db", db.Path())
	if !strings.Contains(res.stdout, `selector="tag:role=web zone:ap-guangzhou-3" fingerprint=3627f582`) {
		t.Errorf("table output lacks the selector and the fingerprint:\n%s", res.stdout)
	}
}
