package emulator_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
)

func TestRebootInstanceStates(t *testing.T) {
	states := []struct {
		state, code string
	}{
		{emulator.StateRunning, ""},
		{emulator.StatePending, "UnsupportedOperation.InstanceStatePending"},
		{emulator.StateLaunchFailed, "UnsupportedOperation.InstanceStateLaunchFailed"},
		{emulator.StateStopped, "UnsupportedOperation.InstanceStateStopped"},
		{emulator.StateStarting, "UnsupportedOperation.InstanceStateStarting"},
		{emulator.StateStopping, "UnsupportedOperation.InstanceStateStopping"},
		{emulator.StateRebooting, "UnsupportedOperation.InstanceStateRebooting"},
		{emulator.StateShutdown, "UnsupportedOperation.InstanceStateShutdown"},
		{emulator.StateTerminating, "UnsupportedOperation.InstanceStateTerminating"},
		{emulator.StateEnterRescueMode, "UnsupportedOperation.InstanceStateEnterRescueMode"},
		{emulator.StateRescueMode, "UnsupportedOperation.InstanceStateRescueMode"},
		{emulator.StateExitRescueMode, "UnsupportedOperation.InstanceStateExitRescueMode"},
		{emulator.StateEnterServiceLiveMigrate, "UnsupportedOperation.InstanceStateEnterServiceLiveMigrate"},
		{emulator.StateServiceLiveMigrate, "UnsupportedOperation.InstanceStateServiceLiveMigrate"},
		{emulator.StateExitServiceLiveMigrate, "UnsupportedOperation.InstanceStateExitServiceLiveMigrate"},
	}
	e, c := mustStart(t, emulator.Config{CallsPerSecond: -1}, emulator.Instance{ID: "ins-aaaaaaaa"})
	for _, tt := range states {
		t.Run(tt.state, func(t *testing.T) {
			if err := e.SetState("ins-aaaaaaaa", tt.state); err != nil {
				t.Fatal(err)
			}
			before := e.RebootCalls("ins-aaaaaaaa")
			_, err := c.RebootInstances(rebootRequest("ins-aaaaaaaa"))
			if got := codeOf(t, err); got != tt.code {
				t.Fatalf("code = %q, want %q", got, tt.code)
			}
			if err != nil {
				if msg := sdkError(t, err).Message; !strings.Contains(msg, "ins-aaaaaaaa") || !strings.Contains(msg, tt.state) {
					t.Errorf("message %q does not name the instance and its state", msg)
				}
				if got, want := e.RebootCalls("ins-aaaaaaaa"), before; got != want {
					t.Errorf("RebootCalls = %d, want %d", got, want)
				}
				if got, want := mustStatus(t, e, "ins-aaaaaaaa").State, tt.state; got != want {
					t.Errorf("state = %s, want %s (unchanged)", got, want)
				}
			}
		})
	}
}

func TestRebootParameters(t *testing.T) {
	ids101 := make([]string, 101)
	for i := range ids101 {
		ids101[i] = testID(i)
	}
	tests := []struct {
		name string
		req  func() *cvm.RebootInstancesRequest
		want string
	}{
		{"Soft", func() *cvm.RebootInstancesRequest {
			r := rebootRequest(testID(0))
			r.StopType = common.StringPtr("SOFT")
			return r
		}, ""},
		{"Hard", func() *cvm.RebootInstancesRequest {
			r := rebootRequest(testID(0))
			r.StopType = common.StringPtr("HARD")
			return r
		}, ""},
		{"SoftFirst", func() *cvm.RebootInstancesRequest {
			r := rebootRequest(testID(0))
			r.StopType = common.StringPtr("SOFT_FIRST")
			return r
		}, ""},
		{"ForceRebootAlone", func() *cvm.RebootInstancesRequest {
			r := rebootRequest(testID(0))
			r.ForceReboot = common.BoolPtr(true) //nolint:staticcheck // the deprecated parameter is what is tested
			return r
		}, ""},
		{"BadStopType", func() *cvm.RebootInstancesRequest {
			r := rebootRequest(testID(0))
			r.StopType = common.StringPtr("soft")
			return r
		}, "InvalidParameterValue"},
		{"ForceRebootWithStopType", func() *cvm.RebootInstancesRequest {
			r := rebootRequest(testID(0))
			r.StopType = common.StringPtr("HARD")
			r.ForceReboot = common.BoolPtr(true) //nolint:staticcheck // the deprecated parameter is what is tested
			return r
		}, "InvalidParameterCombination"},
		{"NoInstanceIds", func() *cvm.RebootInstancesRequest { return cvm.NewRebootInstancesRequest() }, "MissingParameter"},
		{"Exactly100", func() *cvm.RebootInstancesRequest { return rebootRequest(ids101[:100]...) }, ""},
		{"TooMany", func() *cvm.RebootInstancesRequest { return rebootRequest(ids101...) }, "InvalidParameterValue.LimitExceeded"},
		{"Malformed", func() *cvm.RebootInstancesRequest { return rebootRequest(testID(0), "ins-1234", "i-aaaaaaaa") }, "InvalidInstanceId.Malformed"},
		{"Uppercase", func() *cvm.RebootInstancesRequest { return rebootRequest("ins-AAAAAAAA") }, "InvalidInstanceId.Malformed"},
		{"Unknown", func() *cvm.RebootInstancesRequest { return rebootRequest(testID(0), "ins-zzzzzzzz") }, "InvalidInstanceId.NotFound"},
		{"Duplicates", func() *cvm.RebootInstancesRequest { return rebootRequest(testID(0), testID(0)) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, c := mustStart(t, emulator.Config{}, fleet(101)...)
			req := tt.req()
			_, err := c.RebootInstances(req)
			if got := codeOf(t, err); got != tt.want {
				t.Fatalf("code = %q, want %q (%v)", got, tt.want, err)
			}
			want := 0
			if err == nil {
				want = 1
			}
			for _, id := range req.InstanceIds {
				if got := e.RebootCalls(*id); got != want {
					t.Errorf("RebootCalls(%s) = %d, want %d", *id, got, want)
				}
			}
		})
	}
}

func TestRebootBatchWithOneBadInstanceRebootsNothing(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(e *emulator.Emulator)
		bad     string
		want    string
	}{
		{"Stopped", func(e *emulator.Emulator) { e.SetState(testID(3), emulator.StateStopped) }, testID(3), "UnsupportedOperation.InstanceStateStopped"},
		{"Unknown", func(*emulator.Emulator) {}, "ins-zzzzzzzz", "InvalidInstanceId.NotFound"},
		{"Malformed", func(*emulator.Emulator) {}, "ins-bad", "InvalidInstanceId.Malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, c := mustStart(t, emulator.Config{}, fleet(6)...)
			tt.prepare(e)
			ids := []string{testID(0), testID(1), tt.bad, testID(4), testID(5)}
			_, err := c.RebootInstances(rebootRequest(ids...))
			if got := codeOf(t, err); got != tt.want {
				t.Fatalf("code = %q, want %q", got, tt.want)
			}
			if msg := sdkError(t, err).Message; !strings.Contains(msg, tt.bad) {
				t.Errorf("message %q does not name %s", msg, tt.bad)
			}
			for _, id := range []string{testID(0), testID(1), testID(4), testID(5)} {
				if got := e.RebootCalls(id); got != 0 {
					t.Errorf("RebootCalls(%s) = %d, want 0", id, got)
				}
				if got, want := mustStatus(t, e, id).State, emulator.StateRunning; got != want {
					t.Errorf("state of %s = %s, want %s", id, got, want)
				}
			}
		})
	}
}

func TestRebootStateErrorNamesEveryInstanceInThatState(t *testing.T) {
	e, c := mustStart(t, emulator.Config{}, fleet(4)...)
	e.SetState(testID(1), emulator.StateStopped)
	e.SetState(testID(3), emulator.StateStopped)
	_, err := c.RebootInstances(rebootRequest(testID(0), testID(1), testID(2), testID(3)))
	msg := sdkError(t, err).Message
	for _, id := range []string{testID(1), testID(3)} {
		if !strings.Contains(msg, id) {
			t.Errorf("message %q does not name %s", msg, id)
		}
	}
	for _, id := range []string{testID(0), testID(2)} {
		if strings.Contains(msg, id) {
			t.Errorf("message %q names %s, which is RUNNING", msg, id)
		}
	}
}

func TestRebootCompletes(t *testing.T) {
	clk := newClock()
	e, c := mustStart(t, emulator.Config{Now: clk.Now, RebootDuration: 30 * time.Second}, fleet(2)...)

	before := mustDescribe(t, c, testID(0))[testID(0)]
	if before.LatestOperation != nil || before.LatestOperationRequestId != nil {
		t.Errorf("a fresh instance has latest operation %s/%s, want none", str(before.LatestOperation), str(before.LatestOperationRequestId))
	}

	reqID := mustReboot(t, c, testID(0), testID(1))
	check := func(when string, state, opState string) {
		t.Helper()
		got := mustDescribe(t, c, testID(0), testID(1))
		for _, id := range []string{testID(0), testID(1)} {
			in := got[id]
			if in == nil {
				t.Fatalf("%s: %s missing", when, id)
			}
			if g := str(in.InstanceState); g != state {
				t.Errorf("%s: %s state = %s, want %s", when, id, g, state)
			}
			if g, w := str(in.LatestOperation), "RebootInstances"; g != w {
				t.Errorf("%s: %s LatestOperation = %s, want %s", when, id, g, w)
			}
			if g := str(in.LatestOperationState); g != opState {
				t.Errorf("%s: %s LatestOperationState = %s, want %s", when, id, g, opState)
			}
			if g := str(in.LatestOperationRequestId); g != reqID {
				t.Errorf("%s: %s LatestOperationRequestId = %s, want %s", when, id, g, reqID)
			}
		}
	}
	check("right after", "REBOOTING", "OPERATING")
	clk.Advance(29 * time.Second)
	check("after 29s", "REBOOTING", "OPERATING")
	clk.Advance(time.Second)
	check("after 30s", "RUNNING", "SUCCESS")

	if got, want := e.RebootCalls(testID(0)), 1; got != want {
		t.Errorf("RebootCalls = %d, want %d", got, want)
	}
	// A second reboot is a new operation with a new RequestId.
	second := mustReboot(t, c, testID(0))
	if second == reqID {
		t.Errorf("second reboot reused RequestId %s", reqID)
	}
	if got := mustStatus(t, e, testID(0)); got.LatestOperationRequestID != second || got.State != emulator.StateRebooting {
		t.Errorf("after the second reboot: %s %s, want REBOOTING %s", got.State, got.LatestOperationRequestID, second)
	}
}

func TestFailNextReboot(t *testing.T) {
	clk := newClock()
	e, c := mustStart(t, emulator.Config{Now: clk.Now}, fleet(2)...)
	e.FailNextReboot(testID(0))
	reqID := mustReboot(t, c, testID(0), testID(1))
	clk.Advance(emulator.DefaultRebootDuration)

	failed := mustStatus(t, e, testID(0))
	if failed.State != emulator.StateRunning || failed.LatestOperationState != "FAILED" || failed.LatestOperationRequestID != reqID {
		t.Errorf("failed instance: state %s, operation %s (%s); want RUNNING, FAILED (%s)",
			failed.State, failed.LatestOperationState, failed.LatestOperationRequestID, reqID)
	}
	if failed.LatestOperationErrorMsg == "" {
		t.Error("failed instance has no LatestOperationErrorMsg")
	}
	in := mustDescribe(t, c, testID(0))[testID(0)]
	if got, want := str(in.LatestOperationState), "FAILED"; got != want {
		t.Errorf("DescribeInstances LatestOperationState = %s, want %s", got, want)
	}
	if str(in.LatestOperationErrorMsg) == "" {
		t.Error("DescribeInstances shows no LatestOperationErrorMsg")
	}
	if got := mustStatus(t, e, testID(1)); got.LatestOperationState != "SUCCESS" {
		t.Errorf("other instance: operation %s, want SUCCESS", got.LatestOperationState)
	}

	// Only the next reboot fails.
	mustReboot(t, c, testID(0))
	clk.Advance(emulator.DefaultRebootDuration)
	if got := mustStatus(t, e, testID(0)); got.LatestOperationState != "SUCCESS" || got.LatestOperationErrorMsg != "" {
		t.Errorf("second reboot: %s %q, want SUCCESS and no error", got.LatestOperationState, got.LatestOperationErrorMsg)
	}
}

func TestRebootRateLimit(t *testing.T) {
	clk := newClock()
	e, c := mustStart(t, emulator.Config{Now: clk.Now}, fleet(12)...)
	for i := range 10 {
		mustReboot(t, c, testID(i))
	}
	_, err := c.RebootInstances(rebootRequest(testID(10)))
	if got, want := codeOf(t, err), "RequestLimitExceeded"; got != want {
		t.Fatalf("11th call in one second: code = %q, want %q", got, want)
	}
	if got := e.RebootCalls(testID(10)); got != 0 {
		t.Errorf("RebootCalls of the refused instance = %d, want 0", got)
	}
	if got, want := e.Calls("RebootInstances"), 11; got != want {
		t.Errorf("Calls(RebootInstances) = %d, want %d", got, want)
	}
	// Describe calls count against their own limit.
	for range 20 {
		mustDescribe(t, c, testID(0))
	}
	clk.Advance(time.Second)
	mustReboot(t, c, testID(10))
}

// TestDescribeRateLimit: DescribeInstances is refused past 40 calls in a
// second, before it reads anything, and the reboot budget is its own.
func TestDescribeRateLimit(t *testing.T) {
	clk := newClock()
	var mu sync.Mutex
	var at []time.Time // of each DescribeInstances call, as OnCall tells it
	e, c := mustStart(t, emulator.Config{Now: clk.Now, OnCall: func(c emulator.Call) {
		if c.Action == "DescribeInstances" {
			mu.Lock()
			at = append(at, c.At)
			mu.Unlock()
		}
	}}, fleet(2)...)
	start := clk.Now()
	for range emulator.DefaultDescribeCallsPerSecond {
		mustDescribe(t, c, testID(0))
	}
	_, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest())
	if got, want := codeOf(t, err), "RequestLimitExceeded"; got != want {
		t.Fatalf("41st DescribeInstances in one second: code = %q, want %q", got, want)
	}
	mustReboot(t, c, testID(1))
	clk.Advance(time.Second)
	mustDescribe(t, c, testID(0))
	if got, want := e.Calls("DescribeInstances"), emulator.DefaultDescribeCallsPerSecond+2; got != want {
		t.Errorf("Calls(DescribeInstances) = %d, want %d", got, want)
	}
	// OnCall tells when each call was counted against the rate.
	mu.Lock()
	defer mu.Unlock()
	if len(at) != emulator.DefaultDescribeCallsPerSecond+2 || !at[0].Equal(start) || !at[len(at)-1].Equal(start.Add(time.Second)) {
		t.Errorf("OnCall times: %d calls, first %v, last %v; want %d, at %v and %v", len(at), at[0], at[len(at)-1],
			emulator.DefaultDescribeCallsPerSecond+2, start, start.Add(time.Second))
	}
}

func TestRebootRateLimitConfigured(t *testing.T) {
	tests := []struct {
		name      string
		perSecond int
		accepted  int
	}{
		{"Three", 3, 3},
		{"Unlimited", -1, 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			_, c := mustStart(t, emulator.Config{Now: clk.Now, CallsPerSecond: tt.perSecond}, fleet(30)...)
			accepted := 0
			for i := range 30 {
				if _, err := c.RebootInstances(rebootRequest(testID(i))); err == nil {
					accepted++
				} else if got, want := codeOf(t, err), "RequestLimitExceeded"; got != want {
					t.Fatalf("code = %q, want %q", got, want)
				}
			}
			if accepted != tt.accepted {
				t.Errorf("accepted = %d, want %d", accepted, tt.accepted)
			}
		})
	}
}

func TestRegions(t *testing.T) {
	e, url := emulatortest.Start(t, emulator.Config{},
		emulator.Instance{ID: "ins-gz000001"},
		emulator.Instance{ID: "ins-sh000001", Zone: "ap-shanghai-2"},
		emulator.Instance{ID: "ins-sg000001", Region: "ap-singapore", Zone: "ap-singapore-1"},
	)
	gz := emulatortest.Client(t, url, "ap-guangzhou", emulatortest.SecretID, emulatortest.SecretKey)
	sh := emulatortest.Client(t, url, "ap-shanghai", emulatortest.SecretID, emulatortest.SecretKey)
	bj := emulatortest.Client(t, url, "ap-beijing", emulatortest.SecretID, emulatortest.SecretKey)

	if got := mustDescribe(t, gz, "ins-gz000001", "ins-sh000001"); len(got) != 1 || got["ins-gz000001"] == nil {
		t.Errorf("ap-guangzhou sees %d instances, want only ins-gz000001", len(got))
	}
	if got := mustDescribe(t, sh, "ins-gz000001", "ins-sh000001"); len(got) != 1 || got["ins-sh000001"] == nil {
		t.Errorf("ap-shanghai sees %d instances, want only ins-sh000001", len(got))
	}
	resp, err := bj.DescribeInstances(cvm.NewDescribeInstancesRequest())
	if err != nil {
		t.Fatal(err)
	}
	if got := *resp.Response.TotalCount; got != 0 {
		t.Errorf("ap-beijing TotalCount = %d, want 0", got)
	}

	_, err = gz.RebootInstances(rebootRequest("ins-sh000001"))
	if got, want := codeOf(t, err), "InvalidInstanceId.NotFound"; got != want {
		t.Errorf("rebooting a Shanghai instance through Guangzhou: code = %q, want %q", got, want)
	}
	mustReboot(t, sh, "ins-sh000001")
	if got, want := e.RebootCalls("ins-sh000001"), 1; got != want {
		t.Errorf("RebootCalls = %d, want %d", got, want)
	}

	if s := mustStatus(t, e, "ins-sh000001"); s.Region != "ap-shanghai" || s.Zone != "ap-shanghai-2" {
		t.Errorf("region and zone = %s %s, want ap-shanghai ap-shanghai-2", s.Region, s.Zone)
	}
	if s := mustStatus(t, e, "ins-gz000001"); s.Region != "ap-guangzhou" || s.Zone != "ap-guangzhou-3" {
		t.Errorf("defaults = %s %s, want ap-guangzhou ap-guangzhou-3", s.Region, s.Zone)
	}
}
