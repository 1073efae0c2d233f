package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// A request is judged by the policy in force when something is decided
// about it, not by the one it was created under: an approver removed from
// the policy can no longer approve, their earlier approval stops counting,
// and a new deny rule stops a request that is still waiting or has not
// called the cloud yet. What the request stores of the policy (Required,
// ApproverGroups, SelfApproval, each approval's Lapsed) is the last
// judgement, kept so that the card can show it.

// errStaleVerdict refuses, inside a store transaction, a verdict made
// under a policy that is no longer in force; the caller judges again.
var errStaleVerdict = errors.New("approval: the policy changed while the request was judged")

// maxJudgements bounds how often a click is judged again because the
// policy changed meanwhile.
const maxJudgements = 3

// verdict is what one policy says of one request.
type verdict struct {
	policy   *Policy // the policy that judged
	req      Requirements
	self     bool            // the requester's own approval counts
	denied   []string        // instances a deny rule protects
	eligible map[string]bool // the people judged: whether each may approve or deny
}

// judge applies policy p to r and decides whether clicker, the person
// acting now ("" when nobody is), and each of earlier, the people who
// acted before, may approve or deny it. It resolves user groups, all under
// one deadline, so it runs outside any store transaction.
func judge(ctx context.Context, p *Policy, groups Groups, r *Request, clicker string, earlier []string) (*verdict, error) {
	v := &verdict{policy: p, self: p.AllowSelfApproval}
	var allowed []Instance
	for _, in := range r.Instances {
		if rule := p.RuleFor(in); rule != nil && rule.Deny {
			v.denied = append(v.denied, in.ID)
			continue
		}
		allowed = append(allowed, in)
	}
	req, err := p.Require(allowed, r.StopType)
	if err != nil {
		return nil, err
	}
	if len(req.ApproverGroups) == 0 && len(p.Approvers) > 0 {
		// Every instance is protected by a deny rule: the policy's
		// approvers may still act on the request, to see it ended.
		req.ApproverGroups = [][]string{append([]string(nil), p.Approvers...)}
	}
	v.req = req
	users := slices.Clone(earlier)
	if clicker != "" {
		users = append([]string{clicker}, users...)
	}
	e := checkEligibility(ctx, groups, req.ApproverGroups, users)
	if len(e.unchecked) > 0 {
		msg := "I couldn't check the user groups of the people who approved it; try again in a moment."
		switch {
		case slices.Contains(e.unchecked, clicker):
			msg = groupsUnchecked
		case clicker != "":
			msg = "I couldn't check the user groups of the people who approved before you, so your click was not counted; try again in a moment."
		}
		return nil, &Error{Kind: Unavailable, Message: msg, Err: e.cause}
	}
	v.eligible = e.eligible
	return v, nil
}

// inForce reports whether the policy that made v is still the engine's.
// A transaction applies only such a verdict, so that a judgement made
// under an older policy never overwrites one made under a newer.
func (v *verdict) inForce(e *Engine) bool { return v.policy == e.policy.Load() }

// approverIDs returns the people who approved r, for judging them again.
func approverIDs(r *Request) []string {
	users := make([]string, len(r.Approvals))
	for i, a := range r.Approvals {
		users[i] = a.User
	}
	return users
}

// apply stores the verdict in r (inside a transaction): what the policy
// asks of it and which approvals have lapsed. An approval the verdict did
// not judge came in since it was made and was judged by its own click;
// it keeps its mark, and the check before execution judges it again.
func (v *verdict) apply(r *Request) {
	r.Required, r.ApproverGroups, r.SelfApproval = v.req.Required, v.req.ApproverGroups, v.self
	for i := range r.Approvals {
		a := &r.Approvals[i]
		ok, judged := v.eligible[a.User]
		if judged {
			a.Lapsed = !ok || (a.User == r.Requester && !v.self)
		}
	}
}

// objection returns why r, with the verdict applied, may not be executed,
// or "" when it may.
func (v *verdict) objection(r *Request) string {
	if len(v.denied) > 0 {
		return deniedByPolicy(v.denied)
	}
	if n := len(r.Counted()); n < r.Required {
		return fmt.Sprintf("The policy in force needs %d %s and only %d of the approvals given still %s, so nothing was rebooted.",
			r.Required, plural(r.Required, "approval", "approvals"), n, plural(n, "counts", "count"))
	}
	return ""
}

// deniedByPolicy says which instances a deny rule now protects.
func deniedByPolicy(ids []string) string {
	shown := ids[:min(len(ids), 5)]
	s := strings.Join(shown, ", ")
	if n := len(ids) - len(shown); n > 0 {
		s += fmt.Sprintf(" and %d more", n)
	}
	return fmt.Sprintf("The policy in force does not allow rebooting %s through the bot, so nothing was rebooted.", s)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// maxRecheckAttempts bounds how often the check before an execution asks
// Slack for user groups before it gives up and reboots nothing.
const maxRecheckAttempts = 6

// recheck judges an execution that has not called the cloud yet by the
// policy in force, right before it starts, whether it was approved a
// moment ago or before a restart: approvals from people who may no longer
// approve stop counting, and a request the policy now denies, or whose
// counting approvals fall short, ends denied by the bot with the reason.
// When Slack cannot confirm the approvers' user groups after a few tries,
// nothing is rebooted either.
func (e *Engine) recheck(ctx context.Context, r *Request) (*Request, error) {
	for {
		saved, err := e.recheckOnce(ctx, r)
		if !errors.Is(err, errStaleVerdict) {
			return saved, err
		}
		// The policy changed while the request was judged: judge it by
		// the new one.
	}
}

// recheckOnce is one judgement of recheck, refused with errStaleVerdict
// when the policy changed before it could be stored.
func (e *Engine) recheckOnce(ctx context.Context, r *Request) (*Request, error) {
	p := e.policy.Load()
	var v *verdict
	for attempt := 0; ; attempt++ {
		var err error
		if v, err = judge(ctx, p, e.groups, r, "", approverIDs(r)); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if attempt+1 >= maxRecheckAttempts {
			e.log.Error("approvals could not be checked before execution", "request", r.ID, "err", err)
			break
		}
		e.log.Warn("check approvals before execution; retrying", "request", r.ID, "err", err)
		if !pause(ctx, backoff(attempt)) {
			return nil, ctx.Err()
		}
	}
	var events []Event
	decide := func(s *Request) (Change, error) {
		events = nil
		if s.State != Executing || anyCalled(s) {
			return Change{}, nil
		}
		if p != e.policy.Load() {
			return Change{}, errStaleVerdict
		}
		why := "Slack could not confirm the approvers' user groups before the reboot, so nothing was rebooted."
		before := judgement(s)
		if v != nil {
			v.apply(s)
			why = v.objection(s)
		}
		if why == "" {
			if judgement(s) == before {
				return Change{}, nil
			}
			s.CardCurrent = false
			s.Version++
			return Change{Save: true}, nil
		}
		if err := s.transition(Denied); err != nil {
			return Change{}, err
		}
		s.DecidedBy, s.DecidedAt, s.Note = ActorBot, e.now(), why
		s.Runs = nil
		if !s.StartAnnounced {
			s.StartedAt = time.Time{} // nothing started, so the thread is owed nothing
		}
		s.CardCurrent = false
		s.Version++
		events = []Event{{RequestID: s.ID, Type: EventDenied, Actor: ActorBot, Instances: s.InstanceIDs(),
			Details: Details{Approvals: approvers(s), Required: s.Required, Outcome: string(Denied), Note: why}}}
		return Change{Save: true, Events: events}, nil
	}
	// Most executions pass unchanged: judged on r as it was read, they
	// need no write, which would only queue behind clicks for nothing. A
	// write, which judges the stored request again, is made only when the
	// judgement changes something.
	change, err := decide(r.Clone())
	if err != nil {
		return nil, err
	}
	if !change.Save && len(change.Events) == 0 {
		return r, nil
	}
	saved, _, _, err := e.store.Update(ctx, r.ID, "", decide)
	if err != nil {
		return nil, err
	}
	if saved.Version != r.Version {
		e.refreshCard(saved.ID)
	}
	if len(events) > 0 {
		e.log.Warn("request denied before execution by the policy in force", "request", saved.ID, "reason", saved.Note)
		e.observe(events)
		if !saved.StartedAt.IsZero() {
			e.kickReports(saved.ID)
		}
	}
	return saved, nil
}

// judgement renders what r stores of its last judgement, to tell whether
// judging it again changed anything.
func judgement(r *Request) string {
	lapsed := make([]bool, len(r.Approvals))
	for i, a := range r.Approvals {
		lapsed[i] = a.Lapsed
	}
	return fmt.Sprint(r.Required, r.ApproverGroups, r.SelfApproval, lapsed)
}

// rejudgePending judges every pending request by the policy in force, so
// that a change shows on the cards at once rather than at the next click:
// the requirements, which approvals no longer count, and, when a deny rule
// now protects an instance, the end of the request, denied by the bot.
// Lowered requirements start nothing: a reboot starts only with a click.
func (e *Engine) rejudgePending(ctx context.Context) {
	open, err := e.store.Open(ctx)
	if err != nil {
		e.log.Error("judge pending requests by the policy in force", "err", err)
		return
	}
	for _, r := range open {
		if ctx.Err() != nil {
			return
		}
		if r.State == Pending {
			e.rejudge(ctx, r)
		}
	}
}

// rejudge judges pending request r by the policy in force and stores what
// changed. When Slack cannot resolve a user group, r is left as it is: its
// next click is judged anyway.
func (e *Engine) rejudge(ctx context.Context, r *Request) {
	v, err := judge(ctx, e.policy.Load(), e.groups, r, "", approverIDs(r))
	if err != nil {
		e.log.Warn("judge pending request by the policy in force; its next click will", "request", r.ID, "err", err)
		return
	}
	var events []Event
	saved, _, _, err := e.store.Update(ctx, r.ID, "", func(s *Request) (Change, error) {
		events = nil
		now := e.now()
		if s.State != Pending || !now.Before(s.ExpiresAt) || !v.inForce(e) {
			// Decided meanwhile, or the expiry loop's; or judged under a
			// policy since replaced, whose own judgement follows.
			return Change{}, nil
		}
		before := judgement(s)
		v.apply(s)
		if len(v.denied) > 0 {
			note := deniedByPolicy(v.denied)
			if err := s.transition(Denied); err != nil {
				return Change{}, err
			}
			s.DecidedBy, s.DecidedAt, s.Note = ActorBot, now, note
			events = []Event{{RequestID: s.ID, Type: EventDenied, Actor: ActorBot, Instances: s.InstanceIDs(),
				Details: Details{Approvals: approvers(s), Required: s.Required, Outcome: string(Denied), Note: note}}}
		} else if judgement(s) == before {
			return Change{}, nil
		}
		s.CardCurrent = false
		s.Version++
		return Change{Save: true, Events: events}, nil
	})
	if err != nil {
		e.log.Error("store the judgement of a pending request", "request", r.ID, "err", err)
		return
	}
	if saved.Version != r.Version {
		e.refreshCard(saved.ID)
	}
	if len(events) > 0 {
		e.log.Info("request denied by the policy in force", "request", saved.ID, "reason", saved.Note)
		e.observe(events)
	}
}
