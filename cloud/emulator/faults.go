package emulator

import (
	"context"
	"time"
)

// Fault makes the emulator misbehave on purpose. An error is answered
// before the action runs (nothing happens, but the request counts as a
// call); latency is added after the action ran, just before the answer is
// written, so a client that gives up first cannot tell whether it happened.
type Fault struct {
	Action string // "" = every action
	// Code is the error code to answer with, e.g. RequestLimitExceeded or
	// InternalError; "" injects latency only.
	Code    string
	Message string // "" = a generic message for the code
	// Rate is the probability that a matching call is hit. 0 (like any
	// value outside 0..1) means every matching call, so
	// Fault{Code: c, Count: 1} fails exactly the next call.
	Rate float64
	// Count limits the fault to the next Count matching calls, hit or not;
	// 0 means no limit.
	Count int
	// Latency is added before the answer; the wait ends early when the
	// client goes away.
	Latency time.Duration
}

// faultState is a Fault with what is left of its Count.
type faultState struct {
	Fault
	remaining int // of Count; unused when Count is 0
}

// SetFaults replaces the list of faults; SetFaults() clears it. Every
// fault that matches a call is rolled for independently: the first one hit
// that carries a Code decides the error, and the latencies of all the hit
// ones add up.
func (e *Emulator) SetFaults(f ...Fault) {
	states := make([]*faultState, len(f))
	for i, x := range f {
		states[i] = &faultState{Fault: x, remaining: x.Count}
	}
	e.mu.Lock()
	e.faults = states
	e.mu.Unlock()
}

// injected is what the faults decided for one call.
type injected struct {
	err     *apiError
	latency time.Duration
}

// rollFaults decides the faults of one call of action. e.mu must be held.
func (e *Emulator) rollFaults(action string) injected {
	var out injected
	kept := e.faults[:0]
	for _, f := range e.faults {
		if f.Action != "" && f.Action != action {
			kept = append(kept, f)
			continue
		}
		if f.Count > 0 {
			f.remaining--
		}
		if f.Count <= 0 || f.remaining > 0 {
			kept = append(kept, f)
		}
		if f.Rate > 0 && f.Rate < 1 && e.rng.Float64() >= f.Rate {
			continue
		}
		out.latency += f.Latency
		if f.Code != "" && out.err == nil {
			msg := f.Message
			if msg == "" {
				msg = "An error was injected into this call (" + f.Code + ")."
			}
			out.err = &apiError{Code: f.Code, Message: msg}
		}
	}
	clear(e.faults[len(kept):])
	e.faults = kept
	return out
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// limiter lets through at most n events in any window of length per. It
// keeps the times of the last n admitted events in a ring.
type limiter struct {
	n    int // <0: unlimited
	per  time.Duration
	ring []time.Time
	next int // index of the oldest entry once the ring is full
}

func newLimiter(n int, per time.Duration) limiter {
	l := limiter{n: n, per: per}
	if n > 0 {
		l.ring = make([]time.Time, 0, n)
	}
	return l
}

// allow reports whether an event at now is admitted, and records it if so.
// The caller holds the lock that guards the limiter.
func (l *limiter) allow(now time.Time) bool {
	if l.n < 0 {
		return true
	}
	if len(l.ring) < l.n {
		l.ring = append(l.ring, now)
		return true
	}
	oldest := l.ring[l.next]
	if now.Sub(oldest) < l.per {
		return false
	}
	l.ring[l.next] = now
	l.next = (l.next + 1) % l.n
	return true
}
