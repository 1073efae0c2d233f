// Package testutil holds what the tests of several packages share: waiting
// for a condition with a deadline, a buffer that a writer and a reader may
// use at once, and a clock that moves only when told to.
//
// It imports only the standard library, so that any package's tests may
// use it, the domain's included.
package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond until it holds and fails the test with the message
// format and args make when timeout passes first. Polls start a millisecond
// apart and back off to 20ms, so a condition that holds soon is seen soon
// without spinning on one that takes seconds.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for "+format, append([]any{timeout}, args...)...)
	}
}

// Poll reports whether cond holds before timeout passes, polling it the way
// Eventually does; for a caller that does more than fail when it does not.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for !cond() {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(interval, left))
		interval = min(2*interval, 20*time.Millisecond)
	}
	return true
}

// SyncBuffer is a bytes.Buffer that goroutines may write while a test reads
// it: a log sink or a command's output. The zero value is ready to use.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
