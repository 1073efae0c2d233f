package approval

import (
	"context"
	"fmt"
)

// Stop stops rolling request id for user, its requester or one of its
// approvers under the policy in force: the running wave finishes and no
// later wave starts. Between waves the request ends as stopped at once.
// from is the card a click came from, nil for a command. Anyone else's
// stop, and a stop with nothing to stop, is refused, told why, and
// audited like a refused click. The same delivery key again returns the
// first answer.
func (e *Engine) Stop(ctx context.Context, key, id, user string, from *Card) (Result, error) {
	if !ValidUserID(user) {
		return Result{}, Errorf(Invalid, "The stop came without a valid Slack user.")
	}
	if key != "" {
		if reply, seen, err := e.store.Reply(ctx, key); err != nil {
			return Result{}, err
		} else if seen {
			return replayed(ctx, e.store, reply)
		}
	}
	current, err := e.store.Get(ctx, id)
	if ErrorKind(err) == NotFound {
		return e.unknownRequest(ctx, key, id, user, "stop")
	}
	if err != nil {
		return Result{}, err
	}
	eligible := current.Requester == user
	if !eligible && current.State == Executing {
		v, err := judge(ctx, e.policy.Load(), e.groups, current, user, nil)
		if ErrorKind(err) == Unavailable {
			return e.refuseUnchecked(ctx, key, id, user, "stop", err)
		}
		if err != nil {
			return Result{}, err
		}
		eligible = v.eligible[user]
	}
	var events []Event
	r, reply, wasReplayed, err := e.store.Update(ctx, id, key, func(r *Request) (Change, error) {
		events = nil
		refuse := func(kind Kind, msg, note string) (Change, error) {
			events = []Event{{RequestID: r.ID, Type: EventApprovalRefused, Actor: user, Instances: r.InstanceIDs(),
				Details: Details{Note: "stop: " + note}}}
			return Change{Events: events, Reply: Reply{Kind: kind, Message: msg, RequestID: r.ID}}, nil
		}
		switch {
		case from != nil && !r.cameFrom(*from):
			return refuse(Conflict, fmt.Sprintf("This is not the current card of %s, so nothing was stopped; `/reboot status %s` shows %s as it is now.", r.ID, r.ID, r.ID),
				fmt.Sprintf("clicked on message %q, not on the request's card", truncate(from.TS, 40)))
		case r.State != Executing:
			msg := fmt.Sprintf("%s is not rebooting (it is %s), so there is nothing to stop.", r.ID, r.State.phrase())
			return refuse(Conflict, msg, msg)
		case !eligible && r.Requester != user:
			msg := fmt.Sprintf("Only the person who asked for %s or one of its approvers can stop it.", r.ID)
			return refuse(Forbidden, msg, msg)
		case r.Halt != nil:
			msg := fmt.Sprintf("%s is already %s; nothing more was done.", r.ID, r.HaltText())
			return refuse(Conflict, msg, msg)
		case r.Plan == nil || r.WaveCount() == 1:
			msg := fmt.Sprintf("%s reboots all its instances in one wave, which is under way, so there is no later wave to stop.", r.ID)
			return refuse(Conflict, msg, msg)
		case r.Wave == r.WaveCount():
			msg := fmt.Sprintf("%s is on its last wave, which finishes; there is no later wave to stop.", r.ID)
			return refuse(Conflict, msg, msg)
		}
		now := e.now()
		r.Halt = &Halt{By: user, At: now}
		r.CardCurrent = false
		r.Version++
		running := r.Wave > 0 && !r.WaveFinished
		note := "no later wave starts"
		msg := fmt.Sprintf("You stopped %s before wave %d of %d; no later wave starts.", r.ID, r.Wave+1, r.WaveCount())
		if running {
			note = fmt.Sprintf("wave %d of %d finishes; no later wave starts", r.Wave, r.WaveCount())
			msg = fmt.Sprintf("You stopped %s: wave %d of %d finishes, and no later wave starts.", r.ID, r.Wave, r.WaveCount())
		}
		events = []Event{{RequestID: r.ID, Type: EventStopped, Actor: user, Instances: r.InstanceIDs(), Details: Details{Wave: r.Wave, Note: note}}}
		if !running {
			ended, err := stopRequest(r, now)
			if err != nil {
				return Change{}, err
			}
			events = append(events, ended...)
		}
		return Change{Save: true, Events: events, Reply: Reply{Message: msg, RequestID: r.ID}}, nil
	})
	if err != nil {
		if ErrorKind(err) == NotFound {
			return e.unknownRequest(ctx, key, id, user, "stop")
		}
		e.lookAfterUnconfirmed(err)
		return Result{}, err
	}
	if wasReplayed {
		return replayed(ctx, e.store, reply)
	}
	if reply.Kind != "" {
		e.observe(events)
		return Result{Request: r}, reply.Err()
	}
	e.exec.Wake(id)
	e.followExecution(r, events)
	return Result{Request: r, Message: reply.Message}, nil
}
