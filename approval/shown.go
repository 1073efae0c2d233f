package approval

import "sync"

// shownCards remembers which version of each open request its card was
// last updated to, when that update was not marked in the store. Only the
// update that shows a request's outcome is marked in the store; the ones
// before it (a click counted, the reboot started) are remembered here.
// Marking each would cost a write of its own, queued at the moment the
// store is busiest answering clicks, for a mark that the next update
// replaces within seconds. The memory is this process's only: after a
// restart, or on another replica, such a card is updated once more, which
// shows it again as it is.
type shownCards struct {
	mu      sync.Mutex
	version map[string]int
}

// shows reports whether request id's card was updated to version.
func (s *shownCards) shows(id string, version int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.version[id]
	return ok && v == version
}

// set remembers that request id's card shows version.
func (s *shownCards) set(id string, version int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.version == nil {
		s.version = map[string]int{}
	}
	s.version[id] = version
}

// forget drops request id, whose card is marked current in the store.
func (s *shownCards) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.version, id)
}

// keep drops every request not in open, so that requests ended elsewhere
// are not remembered.
func (s *shownCards) keep(open map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.version {
		if !open[id] {
			delete(s.version, id)
		}
	}
}
