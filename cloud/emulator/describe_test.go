package emulator_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
)

// describeFleet is a small fleet with every attribute a filter looks at.
var describeFleet = []emulator.Instance{
	{ID: "ins-web00001", Name: "web-1", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.0.1"}, PublicIPs: []string{"203.0.113.1"},
		Tags: map[string]string{"env": "prod", "team": "storefront"}},
	{ID: "ins-web00002", Name: "web-2", Zone: "ap-guangzhou-4", PrivateIPs: []string{"10.0.0.2"},
		Tags: map[string]string{"env": "staging", "team": "storefront"}},
	{ID: "ins-db000001", Name: "db-1", Zone: "ap-guangzhou-3", PrivateIPs: []string{"10.0.1.1"}, State: emulator.StateStopped,
		Tags: map[string]string{"env": "prod", "team": "data"}},
	{ID: "ins-batch001", Name: "batch-1", Zone: "ap-guangzhou-6", PrivateIPs: []string{"10.0.2.1"}},
}

func filters(kv ...string) []*cvm.Filter {
	var out []*cvm.Filter
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &cvm.Filter{Name: common.StringPtr(kv[i]), Values: common.StringPtrs(strings.Split(kv[i+1], "|"))})
	}
	return out
}

func describeIDs(resp *cvm.DescribeInstancesResponse) []string {
	var out []string
	for _, in := range resp.Response.InstanceSet {
		out = append(out, *in.InstanceId)
	}
	return out
}

func TestDescribeFilters(t *testing.T) {
	_, c := mustStart(t, emulator.Config{}, describeFleet...)
	tests := []struct {
		name    string
		filters []*cvm.Filter
		want    []string
	}{
		{"None", nil, []string{"ins-web00001", "ins-web00002", "ins-db000001", "ins-batch001"}},
		{"Zone", filters("zone", "ap-guangzhou-3"), []string{"ins-web00001", "ins-db000001"}},
		{"ZoneEither", filters("zone", "ap-guangzhou-4|ap-guangzhou-6"), []string{"ins-web00002", "ins-batch001"}},
		{"InstanceID", filters("instance-id", "ins-db000001|ins-zzzzzzzz"), []string{"ins-db000001"}},
		{"InstanceName", filters("instance-name", "web-2"), []string{"ins-web00002"}},
		{"InstanceNameFuzzy", filters("instance-name", "eb-"), []string{"ins-web00001", "ins-web00002"}},
		{"InstanceNameAnyValue", filters("instance-name", "db|batch"), []string{"ins-db000001", "ins-batch001"}},
		{"State", filters("instance-state", "STOPPED"), []string{"ins-db000001"}},
		{"PrivateIP", filters("private-ip-address", "10.0.2.1"), []string{"ins-batch001"}},
		{"PublicIP", filters("public-ip-address", "203.0.113.1"), []string{"ins-web00001"}},
		{"Tag", filters("tag:env", "prod"), []string{"ins-web00001", "ins-db000001"}},
		{"TagExact", filters("tag:env", "pro|Prod|prod-eu"), nil},
		{"TagKey", filters("tag-key", "team"), []string{"ins-web00001", "ins-web00002", "ins-db000001"}},
		{"TagValue", filters("tag-value", "data"), []string{"ins-db000001"}},
		{"TagAndZone", filters("tag:env", "prod", "zone", "ap-guangzhou-3", "instance-state", "RUNNING"), []string{"ins-web00001"}},
		{"NoMatch", filters("tag:env", "dev"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := cvm.NewDescribeInstancesRequest()
			req.Filters = tt.filters
			resp, err := c.DescribeInstances(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := describeIDs(resp); !slices.Equal(got, tt.want) {
				t.Errorf("instances = %v, want %v", got, tt.want)
			}
			if got, want := *resp.Response.TotalCount, int64(len(tt.want)); got != want {
				t.Errorf("TotalCount = %d, want %d", got, want)
			}
		})
	}
}

func TestDescribeErrors(t *testing.T) {
	_, c := mustStart(t, emulator.Config{}, describeFleet...)
	many := make([]string, 101)
	for i := range many {
		many[i] = testID(i)
	}
	tests := []struct {
		name string
		req  func(r *cvm.DescribeInstancesRequest)
		want string
	}{
		{"IDsWithFilters", func(r *cvm.DescribeInstancesRequest) {
			r.InstanceIds = common.StringPtrs([]string{"ins-web00001"})
			r.Filters = filters("zone", "ap-guangzhou-3")
		}, "InvalidParameterCombination"},
		{"TooManyIDs", func(r *cvm.DescribeInstancesRequest) { r.InstanceIds = common.StringPtrs(many) }, "InvalidParameterValue.LimitExceeded"},
		{"MalformedID", func(r *cvm.DescribeInstancesRequest) {
			r.InstanceIds = common.StringPtrs([]string{"ins-web00001", "web00001"})
		}, "InvalidInstanceId.Malformed"},
		{"MalformedIDFilter", func(r *cvm.DescribeInstancesRequest) { r.Filters = filters("instance-id", "nope") }, "InvalidInstanceId.Malformed"},
		{"UnknownFilter", func(r *cvm.DescribeInstancesRequest) { r.Filters = filters("flavour", "vanilla") }, "InvalidFilter"},
		{"TooManyValues", func(r *cvm.DescribeInstancesRequest) { r.Filters = filters("zone", "a|b|c|d|e|f") }, "InvalidFilterValue.LimitExceeded"},
		{"NoValues", func(r *cvm.DescribeInstancesRequest) {
			r.Filters = []*cvm.Filter{{Name: common.StringPtr("zone")}}
		}, "InvalidFilter"},
		{"TooManyFilters", func(r *cvm.DescribeInstancesRequest) {
			for range 11 {
				r.Filters = append(r.Filters, filters("zone", "ap-guangzhou-3")...)
			}
		}, "InvalidParameterValue.LimitExceeded"},
		{"LimitTooLarge", func(r *cvm.DescribeInstancesRequest) { r.Limit = common.Int64Ptr(101) }, "InvalidParameterValue"},
		{"LimitZero", func(r *cvm.DescribeInstancesRequest) { r.Limit = common.Int64Ptr(0) }, "InvalidParameterValue"},
		{"NegativeOffset", func(r *cvm.DescribeInstancesRequest) { r.Offset = common.Int64Ptr(-1) }, "InvalidParameterValue"},
		{"TenFiltersFiveValues", func(r *cvm.DescribeInstancesRequest) {
			for range 10 {
				r.Filters = append(r.Filters, filters("zone", "a|b|c|d|ap-guangzhou-3")...)
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := cvm.NewDescribeInstancesRequest()
			tt.req(req)
			_, err := c.DescribeInstances(req)
			if got := codeOf(t, err); got != tt.want {
				t.Errorf("code = %q, want %q (%v)", got, tt.want, err)
			}
		})
	}
}

func TestDescribeByIDs(t *testing.T) {
	_, c := mustStart(t, emulator.Config{}, describeFleet...)
	req := cvm.NewDescribeInstancesRequest()
	req.InstanceIds = common.StringPtrs([]string{"ins-db000001", "ins-zzzzzzzz", "ins-web00001", "ins-db000001"})
	resp, err := c.DescribeInstances(req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describeIDs(resp), []string{"ins-db000001", "ins-web00001"}; !slices.Equal(got, want) {
		t.Errorf("instances = %v, want %v (unknown IDs left out, duplicates once)", got, want)
	}

	in := resp.Response.InstanceSet[1]
	checks := []struct{ field, got, want string }{
		{"InstanceName", str(in.InstanceName), "web-1"},
		{"InstanceState", str(in.InstanceState), "RUNNING"},
		{"Placement.Zone", str(in.Placement.Zone), "ap-guangzhou-3"},
		{"PrivateIpAddresses", str(in.PrivateIpAddresses[0]), "10.0.0.1"},
		{"PublicIpAddresses", str(in.PublicIpAddresses[0]), "203.0.113.1"},
		{"Tags[0]", str(in.Tags[0].Key) + "=" + str(in.Tags[0].Value), "env=prod"},
		{"Tags[1]", str(in.Tags[1].Key) + "=" + str(in.Tags[1].Value), "team=storefront"},
		{"InstanceChargeType", str(in.InstanceChargeType), "POSTPAID_BY_HOUR"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.field, ch.got, ch.want)
		}
	}
	if str(in.CreatedTime) == "" || str(in.InstanceType) == "" || str(in.Uuid) == "" {
		t.Errorf("CreatedTime %q, InstanceType %q, Uuid %q: want all set", str(in.CreatedTime), str(in.InstanceType), str(in.Uuid))
	}
}

func TestDescribePaging(t *testing.T) {
	_, c := mustStart(t, emulator.Config{}, fleet(250)...)
	tests := []struct {
		name          string
		ids           int // InstanceIds to ask for; 0: none
		offset, limit int64
		wantFirst     int
		wantN         int
		wantTotal     int64
	}{
		{"Default20", 0, -1, -1, 0, 20, 250},
		{"Limit100", 0, -1, 100, 0, 100, 250},
		{"Offset", 0, 240, 100, 240, 10, 250},
		{"OffsetPastEnd", 0, 300, 10, 0, 0, 250},
		{"IDsDefaultLimit", 50, -1, -1, 0, 20, 50},
		{"IDsLimit100", 50, -1, 100, 0, 50, 50},
		{"IDsOffset", 50, 45, 100, 45, 5, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := cvm.NewDescribeInstancesRequest()
			var ids []string
			for i := range tt.ids {
				ids = append(ids, testID(i))
			}
			if len(ids) > 0 {
				req.InstanceIds = common.StringPtrs(ids)
			}
			if tt.offset >= 0 {
				req.Offset = common.Int64Ptr(tt.offset)
			}
			if tt.limit >= 0 {
				req.Limit = common.Int64Ptr(tt.limit)
			}
			resp, err := c.DescribeInstances(req)
			if err != nil {
				t.Fatal(err)
			}
			got := describeIDs(resp)
			if len(got) != tt.wantN {
				t.Fatalf("got %d instances, want %d", len(got), tt.wantN)
			}
			if tt.wantN > 0 && got[0] != testID(tt.wantFirst) {
				t.Errorf("first = %s, want %s", got[0], testID(tt.wantFirst))
			}
			if got, want := *resp.Response.TotalCount, tt.wantTotal; got != want {
				t.Errorf("TotalCount = %d, want %d", got, want)
			}
		})
	}
}

func TestDescribeInstancesStatus(t *testing.T) {
	e, c := mustStart(t, emulator.Config{}, fleet(30)...)
	e.SetState(testID(2), emulator.StateStopped)

	req := cvm.NewDescribeInstancesStatusRequest()
	req.InstanceIds = common.StringPtrs([]string{testID(1), testID(2), "ins-zzzzzzzz"})
	resp, err := c.DescribeInstancesStatus(req)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range resp.Response.InstanceStatusSet {
		got[*s.InstanceId] = *s.InstanceState
	}
	want := map[string]string{testID(1): "RUNNING", testID(2): "STOPPED"}
	if len(got) != len(want) || got[testID(1)] != want[testID(1)] || got[testID(2)] != want[testID(2)] {
		t.Errorf("statuses = %v, want %v", got, want)
	}

	all := cvm.NewDescribeInstancesStatusRequest()
	all.Offset = common.Int64Ptr(25)
	resp, err = c.DescribeInstancesStatus(all)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(resp.Response.InstanceStatusSet), 5; got != want {
		t.Errorf("page after offset 25 has %d statuses, want %d", got, want)
	}
	if got, want := *resp.Response.TotalCount, int64(30); got != want {
		t.Errorf("TotalCount = %d, want %d", got, want)
	}

	bad := cvm.NewDescribeInstancesStatusRequest()
	bad.InstanceIds = common.StringPtrs([]string{"ins-nope"})
	_, err = c.DescribeInstancesStatus(bad)
	if got, want := codeOf(t, err), "InvalidInstanceId.Malformed"; got != want {
		t.Errorf("malformed ID: code = %q, want %q", got, want)
	}
	limit := cvm.NewDescribeInstancesStatusRequest()
	limit.Limit = common.Int64Ptr(500)
	_, err = c.DescribeInstancesStatus(limit)
	if got, want := codeOf(t, err), "InvalidParameterValue"; got != want {
		t.Errorf("Limit 500: code = %q, want %q", got, want)
	}
}
