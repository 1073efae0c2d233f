package approval

import (
	"sync"
	"time"
)

// startMarks lets the execution's next write store the mark that a
// request's start was posted in its thread. That post comes right after
// an approval starts a reboot, when the store is busiest answering clicks;
// the execution writes the request again moments later anyway (its
// intent, then its call), and the mark rides along. The reports job that
// posted the start waits for that write, and stores the mark itself when
// the execution ends first, when none comes within startMarkWait, or once
// executions have stopped.
//
// Until the mark is stored a crash forgets that the start was posted, and
// the restarted bot posts it again unless it can read the thread (see
// "Posting twice" in the README): the same as for a crash between a post
// and its own mark, for a few seconds longer.
type startMarks struct {
	mu      sync.Mutex
	owed    map[string]*startMark
	running map[string]bool // requests with an execution in this process
	closed  chan struct{}   // closed when executions have stopped
}

// startMark is the mark owed for one posted start.
type startMark struct {
	stored chan struct{} // closed once an execution's write stored it
	ended  chan struct{} // closed once no execution is left to store it
}

func newStartMarks() *startMarks {
	return &startMarks{owed: map[string]*startMark{}, running: map[string]bool{}, closed: make(chan struct{})}
}

// begin records that an execution of request id runs in this process.
func (m *startMarks) begin(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running[id] = true
}

// end records that the execution of request id has ended: a mark still
// owed will not ride one of its writes.
func (m *startMarks) end(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.running, id)
	if o, ok := m.owed[id]; ok {
		delete(m.owed, id)
		close(o.ended)
	}
}

// posted records that request id's start was posted, and returns the mark
// to wait on.
func (m *startMarks) posted(id string) *startMark {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.owed[id]; ok {
		return o
	}
	o := &startMark{stored: make(chan struct{}), ended: make(chan struct{})}
	if m.running[id] {
		m.owed[id] = o
	} else {
		close(o.ended)
	}
	return o
}

// apply marks r's start posted when it is owed, inside a write
// transaction's function, which may run more than once. It returns what
// to call once the write is committed, or nil.
func (m *startMarks) apply(r *Request, now time.Time) (stored func()) {
	m.mu.Lock()
	o, ok := m.owed[r.ID]
	m.mu.Unlock()
	if !ok {
		return nil
	}
	markStarted(r, now)
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.owed[r.ID] == o {
			delete(m.owed, r.ID)
			close(o.stored)
		}
	}
}

// drop forgets request id's owed mark: the reports job stores it itself.
func (m *startMarks) drop(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.owed, id)
}

// close tells the jobs waiting that no execution write will come.
func (m *startMarks) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.closed:
	default:
		close(m.closed)
	}
}

// markStarted records in r that its start was posted. A request denied
// before its first call forgets when it started, as the thread is owed
// nothing; if the start was posted meanwhile, the summary is owed after
// all.
func markStarted(r *Request, now time.Time) {
	r.StartAnnounced = true
	if r.StartedAt.IsZero() {
		r.StartedAt = now
	}
}
