package emulator_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
)

// TestConcurrentUse runs many SDK clients at once against one emulator, a
// test clock moving under them and faults being replaced; run it with
// -race. Every accepted reboot must be counted exactly once.
func TestConcurrentUse(t *testing.T) {
	clk := newClock()
	const workers, perWorker = 6, 20
	e, url := emulatortest.Start(t, emulator.Config{Now: clk.Now, CallsPerSecond: -1, DescribeCallsPerSecond: -1, RebootDuration: time.Second}, fleet(workers*perWorker)...)
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := emulatortest.Client(t, url, region, emulatortest.SecretID, emulatortest.SecretKey)
			for i := range perWorker {
				id := testID(w*perWorker + i)
				if _, err := c.RebootInstances(rebootRequest(id)); err == nil {
					accepted.Add(1)
				}
				req := cvm.NewDescribeInstancesRequest()
				req.Filters = filters("instance-state", "REBOOTING|RUNNING")
				req.Limit = common.Int64Ptr(5)
				if _, err := c.DescribeInstances(req); err != nil {
					t.Errorf("DescribeInstances: %v", err)
				}
				st := cvm.NewDescribeInstancesStatusRequest()
				st.InstanceIds = common.StringPtrs([]string{id})
				if _, err := c.DescribeInstancesStatus(st); err != nil {
					t.Errorf("DescribeInstancesStatus: %v", err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			clk.Advance(100 * time.Millisecond)
			if i%10 == 0 {
				e.SetFaults(emulator.Fault{Action: "RebootInstances", Code: "InternalError", Rate: 0.2})
			} else if i%10 == 5 {
				e.SetFaults()
			}
			e.Status(testID(i))
			e.Calls("")
		}
	}()
	wg.Wait()

	var counted int64
	for i := range workers * perWorker {
		counted += int64(e.RebootCalls(testID(i)))
	}
	if got, want := counted, accepted.Load(); got != want {
		t.Errorf("reboots counted = %d, accepted = %d", got, want)
	}
	if got, want := e.Calls("RebootInstances"), workers*perWorker; got != want {
		t.Errorf("Calls(RebootInstances) = %d, want %d", got, want)
	}
	if accepted.Load() == 0 {
		t.Error("no reboot was accepted")
	}
}
