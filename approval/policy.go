package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Policy says who may request, who may approve and how many approvals a
// request needs.
type Policy struct {
	Approvers         []string      // user (U…, W…) and user-group (S…) IDs
	Requesters        []string      // empty: anyone
	Channels          []string      // empty: anywhere
	MinApprovals      int           // at least 1
	HardMinApprovals  int           // for HARD and SOFT_FIRST
	AllowSelfApproval bool          //
	RequestTTL        time.Duration //
	MaxInstances      int           // 1..MaxInstancesPerRequest
	Regions           []string      // allowed regions; empty: any
	DefaultRegion     string        // used when a request names none
	Rules             []Rule        // first match by instance tags wins
	Waves             WaveRules     // how large requests must roll
}

// WaveRules make large requests roll in waves. Zero fields ask nothing.
type WaveRules struct {
	// RequiredAbove: a request of more instances must roll in waves.
	RequiredAbove int
	// MaxSize bounds the instances of one wave.
	MaxSize int
	// MinPause is the shortest pause allowed between waves.
	MinPause time.Duration
}

// MaxWavePause is the longest pause between waves.
const MaxWavePause = 24 * time.Hour

// Rule tightens the policy for instances that carry all of its tags.
type Rule struct {
	Tags         map[string]string
	MinApprovals int      // 0: no extra requirement
	Approvers    []string // empty: the policy's approvers
	Deny         bool     // instances matching it may not be rebooted through the bot
}

// DefaultRegion is the region a request is made in when neither it, the
// policy nor TENCENTCLOUD_REGION names one.
const DefaultRegion = "ap-guangzhou"

// Instance limits of one request: max_instances is DefaultMaxInstances
// unless the policy raises it, at most to MaxInstancesPerRequest.
const (
	DefaultMaxInstances    = 100
	MaxInstancesPerRequest = 5000
)

// Validate reports the first thing wrong with p.
func (p *Policy) Validate() error {
	switch {
	case p.MinApprovals < 1:
		return fmt.Errorf("min_approvals must be at least 1")
	case p.HardMinApprovals < 0:
		return fmt.Errorf("hard_min_approvals must not be negative")
	case p.RequestTTL <= 0:
		return fmt.Errorf("request_ttl must be positive")
	case p.MaxInstances < 1 || p.MaxInstances > MaxInstancesPerRequest:
		return fmt.Errorf("max_instances must be between 1 and %d", MaxInstancesPerRequest)
	case p.Waves.RequiredAbove < 0 || p.Waves.RequiredAbove > MaxInstancesPerRequest:
		return fmt.Errorf("waves.required_above must be between 0 and %d", MaxInstancesPerRequest)
	case p.Waves.MaxSize < 0 || p.Waves.MaxSize > MaxInstancesPerRequest:
		return fmt.Errorf("waves.max_size must be between 0 and %d", MaxInstancesPerRequest)
	case p.Waves.MinPause < 0 || p.Waves.MinPause > MaxWavePause:
		return fmt.Errorf("waves.min_pause must be between 0 and %s", MaxWavePause)
	case len(p.Approvers) == 0 && !p.rulesNameApprovers():
		return fmt.Errorf("approvers must name at least one user or user group")
	}
	for _, id := range p.Approvers {
		if !ValidApproverID(id) {
			return fmt.Errorf("approver %q is not a Slack user ID (U…, W…) or user-group ID (S…)", id)
		}
	}
	for _, id := range p.Requesters {
		if !ValidUserID(id) && !ValidGroupID(id) {
			return fmt.Errorf("requester %q is not a Slack user ID (U…, W…) or user-group ID (S…)", id)
		}
	}
	for _, id := range p.Channels {
		if !validSlackID(id, "CGD") {
			return fmt.Errorf("channel %q is not a Slack channel ID (C…, G…, D…)", id)
		}
	}
	for i, r := range p.Rules {
		if len(r.Tags) == 0 {
			return fmt.Errorf("rule %d has no tags to match", i+1)
		}
		if r.MinApprovals < 0 {
			return fmt.Errorf("rule %d: min_approvals must not be negative", i+1)
		}
		for _, id := range r.Approvers {
			if !ValidApproverID(id) {
				return fmt.Errorf("rule %d: approver %q is not a Slack user ID (U…, W…) or user-group ID (S…)", i+1, id)
			}
		}
		if !r.Deny && len(r.Approvers) == 0 && len(p.Approvers) == 0 {
			return fmt.Errorf("rule %d has no approvers and the policy has none to fall back on", i+1)
		}
	}
	if p.DefaultRegion == "" {
		return fmt.Errorf("no default region")
	}
	if len(p.Regions) > 0 && !slices.Contains(p.Regions, p.DefaultRegion) {
		return fmt.Errorf("default region %s is not among the allowed regions", p.DefaultRegion)
	}
	return nil
}

func (p *Policy) rulesNameApprovers() bool {
	for _, r := range p.Rules {
		if len(r.Approvers) > 0 {
			return true
		}
	}
	return false
}

// ValidUserID reports whether id looks like a Slack user ID.
func ValidUserID(id string) bool { return validSlackID(id, "UW") }

// ValidGroupID reports whether id looks like a Slack user-group ID.
func ValidGroupID(id string) bool { return validSlackID(id, "S") }

// ValidApproverID reports whether id is a user or user-group ID.
func ValidApproverID(id string) bool { return ValidUserID(id) || ValidGroupID(id) }

func validSlackID(id, prefixes string) bool {
	if len(id) < 2 || len(id) > 32 || !strings.ContainsRune(prefixes, rune(id[0])) {
		return false
	}
	for _, c := range id[1:] {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// RuleFor returns the first rule whose tags all appear on in, or nil.
func (p *Policy) RuleFor(in Instance) *Rule {
	for i := range p.Rules {
		r := &p.Rules[i]
		match := true
		for k, v := range r.Tags {
			if got, ok := in.Tags[k]; !ok || got != v {
				match = false
				break
			}
		}
		if match {
			return r
		}
	}
	return nil
}

// RegionFor returns the region a request naming region should use, or an
// Invalid error when the policy does not allow it.
func (p *Policy) RegionFor(region string) (string, error) {
	if region == "" {
		return p.DefaultRegion, nil
	}
	if !ValidRegion(region) {
		return "", Errorf(Invalid, "%q is not a region name (for example ap-guangzhou).", region)
	}
	if len(p.Regions) > 0 && !slices.Contains(p.Regions, region) {
		return "", Errorf(Invalid, "Region %s is not allowed here; allowed: %s.", region, strings.Join(p.Regions, ", "))
	}
	return region, nil
}

// ValidRegion reports whether s looks like a region name (lowercase
// words joined by hyphens, such as ap-guangzhou); the policy decides
// whether it is allowed.
func ValidRegion(s string) bool {
	if len(s) < 4 || len(s) > 40 || !strings.Contains(s, "-") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Requirements is what the policy asks of a request for a set of instances.
type Requirements struct {
	Required       int
	ApproverGroups [][]string
}

// Require returns the approvals a request for instances with stop type st
// needs, or a Forbidden error naming every instance a deny rule protects.
func (p *Policy) Require(instances []Instance, st StopType) (Requirements, error) {
	req := Requirements{Required: p.MinApprovals}
	if st.Forceful() && p.HardMinApprovals > req.Required {
		req.Required = p.HardMinApprovals
	}
	var denied []string
	seen := map[string]bool{}
	for _, in := range instances {
		r := p.RuleFor(in)
		approvers := p.Approvers
		if r != nil {
			if r.Deny {
				denied = append(denied, in.ID)
				continue
			}
			if r.MinApprovals > req.Required {
				req.Required = r.MinApprovals
			}
			if len(r.Approvers) > 0 {
				approvers = r.Approvers
			}
		}
		key := strings.Join(approvers, ",")
		if !seen[key] {
			seen[key] = true
			req.ApproverGroups = append(req.ApproverGroups, slices.Clone(approvers))
		}
	}
	if len(denied) > 0 {
		return Requirements{}, Errorf(Forbidden, "The policy does not allow rebooting %s through the bot.", strings.Join(denied, ", "))
	}
	return req, nil
}

// GroupLookupTimeout bounds the user-group lookups of one check, all
// groups together. A click is answered only once it is decided, and Slack
// gives 3 seconds for the answer: the lookups must leave room for the rest.
const GroupLookupTimeout = 1500 * time.Millisecond

// groupsUnchecked is the answer when the clicker's membership cannot be
// confirmed.
const groupsUnchecked = "I couldn't check your user groups; try again in a moment."

// member reports whether user is one of ids, directly or through a group.
// It fails closed: when user is in no group that answered and some group
// could not be looked up, it returns an Unavailable error rather than
// false or a guess, so that nobody is counted, or turned away, on a list
// that was never read.
func member(ctx context.Context, groups Groups, ids []string, user string) (bool, error) {
	return MayApprove(ctx, groups, &Request{ApproverGroups: [][]string{ids}}, user)
}

// MayApprove reports whether user is eligible to approve (or deny) r: they
// must be on every approver list of r. Like member, it fails closed.
func MayApprove(ctx context.Context, groups Groups, r *Request, user string) (bool, error) {
	e := checkEligibility(ctx, groups, r.ApproverGroups, []string{user})
	if len(e.unchecked) > 0 {
		return false, &Error{Kind: Unavailable, Message: groupsUnchecked, Err: e.cause}
	}
	return e.eligible[user], nil
}

// eligibility is what checkEligibility found.
type eligibility struct {
	eligible  map[string]bool // the people decided: whether they are on every list
	unchecked []string        // the people left undecided by a group that did not answer
	cause     error           // why those groups did not answer
}

// checkEligibility decides, for each of users, whether they are on every
// one of lists, directly or through a user group. Every group of every
// list is looked up at once, under one GroupLookupTimeout: a decision
// waits for its slowest group, not for the sum of its lists. It returns as
// soon as everyone is decided, so a user found in a group that answered,
// or missing from a list whose groups all answered, does not wait for the
// others. Without groups, a group counts as having no members.
func checkEligibility(ctx context.Context, groups Groups, lists [][]string, users []string) eligibility {
	members := map[string][]string{} // groups that answered
	var lookup []string
	for _, l := range lists {
		for _, id := range l {
			if !ValidGroupID(id) || slices.Contains(lookup, id) {
				continue
			}
			if groups == nil {
				members[id] = nil
				continue
			}
			lookup = append(lookup, id)
		}
	}
	// onList reports whether u is on l, and whether that is known yet.
	onList := func(l []string, u string) (in, known bool) {
		if slices.Contains(l, u) {
			return true, true
		}
		known = true
		for _, id := range l {
			if !ValidGroupID(id) {
				continue
			}
			m, ok := members[id]
			if ok && slices.Contains(m, u) {
				return true, true
			}
			known = known && ok
		}
		return false, known
	}
	e := eligibility{eligible: make(map[string]bool, len(users))}
	decide := func() (done bool) {
		done = true
		for _, u := range users {
			if _, ok := e.eligible[u]; ok {
				continue
			}
			all, known := len(lists) > 0, true
			for _, l := range lists {
				in, k := onList(l, u)
				if k && !in {
					all, known = false, true
					break
				}
				all, known = all && in, known && k
			}
			if known {
				e.eligible[u] = all
			} else {
				done = false
			}
		}
		return done
	}
	if decide() || len(lookup) == 0 {
		return e
	}
	ctx, cancel := context.WithTimeout(ctx, GroupLookupTimeout)
	defer cancel()
	type answer struct {
		group   string
		members []string
		err     error
	}
	answers := make(chan answer, len(lookup)) // buffered: lookups left behind never block
	for _, id := range lookup {
		go func() {
			m, err := groups.Members(ctx, id)
			answers <- answer{group: id, members: m, err: err}
		}()
	}
	var failed []error
	pending := slices.Clone(lookup)
	for len(pending) > 0 {
		select {
		case a := <-answers:
			pending = slices.DeleteFunc(pending, func(id string) bool { return id == a.group })
			if a.err != nil {
				failed = append(failed, a.err)
				continue
			}
			members[a.group] = a.members
			if decide() {
				return e
			}
			continue
		case <-ctx.Done():
			failed = append(failed, fmt.Errorf("user groups %s: %w", strings.Join(pending, ", "), ctx.Err()))
		}
		break
	}
	for _, u := range users {
		if _, ok := e.eligible[u]; !ok && !slices.Contains(e.unchecked, u) {
			e.unchecked = append(e.unchecked, u)
		}
	}
	e.cause = errors.Join(failed...)
	return e
}

// MayRequest reports whether user may file requests in channel.
func (p *Policy) MayRequest(ctx context.Context, groups Groups, user, channel string) error {
	if len(p.Channels) > 0 && !slices.Contains(p.Channels, channel) {
		return Errorf(Forbidden, "/reboot is not enabled in this channel.")
	}
	if len(p.Requesters) == 0 {
		return nil
	}
	ok, err := member(ctx, groups, p.Requesters, user)
	if err != nil {
		return err
	}
	if !ok {
		return Errorf(Forbidden, "You are not on the list of people who may request reboots.")
	}
	return nil
}
