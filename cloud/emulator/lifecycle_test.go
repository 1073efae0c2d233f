package emulator_test

import (
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
)

func TestStopAndStart(t *testing.T) {
	clk := newClock()
	e, c := mustStart(t, emulator.Config{Now: clk.Now}, fleet(2)...)
	id := testID(0)
	expect := func(when, state, op, opState string) {
		t.Helper()
		s := mustStatus(t, e, id)
		if s.State != state || s.LatestOperation != op || s.LatestOperationState != opState {
			t.Errorf("%s: %s %s %s, want %s %s %s", when, s.State, s.LatestOperation, s.LatestOperationState, state, op, opState)
		}
	}

	_, err := c.StartInstances(startRequest(id))
	if got, want := codeOf(t, err), "UnsupportedOperation.InstanceStateRunning"; got != want {
		t.Errorf("starting a RUNNING instance: code = %q, want %q", got, want)
	}

	stop := cvm.NewStopInstancesRequest()
	stop.InstanceIds = common.StringPtrs([]string{id})
	stop.StopType = common.StringPtr("SOFT_FIRST")
	if _, err := c.StopInstances(stop); err != nil {
		t.Fatalf("StopInstances: %v", err)
	}
	expect("stopping", "STOPPING", "StopInstances", "OPERATING")
	_, err = c.StopInstances(stop)
	if got, want := codeOf(t, err), "UnsupportedOperation.InstanceStateStopping"; got != want {
		t.Errorf("stopping twice: code = %q, want %q", got, want)
	}
	clk.Advance(emulator.DefaultRebootDuration)
	expect("stopped", "STOPPED", "StopInstances", "SUCCESS")

	_, err = c.RebootInstances(rebootRequest(id))
	if got, want := codeOf(t, err), "UnsupportedOperation.InstanceStateStopped"; got != want {
		t.Errorf("rebooting a stopped instance: code = %q, want %q", got, want)
	}

	if _, err := c.StartInstances(startRequest(id)); err != nil {
		t.Fatalf("StartInstances: %v", err)
	}
	expect("starting", "STARTING", "StartInstances", "OPERATING")
	clk.Advance(emulator.DefaultRebootDuration)
	expect("started", "RUNNING", "StartInstances", "SUCCESS")
	mustReboot(t, c, id)
}

func startRequest(ids ...string) *cvm.StartInstancesRequest {
	r := cvm.NewStartInstancesRequest()
	r.InstanceIds = common.StringPtrs(ids)
	return r
}

func TestStopParameters(t *testing.T) {
	tests := []struct {
		name string
		req  func(r *cvm.StopInstancesRequest)
		want string
	}{
		{"Plain", func(*cvm.StopInstancesRequest) {}, ""},
		{"Hard", func(r *cvm.StopInstancesRequest) { r.StopType = common.StringPtr("HARD") }, ""},
		{"StopCharging", func(r *cvm.StopInstancesRequest) { r.StoppedMode = common.StringPtr("STOP_CHARGING") }, ""},
		{"BadStopType", func(r *cvm.StopInstancesRequest) { r.StopType = common.StringPtr("GENTLE") }, "InvalidParameterValue"},
		{"BadStoppedMode", func(r *cvm.StopInstancesRequest) { r.StoppedMode = common.StringPtr("FREE") }, "InvalidParameterValue"},
		{"ForceStopWithStopType", func(r *cvm.StopInstancesRequest) {
			r.ForceStop = common.BoolPtr(true) //nolint:staticcheck // the deprecated parameter is what is tested
			r.StopType = common.StringPtr("HARD")
		}, "InvalidParameterCombination"},
		{"NoIDs", func(r *cvm.StopInstancesRequest) { r.InstanceIds = nil }, "MissingParameter"},
		{"Unknown", func(r *cvm.StopInstancesRequest) { r.InstanceIds = common.StringPtrs([]string{"ins-zzzzzzzz"}) }, "InvalidInstanceId.NotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, c := mustStart(t, emulator.Config{}, fleet(1)...)
			req := cvm.NewStopInstancesRequest()
			req.InstanceIds = common.StringPtrs([]string{testID(0)})
			tt.req(req)
			_, err := c.StopInstances(req)
			if got := codeOf(t, err); got != tt.want {
				t.Fatalf("code = %q, want %q (%v)", got, tt.want, err)
			}
			wantState := emulator.StateRunning
			if err == nil {
				wantState = emulator.StateStopping
			}
			if got := mustStatus(t, e, testID(0)).State; got != wantState {
				t.Errorf("state = %s, want %s", got, wantState)
			}
		})
	}
}

func TestSetState(t *testing.T) {
	e, _ := mustStart(t, emulator.Config{}, fleet(1)...)
	tests := []struct {
		name, id, state string
		wantErr         bool
	}{
		{"Stopped", testID(0), emulator.StateStopped, false},
		{"RescueMode", testID(0), emulator.StateRescueMode, false},
		{"UnknownState", testID(0), "NAPPING", true},
		{"UnknownInstance", "ins-zzzzzzzz", emulator.StateStopped, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.SetState(tt.id, tt.state)
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("SetState error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				if got := mustStatus(t, e, tt.id).State; got != tt.state {
					t.Errorf("state = %s, want %s", got, tt.state)
				}
			}
		})
	}
}

func TestAddRejects(t *testing.T) {
	tests := []struct {
		name string
		ins  []emulator.Instance
	}{
		{"MalformedID", []emulator.Instance{{ID: "ins-123"}}},
		{"UppercaseID", []emulator.Instance{{ID: "ins-ABCDEFGH"}}},
		{"DuplicateInCall", []emulator.Instance{{ID: "ins-aaaaaaaa"}, {ID: "ins-aaaaaaaa"}}},
		{"Existing", []emulator.Instance{{ID: "ins-exist001"}}},
		{"UnknownState", []emulator.Instance{{ID: "ins-aaaaaaaa", State: "running"}}},
		{"BadIP", []emulator.Instance{{ID: "ins-aaaaaaaa", PrivateIPs: []string{"10.0.0.300"}}}},
		{"ZoneOutsideRegion", []emulator.Instance{{ID: "ins-aaaaaaaa", Region: "ap-beijing", Zone: "ap-guangzhou-3"}}},
		{"BadRegion", []emulator.Instance{{ID: "ins-aaaaaaaa", Region: "Guangzhou"}}},
		{"EmptyTagKey", []emulator.Instance{{ID: "ins-aaaaaaaa", Tags: map[string]string{"": "x"}}}},
		{"OneBadOfMany", []emulator.Instance{{ID: "ins-aaaaaaaa"}, {ID: "bad"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := emulator.New(emulator.Config{})
			if err := e.Add(emulator.Instance{ID: "ins-exist001"}); err != nil {
				t.Fatal(err)
			}
			if err := e.Add(tt.ins...); err == nil {
				t.Fatal("Add succeeded, want an error")
			}
			if _, ok := e.Status("ins-aaaaaaaa"); ok {
				t.Error("a rejected Add left ins-aaaaaaaa behind")
			}
			if got, want := len(e.IDs()), 1; got != want {
				t.Errorf("instances = %d, want %d", got, want)
			}
		})
	}
}

func TestStatusIsACopy(t *testing.T) {
	tags := map[string]string{"env": "prod"}
	ips := []string{"10.0.0.1"}
	e, _ := mustStart(t, emulator.Config{}, emulator.Instance{ID: "ins-aaaaaaaa", Tags: tags, PrivateIPs: ips})
	tags["env"] = "changed by the caller"
	ips[0] = "10.9.9.9"
	s := mustStatus(t, e, "ins-aaaaaaaa")
	s.Tags["env"] = "changed through a Status"
	s.PrivateIPs[0] = "10.8.8.8"
	s = mustStatus(t, e, "ins-aaaaaaaa")
	if got, want := s.Tags["env"], "prod"; got != want {
		t.Errorf("tag env = %q, want %q", got, want)
	}
	if got, want := s.PrivateIPs[0], "10.0.0.1"; got != want {
		t.Errorf("private IP = %q, want %q", got, want)
	}
	if got, want := s.Name, "未命名"; got != want {
		t.Errorf("default name = %q, want %q", got, want)
	}
}
