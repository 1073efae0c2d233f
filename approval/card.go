package approval

import (
	"context"
	"time"
)

// maxNotifyAttempts bounds the retries of one card update or report before
// it is left to the next sweep of the expiry loop.
const maxNotifyAttempts = 6

// refreshCard brings request id's card up to date in the background. At
// most one refresh per request runs; a change that arrives meanwhile makes
// it run once more, so the card always ends showing the latest version.
func (e *Engine) refreshCard(id string) {
	e.mu.Lock()
	if e.refreshing[id] {
		e.dirty[id] = true
		e.mu.Unlock()
		return
	}
	e.refreshing[id] = true
	e.mu.Unlock()
	started := e.spawn(func(ctx context.Context) {
		for {
			e.updateCard(ctx, id)
			e.mu.Lock()
			if e.dirty[id] && ctx.Err() == nil {
				delete(e.dirty, id)
				e.mu.Unlock()
				continue
			}
			delete(e.dirty, id)
			delete(e.refreshing, id)
			e.mu.Unlock()
			return
		}
	})
	if !started {
		e.mu.Lock()
		delete(e.refreshing, id)
		e.mu.Unlock()
	}
}

// updateCard renders the stored request on its card and marks the card
// current when no newer change was saved meanwhile.
func (e *Engine) updateCard(ctx context.Context, id string) {
	r, err := e.store.Get(ctx, id)
	if err != nil || r.Card.TS == "" || r.CardCurrent {
		return
	}
	err = e.retry(ctx, "update card", id, func(ctx context.Context) error { return e.notify.UpdateCard(ctx, r) })
	if err != nil {
		return
	}
	_, _, _, err = e.store.Update(ctx, id, "", func(s *Request) (Change, error) {
		if s.Version != r.Version || s.CardCurrent {
			return Change{}, nil
		}
		s.CardCurrent = true
		return Change{Save: true}, nil
	})
	if err != nil {
		e.log.Error("mark card current", "request", id, "err", err)
	}
}

// report posts one message in the request's thread, with retries. A
// request whose card position is not stored yet (an approval that overtook
// the storing of its card) is read again; without a card there is no
// thread, and the report stays owed.
func (e *Engine) report(ctx context.Context, r *Request, rep Report) error {
	if r.Card.TS == "" {
		fresh, err := e.store.Get(ctx, r.ID)
		if err != nil {
			return err
		}
		if fresh.Card.TS == "" {
			return Errorf(Unavailable, "%s has no card yet to report in", r.ID)
		}
		r = fresh
	}
	return e.retry(ctx, "report "+string(rep.Kind), r.ID, func(ctx context.Context) error { return e.notify.Report(ctx, r, rep) })
}

// retry calls fn until it succeeds, maxNotifyAttempts pass, or ctx ends.
// Slack's own rate-limit waits happen inside the notifier.
func (e *Engine) retry(ctx context.Context, what, id string, fn func(context.Context) error) error {
	var err error
	for attempt := 0; attempt < maxNotifyAttempts; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = fn(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		e.log.Warn(what+" failed", "request", id, "attempt", attempt+1, "err", err)
		if ErrorKind(err) == Forbidden || !pause(ctx, backoff(attempt)) {
			break
		}
	}
	return err
}
