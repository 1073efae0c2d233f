package approval

import "sync"

// byRequest is something this process remembers for each open request,
// dropped once the request is no longer open. It is safe for concurrent
// use; the zero value is empty.
type byRequest[V any] struct {
	mu sync.Mutex
	m  map[string]V
}

// get returns what is remembered for request id.
func (b *byRequest[V]) get(id string) (V, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[id]
	return v, ok
}

// set remembers v for request id.
func (b *byRequest[V]) set(id string, v V) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]V{}
	}
	b.m[id] = v
}

// getOrSet returns what is remembered for request id, remembering v first
// when nothing is.
func (b *byRequest[V]) getOrSet(id string, v V) V {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.m[id]; ok {
		return old
	}
	if b.m == nil {
		b.m = map[string]V{}
	}
	b.m[id] = v
	return v
}

// forget drops request id.
func (b *byRequest[V]) forget(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, id)
}

// keep drops every request not in open, so that requests ended elsewhere
// are not remembered.
func (b *byRequest[V]) keep(open map[string]bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id := range b.m {
		if !open[id] {
			delete(b.m, id)
		}
	}
}
