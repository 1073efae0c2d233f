package approval

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
	byRequest[int] // the version each card shows
}

// shows reports whether request id's card was updated to version.
func (s *shownCards) shows(id string, version int) bool {
	v, ok := s.get(id)
	return ok && v == version
}
