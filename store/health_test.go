package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/approval/storetest"
	"rebootbot/internal/testutil"
)

// childTest names the test a child process started by runInOwnProcess is
// to run.
const childTest = "REBOOTBOT_STORE_CHILD_TEST"

// runInOwnProcess runs the calling test again in a child process of the
// test binary and reports whether it did, in which case the caller returns
// at once; in the child it reports false and the test runs. The tests that
// limit the file size run there, because the limit binds every file of the
// process: the other tests' databases, and the log go test keeps of the
// files a test opened (-test.testlogfile), which the child is not given.
func runInOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childTest) == t.Name() {
		return false
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childTest+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s in its own process: %v\n%s", t.Name(), err, out)
	}
	return true
}

// limitFileSize makes every write of this process past the first page of
// any file fail with EFBIG, as on a disk that is full, until the returned
// function is called. Go ignores the SIGXFSZ that comes with it.
func limitFileSize(t *testing.T) (restore func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = 4096
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Cleanup(restore)
	return restore
}

// TestWriteFailureShows makes the file impossible to write for real: the
// failed write tells the user that nothing was recorded, the health check
// fails until a probe can write again, and the file is still whole.
func TestWriteFailureShows(t *testing.T) {
	if runInOwnProcess(t) {
		return
	}
	path := filepath.Join(t.TempDir(), "bot.db")
	var mu sync.Mutex
	var changes []error
	db := mustOpenPath(t, path, Options{Now: tick(t0), OnWritable: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, err)
	}})
	ctx := context.Background()
	mustCreate(t, db, storetest.NewRequest("U0ALICE", "ins-aaaaaaaa"))
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check before = %v", err)
	}

	restore := limitFileSize(t)
	err := db.Create(ctx, storetest.NewRequest("U0BOB", "ins-bbbbbbbb"), "", approval.Reply{}, []approval.Event{{Type: approval.EventRequested, Actor: "U0BOB"}})
	if got := approval.ErrorKind(err); got != approval.Unavailable {
		t.Fatalf("Create on a file that cannot grow = %v (kind %s), want Unavailable", err, got)
	}
	if got := approval.ErrorMessage(err); got != CannotRecord {
		t.Errorf("the user is told %q, want %q", got, CannotRecord)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Errorf("err = %v, want it to wrap EFBIG for the log", err)
	}
	if err := db.Check(ctx); err == nil {
		t.Fatal("Check = nil while the file cannot be written")
	}
	if err := db.Probe(ctx); err == nil {
		t.Fatal("Probe = nil while the file cannot be written")
	}
	if err := db.Check(ctx); err == nil {
		t.Fatal("Check = nil after a failed probe")
	}

	restore()
	if err := db.Check(ctx); err == nil {
		t.Fatal("Check = nil before any probe showed the file writable again")
	}
	if err := db.Probe(ctx); err != nil {
		t.Fatalf("Probe after the limit was lifted = %v", err)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check after a good probe = %v", err)
	}
	mustCreate(t, db, storetest.NewRequest("U0BOB", "ins-bbbbbbbb"))
	mu.Lock()
	if len(changes) != 2 || changes[0] == nil || changes[1] != nil {
		t.Errorf("OnWritable saw %v, want a failure then nil", changes)
	}
	mu.Unlock()

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(path, Options{Check: true})
	if err != nil {
		t.Fatalf("reopening with the full check after failed writes: %v", err)
	}
	defer again.Close()
	if n, err := again.Verify(ctx); err != nil || n != 2 {
		t.Errorf("Verify = %d, %v; want the two recorded events", n, err)
	}
}

// TestWriteProbeRuns shows the probe at work without anyone writing: it
// keeps the failure while the file cannot grow and clears it on its own
// once it can.
func TestWriteProbeRuns(t *testing.T) {
	if runInOwnProcess(t) {
		return
	}
	db := mustOpen(t, Options{ProbeEvery: time.Hour})
	ctx := context.Background()
	restore := limitFileSize(t)
	if err := db.Create(ctx, storetest.NewRequest("U0BOB", "ins-bbbbbbbb"), "", approval.Reply{}, nil); err == nil {
		t.Fatal("Create succeeded on a file that cannot grow")
	}
	restore()
	testutil.Eventually(t, 30*time.Second, func() bool { return db.Check(ctx) == nil }, "the probe to clear the failure")
}
