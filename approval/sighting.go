package approval

import "time"

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
	byRequest[time.Time] // when each request was first seen without a card
}

// graceEnd returns when the grace of request id's creator ends, counting
// from now if this is the first time id is seen without a card.
func (s *cardSightings) graceEnd(id string, now time.Time) time.Time {
	return s.getOrSet(id, now).Add(firstCardWait + creatorGrace)
}
