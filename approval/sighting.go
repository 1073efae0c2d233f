package approval

import (
	"sync"
	"time"
)

// creatorGrace is how long past firstCardWait a shared engine leaves a
// request's card to the engine that created it.
const creatorGrace = 2 * time.Second

// cardSightings remembers when this engine first saw each open request
// without a card. A shared engine counts the creator's grace from then,
// not from the request's creation: under load a request may reach the
// store, and this engine, long after it was created, with its creator's
// card post still in flight. The memory is this process's only; after a
// restart the count starts again, which only delays a card that is owed.
type cardSightings struct {
	mu    sync.Mutex
	first map[string]time.Time
}

// graceEnd returns when the grace of request id's creator ends, counting
// from now if this is the first time id is seen without a card.
func (s *cardSightings) graceEnd(id string, now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first == nil {
		s.first = map[string]time.Time{}
	}
	at, ok := s.first[id]
	if !ok {
		at = now
		s.first[id] = at
	}
	return at.Add(firstCardWait + creatorGrace)
}

// forget drops request id, which has a card or has ended.
func (s *cardSightings) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.first, id)
}

// keep drops every request not in open, so that requests ended elsewhere
// are not remembered.
func (s *cardSightings) keep(open map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.first {
		if !open[id] {
			delete(s.first, id)
		}
	}
}
