// Package background runs work that must end with its owner: an HTTP
// handler's late replies, an engine's executions, an admin endpoint's
// lookups. A Group starts work until it is closed, refuses work after
// that, lets running work finish until a deadline, and then cancels what
// is left.
package background

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by Run once the group is closed.
var ErrClosed = errors.New("background: closed")

// Group is a set of background work that ends together. The zero value is
// not usable; call New.
type Group struct {
	ctx    context.Context // parent of all work; cancelled by Close after its deadline
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed and the Add side of wg
	closed bool
	wg     sync.WaitGroup
}

// New returns an open Group.
func New() *Group {
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{ctx: ctx, cancel: cancel}
}

// Go runs fn in its own goroutine with a context that Close cancels, and
// reports whether it was started: after Close it starts nothing.
func (g *Group) Go(fn func(ctx context.Context)) bool {
	if !g.add() {
		return false
	}
	go func() {
		defer g.wg.Done()
		fn(g.ctx)
	}()
	return true
}

// Run runs fn in the caller's goroutine as work of the group: its context
// ends when ctx ends or when Close cancels the group's work. After Close it
// returns ErrClosed without calling fn.
func (g *Group) Run(ctx context.Context, fn func(ctx context.Context)) error {
	if !g.add() {
		return ErrClosed
	}
	defer g.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(g.ctx, cancel)
	defer stop()
	fn(ctx)
	return nil
}

func (g *Group) add() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

// Context returns the context the group's work runs under, for work that
// is done in the caller's goroutine but must not outlive the group: it is
// cancelled when Close gives up waiting.
func (g *Group) Context() context.Context { return g.ctx }

// Closed reports whether Close has been called.
func (g *Group) Closed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// Close refuses new work at once, waits for running work until ctx ends,
// then cancels the context of what is still running and waits for it to
// return. It returns ctx's error when work had to be cancelled. Calling it
// again waits again and returns nil once everything has ended.
func (g *Group) Close(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		g.cancel()
		return nil
	case <-ctx.Done():
		g.cancel()
		<-done
		return ctx.Err()
	}
}
