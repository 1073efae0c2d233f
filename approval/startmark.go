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
// none comes within startMarkWait or once executions have stopped.
//
// Until the mark is stored a crash forgets that the start was posted, and
// the restarted bot posts it again unless it can read the thread (see
// "Posting twice" in the README): the same as for a crash between a post
// and its own mark, for a few seconds longer.
type startMarks struct {
	mu     sync.Mutex
	owed   map[string]chan struct{} // closed once a write stored the mark
	closed chan struct{}            // closed when executions have stopped
}

func newStartMarks() *startMarks {
	return &startMarks{owed: map[string]chan struct{}{}, closed: make(chan struct{})}
}

// posted records that request id's start was posted, and returns a
// channel closed once an execution's write stored the mark.
func (m *startMarks) posted(id string) <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.owed[id]
	if !ok {
		ch = make(chan struct{})
		m.owed[id] = ch
	}
	return ch
}

// apply marks r's start posted when it is owed, inside a write
// transaction's function, which may run more than once. It returns what
// to call once the write is committed, or nil.
func (m *startMarks) apply(r *Request, now time.Time) (stored func()) {
	m.mu.Lock()
	ch, ok := m.owed[r.ID]
	m.mu.Unlock()
	if !ok {
		return nil
	}
	markStarted(r, now)
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.owed[r.ID] == ch {
			delete(m.owed, r.ID)
			close(ch)
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
