package approval

import "context"

// NoticeJobs is how many card and thread jobs run at once. Each holds its
// decoded request while Slack answers, and Slack takes a channel's
// messages about one a second: with a hundred fleet requests changing at
// once, letting every job load its request to wait its turn would hold
// megabytes for nothing. A job waiting for its turn holds only the ID.
const NoticeJobs = 16

// jobTurn is one background job's claim on one of NoticeJobs turns. Only
// the job's own goroutine uses it.
type jobTurn struct {
	slots chan struct{} // a token in it for each turn taken
	lull  *lull         // waited for before a turn is taken, when set
	held  bool
}

// jobTurnKey carries a job's turn in its context, for offTurn.
type jobTurnKey struct{}

// take waits for a lull in commands and clicks, then for a turn, unless
// one is held; it reports false when ctx ends first.
func (t *jobTurn) take(ctx context.Context) bool {
	if t.held {
		return true
	}
	if t.lull != nil && !t.lull.wait(ctx) {
		return false
	}
	select {
	case t.slots <- struct{}{}:
		t.held = true
		return true
	case <-ctx.Done():
		return false
	}
}

// give hands the turn back, if one is held.
func (t *jobTurn) give() {
	if t.held {
		<-t.slots
		t.held = false
	}
}

// offTurn runs wait with the turn of ctx's job handed back, for a job that
// waits on something other than Slack while holding no request (the
// execution's next write, which may take seconds); otherwise a few such
// jobs would keep every other card and report waiting behind them. It
// then takes a turn again, and reports false if ctx ended first. Outside a
// job it just runs wait.
func offTurn(ctx context.Context, wait func()) bool {
	t, _ := ctx.Value(jobTurnKey{}).(*jobTurn)
	if t == nil {
		wait()
		return true
	}
	t.give()
	wait()
	return t.take(ctx)
}
