package cloud

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"rebootbot/approval"
	"rebootbot/cloud/emulator"
)

// selectFleet has names that the API's loose name filter confuses, tags
// that differ only in case, public and private addresses, and instances
// that are not RUNNING.
var selectFleet = []emulator.Instance{
	{ID: "ins-web00001", Name: "web-1", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.0.1"}, PublicIPs: []string{"203.0.113.1"},
		Tags: map[string]string{"role": "web", "env": "prod"}},
	{ID: "ins-web00010", Name: "web-10", Zone: "ap-guangzhou-4", PrivateIPs: []string{"10.0.0.10"},
		Tags: map[string]string{"role": "web", "env": "staging"}},
	{ID: "ins-oldweb01", Name: "old-web-1", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.0.99"},
		Tags: map[string]string{"role": "Web", "env": "prod"}},
	{ID: "ins-db000001", Name: "db-1", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.1.1"}, State: emulator.StateStopped,
		Tags: map[string]string{"role": "db", "env": "prod"}},
	{ID: "ins-api00001", Name: "api-1", Zone: "ap-guangzhou-6", PrivateIPs: []string{"10.0.2.1"}, PublicIPs: []string{"198.51.100.7"},
		Tags: map[string]string{"role": "api", "env": "prod"}},
}

func mustSelector(t testing.TB, words ...string) approval.Selector {
	t.Helper()
	var s approval.Selector
	for _, w := range words {
		if ok, err := s.Add(w); !ok || err != nil {
			t.Fatalf("selector word %q: ok %v, err %v", w, ok, err)
		}
	}
	return s
}

func foundIDs(ins []approval.Instance) []string {
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.ID
	}
	slices.Sort(ids)
	return ids
}

func TestFindSelectors(t *testing.T) {
	r := mustRig(t, emulator.Config{}, nil, selectFleet...)
	tests := []struct {
		name  string
		words []string
		want  []string
	}{
		{"Tag", []string{"tag:role=web"}, []string{"ins-web00001", "ins-web00010"}},
		{"TagCaseSensitive", []string{"tag:role=Web"}, []string{"ins-oldweb01"}},
		{"TagsOfOneKeyWiden", []string{"tag:role=web", "tag:role=db"}, []string{"ins-db000001", "ins-web00001", "ins-web00010"}},
		{"TagsOfTwoKeysNarrow", []string{"tag:role=web", "tag:env=prod"}, []string{"ins-web00001"}},
		{"NameExactDespiteFuzzyAPI", []string{"name:web-1"}, []string{"ins-web00001"}},
		{"NamePrefix", []string{"name:web-*"}, []string{"ins-web00001", "ins-web00010"}},
		{"NamesWiden", []string{"name:web-1", "name:db-*"}, []string{"ins-db000001", "ins-web00001"}},
		{"PrivateIP", []string{"ip:10.0.0.10"}, []string{"ins-web00010"}},
		{"PublicIP", []string{"ip:198.51.100.7"}, []string{"ins-api00001"}},
		{"PrivateOrPublic", []string{"ip:203.0.113.1", "ip:10.0.1.1"}, []string{"ins-db000001", "ins-web00001"}},
		{"Zone", []string{"zone:ap-guangzhou-3"}, []string{"ins-db000001", "ins-oldweb01", "ins-web00001"}},
		{"ZoneAndTagAndName", []string{"zone:ap-guangzhou-3", "tag:env=prod", "name:web-*"}, []string{"ins-web00001"}},
		{"NoMatch", []string{"tag:role=cache"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.cvm.Find(t.Context(), "", mustSelector(t, tt.words...))
			if err != nil {
				t.Fatal(err)
			}
			if ids := foundIDs(got); !slices.Equal(ids, tt.want) {
				t.Errorf("Find(%v) = %v, want %v", tt.words, ids, tt.want)
			}
		})
	}
	got, err := r.cvm.Find(t.Context(), "", mustSelector(t, "name:db-1"))
	if err != nil || len(got) != 1 {
		t.Fatalf("Find(name:db-1) = %v, %v", got, err)
	}
	if in := got[0]; in.State != emulator.StateStopped || in.Zone != "ap-guangzhou-3" || in.Tags["role"] != "db" || in.PrivateIPs[0] != "10.0.1.1" {
		t.Errorf("Find returned %+v, want the instance as described", in)
	}
}

// fleetOf returns n RUNNING instances tagged role=web spread over zones.
func fleetOf(n int, role string) []emulator.Instance {
	zones := []string{"ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6", "ap-guangzhou-7"}
	out := make([]emulator.Instance, n)
	for i := range out {
		out[i] = emulator.Instance{ID: fmt.Sprintf("ins-%.3s%05d", role, i), Name: fmt.Sprintf("%s-%04d", role, i), Zone: zones[i%len(zones)],
			PrivateIPs: []string{fmt.Sprintf("10.%d.%d.%d", 1+i/62500, (i/250)%250, i%250+4)}, Tags: map[string]string{"role": role}}
	}
	return out
}

// TestFindPages checks that 1,000 instances of one tag, among others, are
// resolved in pages of 100: ten DescribeInstances calls.
func TestFindPages(t *testing.T) {
	fleet := append(fleetOf(1000, "webs"), fleetOf(500, "apis")...)
	r := mustRig(t, emulator.Config{}, nil, fleet...)
	got, err := r.cvm.Find(t.Context(), "", mustSelector(t, "tag:role=webs"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1000 {
		t.Errorf("found %d instances, want 1000", len(got))
	}
	seen := map[string]bool{}
	for _, in := range got {
		if seen[in.ID] || in.Tags["role"] != "webs" {
			t.Fatalf("%s twice, or not role=webs", in.ID)
		}
		seen[in.ID] = true
	}
	if n := len(r.calls.of(ActionDescribe)); n != 10 {
		t.Errorf("%d DescribeInstances calls, want 10", n)
	}
	// The dispatcher, which the engine is given as its cloud, selects
	// the same way.
	again, err := NewDispatcher(r.cvm).Find(t.Context(), "", mustSelector(t, "tag:role=webs"))
	if err != nil || !slices.Equal(foundIDs(again), foundIDs(got)) {
		t.Errorf("Dispatcher.Find found %d instances, err %v; want the adapter's 1000", len(again), err)
	}
}

// sentFilters records the Filters of each DescribeInstances call that
// passes through a proxy, and fails the test when a call breaks the API's
// limits.
type sentFilters struct {
	mu    sync.Mutex
	calls [][]map[string]any
}

func (s *sentFilters) intercept(t *testing.T) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req struct {
			InstanceIds []string
			Filters     []map[string]any
			Limit       int
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("request body: %v", err)
			return false
		}
		if len(req.InstanceIds) > 0 && len(req.Filters) > 0 {
			t.Errorf("a call sent InstanceIds with Filters")
		}
		if len(req.Filters) > MaxFilters {
			t.Errorf("a call sent %d filters", len(req.Filters))
		}
		for _, f := range req.Filters {
			if vals, _ := f["Values"].([]any); len(vals) > MaxFilterValues {
				t.Errorf("filter %v has %d values", f["Name"], len(vals))
			}
		}
		if req.Limit != PageSize {
			t.Errorf("Limit = %d, want %d", req.Limit, PageSize)
		}
		s.mu.Lock()
		s.calls = append(s.calls, req.Filters)
		s.mu.Unlock()
		return false
	}
}

// TestFindWithinFilterLimits selects with more values and more kinds than
// one call may carry: the adapter splits the values over several calls and
// leaves kinds past ten filters to its exact match.
func TestFindWithinFilterLimits(t *testing.T) {
	fleet := fleetOf(60, "webs")
	for i := range fleet {
		for k := range 11 {
			fleet[i].Tags[fmt.Sprintf("k%02d", k)] = "v"
		}
	}
	fleet[7].Tags["k10"] = "other"
	fleet[8].PublicIPs = []string{"203.0.113.8"}
	r := mustRig(t, emulator.Config{}, nil, fleet...)
	p := mustProxy(t, r.url)
	var sent sentFilters
	p.setIntercept(sent.intercept(t))
	c := mustNew(t, r.testConfig(p.srv.URL))

	t.Run("TwelveAddresses", func(t *testing.T) {
		sent.calls = nil
		var words []string
		var want []string
		for i := range 12 {
			words = append(words, "ip:"+fleet[i].PrivateIPs[0])
			want = append(want, fleet[i].ID)
		}
		words[8] = "ip:203.0.113.8" // fleet[8] by its public address
		got, err := c.Find(t.Context(), "", mustSelector(t, words...))
		if err != nil {
			t.Fatal(err)
		}
		if ids := foundIDs(got); !slices.Equal(ids, want) {
			t.Errorf("found %v, want %v", ids, want)
		}
		// 12 values are 3 chunks of at most 5, each asked as private and
		// as public addresses.
		if len(sent.calls) != 6 {
			t.Errorf("%d calls, want 6", len(sent.calls))
		}
	})
	t.Run("ElevenTagKeys", func(t *testing.T) {
		sent.calls = nil
		var words []string
		for k := range 11 {
			words = append(words, fmt.Sprintf("tag:k%02d=v", k))
		}
		got, err := c.Find(t.Context(), "", mustSelector(t, words...))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 59 || slices.Contains(foundIDs(got), fleet[7].ID) {
			t.Errorf("found %d instances (want 59, without %s)", len(got), fleet[7].ID)
		}
		for _, call := range sent.calls {
			if len(call) != MaxFilters {
				t.Errorf("a call sent %d filters, want %d", len(call), MaxFilters)
			}
		}
	})
}

func TestFindTooBroad(t *testing.T) {
	r := mustRig(t, emulator.Config{}, nil, fleetOf(MaxFound+1, "webs")...)
	_, err := r.cvm.Find(t.Context(), "", mustSelector(t, "tag:role=webs"))
	if approval.ErrorKind(err) != approval.Invalid {
		t.Fatalf("err = %v, want an Invalid error asking for a narrower selection", err)
	}
	if n := len(r.calls.of(ActionDescribe)); n != 1 {
		t.Errorf("%d DescribeInstances calls, want 1: the first page tells the total", n)
	}
}

// TestFindTooBroadTogether: calls that each stay under the bound but
// together pass it are refused too.
func TestFindTooBroadTogether(t *testing.T) {
	const limit = 150
	fleet := fleetOf(limit+2, "webs")
	for i := range fleet {
		fleet[i].Zone = "ap-guangzhou-3"
		if i > limit/2 {
			fleet[i].Zone = "ap-guangzhou-4"
		}
	}
	r := mustRig(t, emulator.Config{}, nil, fleet...)
	// Six zones are two calls of at most five; the two zones the fleet
	// uses fall one in each, 76 instances each.
	sel := mustSelector(t, "zone:ap-guangzhou-3", "zone:ap-guangzhou-1", "zone:ap-guangzhou-2", "zone:ap-guangzhou-5", "zone:ap-guangzhou-6", "zone:ap-guangzhou-4")
	_, err := r.cvm.find(t.Context(), "", sel, limit)
	if approval.ErrorKind(err) != approval.Invalid || !strings.Contains(err.Error(), "152 instances, more than the 150") {
		t.Fatalf("err = %v, want an Invalid error asking for a narrower selection", err)
	}
	if got, err := r.cvm.find(t.Context(), "", sel, limit+2); err != nil || len(got) != limit+2 {
		t.Errorf("with room for them: %d instances, err %v", len(got), err)
	}
}

func TestFindRetriesTransientErrors(t *testing.T) {
	r := mustRig(t, emulator.Config{}, nil, fleetOf(450, "webs")...)
	// The first page and two of the pages fetched side by side fail once.
	r.emu.SetFaults(emulator.Fault{Action: ActionDescribe, Code: "InternalError", Count: 3})
	got, err := r.cvm.Find(t.Context(), "", mustSelector(t, "tag:role=webs"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 450 {
		t.Errorf("found %d instances, want 450", len(got))
	}
}

func TestFindFails(t *testing.T) {
	r := mustRig(t, emulator.Config{}, nil, fleetOf(10, "webs")...)
	r.emu.SetFaults(emulator.Fault{Action: ActionDescribe, Code: "UnauthorizedOperation", Rate: 1})
	_, err := r.cvm.Find(t.Context(), "", mustSelector(t, "tag:role=webs"))
	var ce *approval.CloudError
	if err == nil || !errors.As(err, &ce) || ce.Code != "UnauthorizedOperation" {
		t.Fatalf("err = %v, want the cloud's UnauthorizedOperation", err)
	}
}
