package cloud

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/approval"
)

// DescribeInstances limits for Filters, and how the adapter pages.
const (
	MaxFilters      = 10  // filters in one call
	MaxFilterValues = 5   // values of one filter
	PageSize        = 100 // Limit of each page, the API's largest
	// maxQueries bounds the filter combinations one Find sends; kinds
	// that would need more are matched by the adapter alone.
	maxQueries = 20
	// MaxFound is the most instances one Find collects before it gives up
	// and asks for a narrower selection: 100 pages, 2.5 s at 40 calls a
	// second.
	MaxFound = 10000
	// pageWorkers is how many pages of one query are fetched at once.
	pageWorkers = 8
)

var _ approval.Finder = (*CVM)(nil)

// Find returns every instance of region that sel selects, whatever its
// state. It asks DescribeInstances with Filters (tag:KEY, instance-name,
// private-ip-address, public-ip-address, zone), within the API's limits:
// at most 10 filters of at most 5 values a call, never with InstanceIds,
// pages of 100, and the describe limiter's 40 calls a second. A kind with
// more values is split over several calls and the results are joined;
// addresses are asked for as private and as public ones. The API's
// instance-name filter is a fuzzy match, so names (and any kind left out
// of the calls to keep them few) are matched exactly here: the result
// depends only on sel.
func (c *CVM) Find(ctx context.Context, region string, sel approval.Selector) ([]approval.Instance, error) {
	return c.find(ctx, region, sel, MaxFound)
}

// find is Find with the most instances it collects, limit.
func (c *CVM) find(ctx context.Context, region string, sel approval.Selector, limit int) ([]approval.Instance, error) {
	region = c.region(region)
	if sel.Empty() {
		return nil, nil
	}
	cl, ce := c.client(ctx, region)
	if ce != nil {
		return nil, asError(ce, ctx.Err())
	}
	f := &finder{c: c, cl: cl, limit: limit, seen: map[string]bool{}}
	for _, q := range planQueries(sel) {
		if err := f.query(ctx, q); err != nil {
			return nil, err
		}
		if len(f.found) > limit {
			return nil, tooBroad(len(f.found), limit)
		}
	}
	out := make([]approval.Instance, 0, len(f.found))
	for _, in := range f.found {
		if sel.Matches(in) {
			out = append(out, in)
		}
	}
	return out, nil
}

// finder collects the instances of one Find, each once, in the order the
// API listed them.
type finder struct {
	c     *CVM
	cl    *cvm.Client
	limit int // the most instances to collect

	mu    sync.Mutex
	seen  map[string]bool
	found []approval.Instance
}

// query pages through the instances that filters match: the first page
// tells how many there are, the rest are fetched a few at a time.
func (f *finder) query(ctx context.Context, filters []*cvm.Filter) error {
	total, err := f.page(ctx, filters, 0)
	if err != nil {
		return err
	}
	if total > f.limit {
		return tooBroad(total, f.limit)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	offsets := make(chan int)
	errs := make(chan error, pageWorkers)
	var wg sync.WaitGroup
	for range pageWorkers {
		wg.Go(func() {
			for off := range offsets {
				if _, err := f.page(ctx, filters, off); err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
feed:
	for off := PageSize; off < total; off += PageSize {
		select {
		case offsets <- off:
		case <-ctx.Done():
			break feed
		}
	}
	close(offsets)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}

// tooBroad refuses a selection that matches n instances, more than limit.
func tooBroad(n, limit int) error {
	return approval.Errorf(approval.Invalid, "The selection matches %d instances, more than the %d the bot looks through; narrow it with more selector words.", n, limit)
}

// page fetches the page of filters' matches at offset and returns the
// total the API reported.
func (f *finder) page(ctx context.Context, filters []*cvm.Filter, offset int) (int, error) {
	var (
		set   []*cvm.Instance
		total int
	)
	_, ce, _ := f.c.call(ctx, ActionDescribe, f.c.cfg.DescribeLimiter, func(actx context.Context) (string, error) {
		req := cvm.NewDescribeInstancesRequest()
		req.Filters = filters
		req.Offset = common.Int64Ptr(int64(offset))
		req.Limit = common.Int64Ptr(PageSize)
		resp, err := f.cl.DescribeInstancesWithContext(actx, req)
		if err != nil {
			return "", err
		}
		if resp.Response == nil {
			return "", fmt.Errorf("DescribeInstances answered without a Response")
		}
		set = resp.Response.InstanceSet
		if resp.Response.TotalCount != nil {
			total = int(*resp.Response.TotalCount)
		}
		return deref(resp.Response.RequestId), nil
	}, nil)
	if ce != nil {
		return 0, asError(ce, ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, raw := range set {
		if in := instanceFrom(raw); in.ID != "" && !f.seen[in.ID] {
			f.seen[in.ID] = true
			f.found = append(f.found, in)
		}
	}
	return total, nil
}

// filterKind is one kind of selector word as DescribeInstances filters:
// its alternatives are the filters of which any one may match (a kind
// with more than 5 values, or addresses asked as private and as public,
// has several).
type filterKind struct {
	alternatives []*cvm.Filter
}

// planQueries returns the Filters of each call Find makes: the cartesian
// product of the kinds' alternatives, so that every instance sel selects
// is in the answer to at least one call. Kinds are taken fewest
// alternatives first while the calls stay within 10 filters and
// maxQueries combinations; the rest are left to the exact match.
func planQueries(sel approval.Selector) [][]*cvm.Filter {
	var kinds []filterKind
	for _, key := range slices.Sorted(maps.Keys(sel.Tags)) {
		kinds = append(kinds, filterOf("tag:"+key, sel.Tags[key]))
	}
	if len(sel.Names) > 0 {
		// The API matches names loosely; asking for the prefix finds every
		// name that starts with it, and the exact rule is applied after.
		var stems []string
		for _, p := range sel.Names {
			if s := strings.TrimSuffix(p, "*"); !slices.Contains(stems, s) {
				stems = append(stems, s)
			}
		}
		kinds = append(kinds, filterOf("instance-name", stems))
	}
	if len(sel.IPs) > 0 {
		private := filterOf("private-ip-address", sel.IPs)
		public := filterOf("public-ip-address", sel.IPs)
		kinds = append(kinds, filterKind{alternatives: append(private.alternatives, public.alternatives...)})
	}
	if len(sel.Zones) > 0 {
		kinds = append(kinds, filterOf("zone", sel.Zones))
	}
	slices.SortStableFunc(kinds, func(a, b filterKind) int { return cmp.Compare(len(a.alternatives), len(b.alternatives)) })

	queries := [][]*cvm.Filter{nil}
	for i, k := range kinds {
		if i >= MaxFilters || (i > 0 && len(queries)*len(k.alternatives) > maxQueries) {
			break
		}
		next := make([][]*cvm.Filter, 0, len(queries)*len(k.alternatives))
		for _, q := range queries {
			for _, alt := range k.alternatives {
				next = append(next, append(slices.Clip(q), alt))
			}
		}
		queries = next
	}
	return queries
}

// filterOf returns the alternatives of filter name over values, at most 5
// values each.
func filterOf(name string, values []string) filterKind {
	var k filterKind
	for _, chunk := range chunks(values, MaxFilterValues) {
		k.alternatives = append(k.alternatives, &cvm.Filter{Name: common.StringPtr(name), Values: common.StringPtrs(chunk)})
	}
	return k
}

var _ approval.Finder = (*Dispatcher)(nil)

// Find selects instances through d's adapter (see CVM.Find). A selection
// pages in whole calls of 100 that no other work could share, so they do
// not queue with the look-ups; they keep to the account's describe
// limiter like every other call.
func (d *Dispatcher) Find(ctx context.Context, region string, sel approval.Selector) ([]approval.Instance, error) {
	return d.cvm.Find(ctx, region, sel)
}
