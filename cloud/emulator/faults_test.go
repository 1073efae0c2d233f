package emulator_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
	"rebootbot/internal/testutil"
)

func TestFaultAlways(t *testing.T) {
	e, c := mustStart(t, emulator.Config{}, fleet(2)...)
	e.SetFaults(emulator.Fault{Action: "RebootInstances", Code: "InternalError", Message: "try later", Rate: 1})

	for range 3 {
		_, err := c.RebootInstances(rebootRequest(testID(0)))
		se := sdkError(t, err)
		if se.Code != "InternalError" || se.Message != "try later" {
			t.Fatalf("error = %s %q, want InternalError %q", se.Code, se.Message, "try later")
		}
	}
	if got := e.RebootCalls(testID(0)); got != 0 {
		t.Errorf("RebootCalls = %d, want 0: an injected error means nothing happened", got)
	}
	if got, want := mustStatus(t, e, testID(0)).State, emulator.StateRunning; got != want {
		t.Errorf("state = %s, want %s", got, want)
	}
	if got, want := e.Calls("RebootInstances"), 3; got != want {
		t.Errorf("Calls(RebootInstances) = %d, want %d", got, want)
	}
	// Other actions are not affected.
	mustDescribe(t, c, testID(0))

	e.SetFaults()
	mustReboot(t, c, testID(0))
}

func TestFaultCount(t *testing.T) {
	e, c := mustStart(t, emulator.Config{CallsPerSecond: -1}, fleet(1)...)
	e.SetFaults(emulator.Fault{Code: "RequestLimitExceeded", Count: 2})
	var codes []string
	for range 4 {
		_, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest())
		codes = append(codes, codeOf(t, err))
	}
	want := []string{"RequestLimitExceeded", "RequestLimitExceeded", "", ""}
	for i := range want {
		if codes[i] != want[i] {
			t.Errorf("call %d: code = %q, want %q", i+1, codes[i], want[i])
		}
	}
	if got, want := e.Calls("DescribeInstances"), 4; got != want {
		t.Errorf("Calls = %d, want %d", got, want)
	}
}

func TestFaultRate(t *testing.T) {
	e, c := mustStart(t, emulator.Config{Seed: 42, CallsPerSecond: -1, DescribeCallsPerSecond: -1}, fleet(1)...)
	e.SetFaults(emulator.Fault{Action: "DescribeInstances", Code: "InternalError", Rate: 0.5})
	failed := 0
	const n = 200
	for range n {
		if _, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest()); err != nil {
			failed++
		}
	}
	if failed < n/4 || failed > 3*n/4 {
		t.Errorf("%d of %d calls failed, want about half", failed, n)
	}
}

// TestLatencyAfterAction shows the ambiguity the adapter must handle: the
// client gives up while the answer is delayed, yet the reboot happened.
func TestLatencyAfterAction(t *testing.T) {
	e, url := emulatortest.Start(t, emulator.Config{}, fleet(1)...)
	e.SetFaults(emulator.Fault{Action: "RebootInstances", Latency: time.Hour})

	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Scheme = "HTTP"
	cpf.HttpProfile.Endpoint = url[len("http://"):]
	c, err := cvm.NewClient(common.NewCredential(emulatortest.SecretID, emulatortest.SecretKey), region, cpf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req := rebootRequest(testID(0))
		req.SetContext(ctx)
		_, err := c.RebootInstancesWithContext(ctx, req)
		done <- err
	}()
	// Wait until the emulator has performed the reboot, then give up.
	testutil.Eventually(t, 10*time.Second, func() bool { return e.RebootCalls(testID(0)) > 0 }, "the reboot to happen")
	cancel()
	err = <-done
	if err == nil {
		t.Fatal("the call succeeded, want the client to give up")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want a cancelled call", err)
	}
	if got, want := mustStatus(t, e, testID(0)).State, emulator.StateRebooting; got != want {
		t.Errorf("state = %s, want %s: the action ran before the latency", got, want)
	}
}

func TestLatencyWithError(t *testing.T) {
	// An error fault and a latency fault both apply: the error is answered
	// after the latency. Latency is short here and nothing measures it.
	var mu sync.Mutex
	var seen []emulator.Call
	e, c := mustStart(t, emulator.Config{OnCall: func(c emulator.Call) {
		mu.Lock()
		seen = append(seen, c)
		mu.Unlock()
	}}, fleet(1)...)
	e.SetFaults(
		emulator.Fault{Code: "InternalError", Count: 1},
		emulator.Fault{Latency: time.Millisecond},
	)
	_, err := c.RebootInstances(rebootRequest(testID(0)))
	if got, want := codeOf(t, err), "InternalError"; got != want {
		t.Errorf("code = %q, want %q", got, want)
	}
	mustReboot(t, c, testID(0))
	mu.Lock()
	defer mu.Unlock()
	if got, want := len(seen), 2; got != want {
		t.Fatalf("OnCall saw %d calls, want %d", got, want)
	}
	if seen[0].ErrorCode != "InternalError" || seen[1].ErrorCode != "" {
		t.Errorf("OnCall codes = %q, %q; want InternalError, none", seen[0].ErrorCode, seen[1].ErrorCode)
	}
	if seen[1].Action != "RebootInstances" || seen[1].Region != region || len(seen[1].InstanceIDs) != 1 || seen[1].InstanceIDs[0] != testID(0) {
		t.Errorf("OnCall = %+v, want RebootInstances in %s of %s", seen[1], region, testID(0))
	}
	if seen[1].RequestID == "" || seen[1].RequestID == seen[0].RequestID {
		t.Errorf("RequestIds %q, %q: want distinct and set", seen[0].RequestID, seen[1].RequestID)
	}
}

func TestCallsCountsEveryRequest(t *testing.T) {
	e, url := emulatortest.Start(t, emulator.Config{}, fleet(1)...)
	c := emulatortest.Client(t, url, region, emulatortest.SecretID, emulatortest.SecretKey)
	bad := emulatortest.Client(t, url, region, emulatortest.SecretID, "wrong")
	mustDescribe(t, c, testID(0))
	bad.DescribeInstances(cvm.NewDescribeInstancesRequest())
	mustReboot(t, c, testID(0))
	resp, err := http.Post(url, "application/json", nil) // not even signed
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	tests := []struct {
		action string
		want   int
	}{
		{"DescribeInstances", 2},
		{"RebootInstances", 1},
		{"StartInstances", 0},
		{"", 4},
	}
	for _, tt := range tests {
		if got := e.Calls(tt.action); got != tt.want {
			t.Errorf("Calls(%q) = %d, want %d", tt.action, got, tt.want)
		}
	}
}
