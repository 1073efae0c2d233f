//go:build e2e

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
	"rebootbot/store"

	bolt "go.etcd.io/bbolt"
)

// setFileSizeLimit sets the soft RLIMIT_FSIZE of the running process pid
// ("unlimited" or a number of bytes). Writes past the limit fail with
// EFBIG, as on a full disk; Go ignores the SIGXFSZ that comes with them.
func setFileSizeLimit(t *testing.T, pid int, limit string) {
	t.Helper()
	out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), "--fsize="+limit+":").CombinedOutput()
	if err != nil {
		t.Fatalf("prlimit --fsize=%s: %v\n%s", limit, err, out)
	}
}

// healthz returns the status of the running bot's /healthz.
func (w *world) healthz() int {
	resp, err := w.client.Get(w.current().base + "/healthz")
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestFullDiskShowsInHealth runs the bot under a file-size limit that
// makes every write to its database fail for real: the requester is told
// that nothing could be recorded, /healthz answers 503, and once the limit
// is lifted the write probe turns /healthz back to 200 by itself and
// requests work again.
func TestFullDiskShowsInHealth(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	instances := emulator.Generate(2, 21)
	w := newWorld(t, worldConfig{Instances: instances})
	p := w.start()
	if got := w.healthz(); got != http.StatusOK {
		t.Fatalf("healthz before = %d", got)
	}

	setFileSizeLimit(t, p.pid, "4096")
	d := w.command(requester, instances[0].ID+" disk is full")
	w.mustSend(d)
	reply := w.waitReply(d, "cannot record anything right now")
	if !strings.Contains(reply, "nothing was done") {
		t.Errorf("the requester was told %q", reply)
	}
	if got := w.healthz(); got != http.StatusServiceUnavailable {
		t.Errorf("healthz while the database cannot be written = %d, want 503", got)
	}
	if n := len(w.cards("R-1")); n != 0 {
		t.Errorf("%d cards posted for a request that was never recorded", n)
	}

	setFileSizeLimit(t, p.pid, "unlimited")
	w.waitUntil("healthz 200 after the limit was lifted", func() bool { return w.healthz() == http.StatusOK })
	id := w.mustRequest([]string{instances[1].ID})
	w.mustCard(id)
	w.stop()
	w.mustVerify()
	log, _ := os.ReadFile(w.logPath)
	for _, want := range []string{"BOT_DB cannot be written", "BOT_DB can be written again"} {
		if !bytes.Contains(log, []byte(want)) {
			t.Errorf("the log lacks %q", want)
		}
	}
}

// mustDamagedCopies writes a rebootbot database with a few hundred events
// and copies of it damaged four ways; it returns the copies by name.
func mustDamagedCopies(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	db, err := store.Open(good, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		ev := approval.Event{Type: approval.EventRejected, Actor: fmt.Sprintf("U0USER%04d", i), Instances: []string{"ins-aaaaaaaa"},
			Details: approval.Details{Reason: strings.Repeat("patch ", 20), Note: "not running"}}
		if _, _, err := db.Record(context.Background(), "", approval.Reply{}, []approval.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	b, err := bolt.Open(good, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	pageSize := b.Info().PageSize
	var root, hwm int
	b.View(func(tx *bolt.Tx) error {
		root, hwm = int(tx.Bucket([]byte("events")).Root()), int(tx.Size())/pageSize
		return nil
	})
	b.Close()
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	garbage := bytes.Clone(raw)
	for i := root * pageSize; i < (root+1)*pageSize; i += 8 {
		binary.LittleEndian.PutUint64(garbage[i:], uint64(i)*0x9e3779b97f4a7c15)
	}
	out := map[string]string{}
	for name, content := range map[string][]byte{
		"Truncated":   raw[:hwm*pageSize/2],
		"GarbagePage": garbage,
		"Empty":       {},
		"NotBbolt":    bytes.Repeat([]byte("not a database\n"), 1000),
	} {
		out[name] = filepath.Join(dir, name+".db")
		if err := os.WriteFile(out[name], content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestDamagedDatabase runs `bot audit verify` and `bot serve` on damaged
// files: each ends with exit status 1 and one line naming BOT_DB and the
// problem, never a panic or a fault, and the file keeps every byte.
func TestDamagedDatabase(t *testing.T) {
	bin := mustBotBinary(t)
	stub := slackstub.New()
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	stub.URL = srv.URL
	for name, path := range mustDamagedCopies(t) {
		t.Run(name, func(t *testing.T) {
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"audit", "verify"}, {"serve"}} {
				ctx, cancel := context.WithTimeout(context.Background(), waitLong)
				cmd := exec.CommandContext(ctx, bin, args...)
				cmd.Env = []string{
					"BOT_DB=" + path, "HOME=" + t.TempDir(), "BOT_LISTEN_ADDR=127.0.0.1:0",
					"SLACK_BOT_TOKEN=xoxb-damaged-test", "SLACK_SIGNING_SECRET=damaged-test-secret", "SLACK_API_URL=" + srv.URL + "/api/",
					"BOT_APPROVERS=UAPPROVER", "TENCENTCLOUD_SECRET_ID=AKIDdamaged", "TENCENTCLOUD_SECRET_KEY=damaged-key",
					"TENCENTCLOUD_ENDPOINT=http://127.0.0.1:1",
				}
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				start := time.Now()
				err := cmd.Run()
				cancel()
				code := cmd.ProcessState.ExitCode()
				lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
				last := lines[len(lines)-1]
				switch {
				case code != 1:
					t.Errorf("bot %s: exit status %d (%v), want 1; stderr:\n%s", strings.Join(args, " "), code, err, stderr.String())
				case !strings.Contains(last, "BOT_DB "+path+" is damaged: "):
					t.Errorf("bot %s: last line %q does not name BOT_DB and the problem", strings.Join(args, " "), last)
				case strings.Count(stderr.String(), "BOT_DB") != 1:
					t.Errorf("bot %s: want one line naming BOT_DB; stderr:\n%s", strings.Join(args, " "), stderr.String())
				}
				for _, bad := range []string{"panic", "goroutine ", "SIGBUS", "SIGSEGV", "fatal error"} {
					if strings.Contains(stderr.String(), bad) {
						t.Errorf("bot %s: stderr shows %q:\n%s", strings.Join(args, " "), bad, stderr.String())
					}
				}
				if strings.Contains(stdout.String(), "listening on") {
					t.Errorf("bot serve started on a damaged file")
				}
				t.Logf("bot %s (%s): %s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), last)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(after) != sha256.Sum256(before) {
				t.Errorf("the file changed")
			}
		})
	}
}
