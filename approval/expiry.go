package approval

import (
	"context"
	"time"
)

// maxExpiryNap bounds how long the expiry loop sleeps between sweeps; each
// sweep also retries owed card updates and reports.
const maxExpiryNap = time.Minute

// expiryLoop expires pending requests when their time is up, without
// anyone clicking, and settles requests whose card or reports are owed.
func (e *Engine) expiryLoop(ctx context.Context) {
	for {
		next := e.sweep(ctx)
		if ctx.Err() != nil || e.isClosed() {
			return
		}
		nap := maxExpiryNap
		if !next.IsZero() {
			nap = min(max(next.Sub(e.clock.Now()), 0), maxExpiryNap)
		}
		select {
		case <-ctx.Done():
			return
		case <-e.clock.After(nap):
		case <-e.kick:
			if e.isClosed() {
				return
			}
		}
	}
}

// sweep expires what is due and returns the earliest expiry, or end of a
// creator's card grace, still ahead.
func (e *Engine) sweep(ctx context.Context) time.Time {
	e.posting.Lock()
	open, err := e.store.Open(ctx)
	e.posting.Unlock()
	if err != nil {
		// An engine being stopped (a replica that lost the lead) is not
		// a failure worth an error line.
		if ctx.Err() == nil {
			e.log.Error("expiry sweep", "err", err)
		}
		return time.Time{}
	}
	now := e.now()
	var next time.Time
	soonest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	ids := make(map[string]bool, len(open))
	for _, r := range open {
		ids[r.ID] = true
		if r.State == Pending && !now.Before(r.ExpiresAt) {
			e.expireNow(ctx, r.ID)
			continue
		}
		if r.State == Pending {
			soonest(r.ExpiresAt)
		}
		// Whatever failed to reach Slack earlier is tried again; a card
		// left to its creator is looked at again when its grace ends.
		soonest(e.resume(r))
	}
	e.sightings.keep(ids)
	e.shown.keep(ids)
	e.placed.keep(ids)
	return next
}

// expireNow marks request id expired if it is still pending and due.
func (e *Engine) expireNow(ctx context.Context, id string) {
	var events []Event
	_, _, _, err := e.store.Update(ctx, id, "", func(r *Request) (Change, error) {
		events = nil
		now := e.now()
		if r.State != Pending || now.Before(r.ExpiresAt) {
			return Change{}, nil
		}
		e.expire(r, now)
		events = []Event{expiredEvent(r)}
		return Change{Save: true, Events: events}, nil
	})
	if err != nil {
		e.log.Error("expire request", "request", id, "err", err)
		return
	}
	if len(events) > 0 {
		e.log.Info("request expired", "request", id)
		e.observe(events)
		e.refreshCard(id)
	}
}
