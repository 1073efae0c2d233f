//go:build e2e

// The harness's readers of the database: the audit CLI run as its own
// process, and the store opened read-only once the bot has stopped.

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"time"

	"rebootbot/approval"
	"rebootbot/store"
)

// cli runs the bot binary with args (an audit command) on the world's
// database and returns its stdout and exit code.
func (w *world) cli(args ...string) (string, int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.bin, args...)
	cmd.Env = []string{"BOT_DB=" + w.db, "HOME=" + w.dir}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		w.t.Fatalf("bot %s: %v", strings.Join(args, " "), err)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return stdout.String() + stderr.String(), code
	}
	return stdout.String(), 0
}

// mustVerify runs `bot audit verify` and fails unless it exits 0.
func (w *world) mustVerify() {
	w.t.Helper()
	out, code := w.cli("audit", "verify")
	if code != 0 || !strings.Contains(out, "audit log intact") {
		w.t.Fatalf("bot audit verify exited %d: %s", code, out)
	}
}

// auditJSONL runs `bot audit list --format jsonl --oldest` and returns its
// raw output.
func (w *world) auditJSONL() string {
	w.t.Helper()
	out, code := w.cli("audit", "list", "--format", "jsonl", "--oldest", "--limit", "0")
	if code != 0 {
		w.t.Fatalf("bot audit list exited %d: %s", code, out)
	}
	return out
}

// mustEvents returns the whole audit log, oldest first, read with the CLI.
func (w *world) mustEvents() []approval.Event {
	w.t.Helper()
	var events []approval.Event
	for _, line := range strings.Split(strings.TrimSpace(w.auditJSONL()), "\n") {
		if line == "" {
			continue
		}
		var e approval.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			w.t.Fatalf("audit list printed a line that is not an event: %v", err)
		}
		events = append(events, e)
	}
	return events
}

// mustRequests reads requests ids from the database; the bot must be
// stopped. It also returns the requests the store still owes work for.
func (w *world) mustRequests(ids []string) (map[string]*approval.Request, []*approval.Request) {
	w.t.Helper()
	db, err := store.Open(w.db, store.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		w.t.Fatalf("open the store: %v", err)
	}
	defer db.Close()
	ctx := context.Background()
	out := make(map[string]*approval.Request, len(ids))
	for _, id := range ids {
		r, err := db.Get(ctx, id)
		if err != nil {
			w.t.Fatalf("get %s: %v", id, err)
		}
		out[id] = r
	}
	open, err := db.Open(ctx)
	if err != nil {
		w.t.Fatalf("open requests: %v", err)
	}
	return out, open
}
