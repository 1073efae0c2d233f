package approval

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
)

// selection is the set a request will hold: the named instances, then the
// RUNNING ones the selector picked, and the count of those it left out.
type selection struct {
	instances  []Instance
	unselected []StateCount
}

// selectFleet adds the instances sel picks in region to named (already
// checked to be RUNNING). Only RUNNING instances are selected; the others that
// matched are counted. A selector that picks nothing RUNNING refuses the
// request with those counts.
func (e *Engine) selectFleet(ctx context.Context, p *Policy, region string, sel Selector, named []Instance) (selection, error) {
	out := selection{instances: named}
	if !sel.Empty() {
		words := strings.Join(sel.Words(), " ")
		for _, z := range sel.Zones {
			if ZoneRegion(z) != region {
				return selection{}, Errorf(Invalid, "Zone %s is not in region %s; pick the region with `--region %s`.", z, region, ZoneRegion(z))
			}
		}
		if e.finder == nil {
			return selection{}, Errorf(Invalid, "This bot cannot select instances by tag, name, address or zone; name their IDs instead.")
		}
		found, err := e.finder.Find(ctx, region, sel)
		var ce *CloudError
		switch {
		case err != nil && !errors.As(err, &ce) && ErrorKind(err) == Invalid:
			return selection{}, err // a selection too broad to look through
		case err != nil:
			return selection{}, cloudUnavailable("select the instances", err)
		}
		held := make(map[string]bool, len(named))
		for _, in := range named {
			held[in.ID] = true
		}
		var running, other []Instance
		for _, in := range found {
			switch {
			case held[in.ID] || !sel.Matches(in):
				// Named already, or a looser match than the selector's.
			case in.State == InstanceRunning:
				held[in.ID] = true
				running = append(running, in)
			default:
				other = append(other, in)
			}
		}
		out.unselected = countStates(other)
		if len(running) == 0 && len(named) == 0 {
			if len(other) == 0 {
				return selection{}, Errorf(Invalid, "Nothing was requested: `%s` matches no instance in %s.", words, region)
			}
			return selection{}, Errorf(Invalid, "Nothing was requested: `%s` matches no RUNNING instance in %s (%s); only RUNNING instances can be rebooted.",
				words, region, StateCountsText(out.unselected))
		}
		// A stable order people can read: by zone, then name, then ID.
		slices.SortFunc(running, func(a, b Instance) int {
			return cmp.Or(cmp.Compare(a.Zone, b.Zone), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
		})
		out.instances = append(slices.Clip(named), running...)
	}
	return out, nil
}

// unselectedNote says which matched instances a request left out.
func unselectedNote(counts []StateCount) string {
	if len(counts) == 0 {
		return ""
	}
	return StateCountsText(counts) + " not included"
}

// InstanceIDs returns the IDs of instances in order.
func InstanceIDs(instances []Instance) []string {
	ids := make([]string, len(instances))
	for i, in := range instances {
		ids[i] = in.ID
	}
	return ids
}

// UnselectedText renders r's left-out instances for people: "3 STOPPED not
// included", or "" when none were.
func (r *Request) UnselectedText() string { return unselectedNote(r.Unselected) }

// Fleet reports whether r selected its instances by what they are rather
// than naming each one.
func (r *Request) Fleet() bool { return len(r.Selector) > 0 }
