package approval

import (
	"context"
	"errors"
	"time"
)

// unconfirmedLooks are the waits, from a change whose outcome the store
// did not confirm in time, before each sweep that looks for it.
var unconfirmedLooks = []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}

// isUnconfirmed reports whether err says a change was on its way into the
// store when the wait for it ended (see Unconfirmed).
func isUnconfirmed(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == Unavailable && e.Message == UnconfirmedMessage
}

// lookAfterUnconfirmed follows a change whose outcome was not confirmed:
// its transaction may still commit, a moment later. Nobody would then
// start the reboot an approval decided, update the card or post a new
// request's card until the next sweep, up to a minute on; and the person
// was told to look at the card. A few sweeps over the next seconds find
// whatever committed and do what it owes.
func (e *Engine) lookAfterUnconfirmed(err error) {
	if !isUnconfirmed(err) {
		return
	}
	e.spawnJob(func(ctx context.Context) {
		for _, d := range unconfirmedLooks {
			select {
			case <-ctx.Done():
				return
			case <-e.closing: // a stopping engine sweeps no more
				return
			case <-e.clock.After(d):
			}
			e.Wake()
		}
	})
}
