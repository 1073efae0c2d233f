package background

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestCloseWaitsForRunningWork checks that Close returns only once work
// that was running has finished, and does not cancel it while the
// deadline has not passed.
func TestCloseWaitsForRunningWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := New()
		release := make(chan struct{})
		var cancelled bool
		if !g.Go(func(ctx context.Context) {
			<-release
			cancelled = ctx.Err() != nil
		}) {
			t.Fatal("Go refused work on an open group")
		}
		closed := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			closed <- g.Close(ctx)
		}()
		synctest.Wait()
		select {
		case err := <-closed:
			t.Fatalf("Close returned %v while work was running", err)
		default:
		}
		close(release)
		if err := <-closed; err != nil {
			t.Errorf("Close: %v", err)
		}
		if cancelled {
			t.Error("work was cancelled although it finished before the deadline")
		}
	})
}

// TestCloseCancelsAfterDeadline checks that work still running when
// Close's deadline passes sees its context cancelled, and that Close waits
// for it to return and reports the deadline.
func TestCloseCancelsAfterDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := New()
		var ended time.Time
		g.Go(func(ctx context.Context) {
			<-ctx.Done()
			ended = time.Now()
		})
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := g.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close = %v, want %v", err, context.DeadlineExceeded)
		}
		if got, want := ended.Sub(start), 30*time.Second; got != want {
			t.Errorf("work ended after %v, want %v", got, want)
		}
	})
}

// TestRefusesAfterClose checks that neither Go nor Run starts work once
// Close has been called.
func TestRefusesAfterClose(t *testing.T) {
	g := New()
	if g.Closed() {
		t.Fatal("new group reports closed")
	}
	if err := g.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !g.Closed() {
		t.Error("Closed = false after Close")
	}
	ran := false
	if g.Go(func(context.Context) { ran = true }) {
		t.Error("Go started work after Close")
	}
	if err := g.Run(context.Background(), func(context.Context) { ran = true }); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want %v", err, ErrClosed)
	}
	if ran {
		t.Error("work ran after Close")
	}
	if err := g.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRunContext checks that Run's work ends with the caller's context or
// with the group's cancellation, whichever comes first, and that Close
// waits for it.
func TestRunContext(t *testing.T) {
	t.Run("CallerCancels", func(t *testing.T) {
		g := New()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var err error
		if rerr := g.Run(ctx, func(ctx context.Context) { err = ctx.Err() }); rerr != nil {
			t.Fatalf("Run: %v", rerr)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("work's context error = %v, want %v", err, context.Canceled)
		}
	})
	t.Run("CloseCancels", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g := New()
			returned := make(chan error, 1)
			go func() {
				returned <- g.Run(context.Background(), func(ctx context.Context) { <-ctx.Done() })
			}()
			synctest.Wait()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := g.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Close = %v, want %v", err, context.DeadlineExceeded)
			}
			synctest.Wait() // Run returns just after its work is counted done
			select {
			case err := <-returned:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			default:
				t.Error("Run did not return once Close cancelled its work")
			}
		})
	})
}
