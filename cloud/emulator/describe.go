package emulator

import (
	"time"

	"slices"
	"strings"
)

// Paging limits of the Describe actions.
const (
	defaultLimit  = 20
	maxLimit      = 100
	maxFilters    = 10
	maxFilterVals = 5
)

// filterMatchers are the DescribeInstances filters the emulator knows, by
// name; tag:KEY is handled apart.
var filterMatchers = map[string]func(in *instance, values []string) bool{
	"zone":        func(in *instance, v []string) bool { return slices.Contains(v, in.Zone) },
	"instance-id": func(in *instance, v []string) bool { return slices.Contains(v, in.ID) },
	// The API matches names loosely: a value finds every name that holds
	// it, so "web" finds web-1 and old-web-2 alike. Callers who want an
	// exact name check it themselves.
	"instance-name": func(in *instance, v []string) bool {
		return slices.ContainsFunc(v, func(s string) bool { return strings.Contains(in.Name, s) })
	},
	"instance-state":       func(in *instance, v []string) bool { return slices.Contains(v, in.State) },
	"instance-charge-type": func(in *instance, v []string) bool { return slices.Contains(v, chargeType) },
	"private-ip-address":   func(in *instance, v []string) bool { return anyIn(in.PrivateIPs, v) },
	"public-ip-address":    func(in *instance, v []string) bool { return anyIn(in.PublicIPs, v) },
	"tag-key": func(in *instance, v []string) bool {
		for k := range in.Tags {
			if slices.Contains(v, k) {
				return true
			}
		}
		return false
	},
	"tag-value": func(in *instance, v []string) bool {
		for _, val := range in.Tags {
			if slices.Contains(v, val) {
				return true
			}
		}
		return false
	},
}

func anyIn(have, want []string) bool {
	for _, h := range have {
		if slices.Contains(want, h) {
			return true
		}
	}
	return false
}

// matcher is a checked filter.
type matcher func(in *instance) bool

// compileFilters checks Filters (at most 10, each with 1 to 5 values, of a
// known name) and returns one matcher per filter. An instance matches when
// every filter has a value that matches it.
func compileFilters(filters []filter) ([]matcher, *apiError) {
	if len(filters) > maxFilters {
		return nil, errorf(codeLimitExceeded, "The parameter `Filters` has %d filters; at most %d are allowed.", len(filters), maxFilters)
	}
	out := make([]matcher, 0, len(filters))
	for _, f := range filters {
		name := safeToken(f.Name)
		switch {
		case len(f.Values) == 0:
			return nil, errorf(codeInvalidFilter, "The filter `%s` has no values.", name)
		case len(f.Values) > maxFilterVals:
			return nil, errorf(codeFilterLimitExceeded, "The filter `%s` has %d values; at most %d are allowed.", name, len(f.Values), maxFilterVals)
		}
		values := f.Values
		if key, ok := strings.CutPrefix(f.Name, "tag:"); ok && key != "" {
			out = append(out, func(in *instance) bool {
				v, ok := in.Tags[key]
				return ok && slices.Contains(values, v)
			})
			continue
		}
		m, ok := filterMatchers[f.Name]
		if !ok {
			return nil, errorf(codeInvalidFilter, "The filter `%s` is not supported.", name)
		}
		if f.Name == "instance-id" {
			if _, err := checkIDs(values); err != nil {
				return nil, err
			}
		}
		out = append(out, func(in *instance) bool { return m(in, values) })
	}
	return out, nil
}

// paging returns Offset (default 0) and Limit (default 20, at most 100).
func paging(p params) (offset, limit int, err *apiError) {
	off, _, err := p.integer("Offset")
	if err != nil {
		return 0, 0, err
	}
	lim, ok, err := p.integer("Limit")
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		lim = defaultLimit
	}
	if off < 0 || off > 1<<31 {
		return 0, 0, errorf(codeInvalidParameterValue, "The parameter `Offset` must not be negative.")
	}
	if lim < 1 || lim > maxLimit {
		return 0, 0, errorf(codeInvalidParameterValue, "The parameter `Limit` must be between 1 and %d.", maxLimit)
	}
	return int(off), int(lim), nil
}

// page returns the part of n items that offset and limit select.
func page(n, offset, limit int) (from, to int) {
	from = min(offset, n)
	to = min(from+limit, n)
	return from, to
}

// describeInstances serves DescribeInstances. Unknown IDs in InstanceIds
// are left out of the answer, as the API does; Limit applies to
// InstanceIds too (20 unless set).
func (e *Emulator) describeInstances(c *callContext) (any, *apiError) {
	e.mu.Lock()
	c.at = e.now()
	allowed := e.describeLimiter.allow(c.at)
	e.mu.Unlock()
	if !allowed {
		return nil, errorf(codeRequestLimitExceeded, "DescribeInstances was called more than %d times in one second.", e.describeLimiter.n)
	}
	p := c.params
	if err := p.only("InstanceIds", "Filters", "Offset", "Limit"); err != nil {
		return nil, err
	}
	ids, _, err := p.strings("InstanceIds")
	if err != nil {
		return nil, err
	}
	filters, _, err := p.filters()
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 && len(filters) > 0 {
		return nil, errorf(codeInvalidParameterCombo, "The parameters `InstanceIds` and `Filters` cannot be used together.")
	}
	offset, limit, err := paging(p)
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		if ids, err = checkIDs(ids); err != nil {
			return nil, err
		}
	}
	matchers, err := compileFilters(filters)
	if err != nil {
		return nil, err
	}

	snaps, total := describePage(e, c.region, ids, matchers, offset, limit, func(in *instance) snapshot {
		return snapshot{Status: in.status(), facts: in.facts}
	})
	set := make([]apiInstance, len(snaps))
	for i := range snaps {
		set[i] = snaps[i].api()
	}
	return &describeInstancesResult{TotalCount: total, InstanceSet: set}, nil
}

// describePage selects instances as selectInstances does and returns view
// of each instance of the page from offset, at most limit, settled to now,
// and how many were selected in all. view runs under e.mu, so that it
// sees each instance as of one moment.
func describePage[T any](e *Emulator, region string, ids []string, matchers []matcher, offset, limit int, view func(*instance) T) ([]T, int) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	found := e.selectInstances(region, ids, matchers, now)
	from, to := page(len(found), offset, limit)
	out := make([]T, 0, to-from)
	for _, in := range found[from:to] {
		in.settle(now)
		out = append(out, view(in))
	}
	return out, len(found)
}

// selectInstances returns the instances of region among ids, in order
// (unknown IDs are left out, as the API leaves them out), or, without ids,
// every instance of region that all matchers accept. The caller holds e.mu.
func (e *Emulator) selectInstances(region string, ids []string, matchers []matcher, now time.Time) []*instance {
	var found []*instance
	if len(ids) > 0 {
		for _, id := range ids {
			if in := e.byID[id]; in != nil && in.Region == region {
				found = append(found, in)
			}
		}
		return found
	}
	for _, in := range e.byRegion[region] {
		in.settle(now)
		if matchAll(in, matchers) {
			found = append(found, in)
		}
	}
	return found
}

func matchAll(in *instance, matchers []matcher) bool {
	for _, m := range matchers {
		if !m(in) {
			return false
		}
	}
	return true
}

// describeInstancesStatus serves DescribeInstancesStatus.
func (e *Emulator) describeInstancesStatus(c *callContext) (any, *apiError) {
	p := c.params
	if err := p.only("InstanceIds", "Offset", "Limit"); err != nil {
		return nil, err
	}
	ids, _, err := p.strings("InstanceIds")
	if err != nil {
		return nil, err
	}
	offset, limit, err := paging(p)
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		if ids, err = checkIDs(ids); err != nil {
			return nil, err
		}
	}

	set, total := describePage(e, c.region, ids, nil, offset, limit, func(in *instance) apiInstanceStatus {
		return apiInstanceStatus{InstanceID: in.ID, InstanceState: in.State}
	})
	return &describeInstancesStatusResult{TotalCount: total, InstanceStatusSet: set}, nil
}
