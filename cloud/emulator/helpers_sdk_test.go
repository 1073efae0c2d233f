package emulator_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	sdkerrors "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
)

const region = "ap-guangzhou"

// clock is a test clock that moves only when told to. It starts at the
// real time, which the SDK signs with.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// mustStart starts an emulator with ins and returns it with an SDK client
// for ap-guangzhou.
func mustStart(t *testing.T, cfg emulator.Config, ins ...emulator.Instance) (*emulator.Emulator, *cvm.Client) {
	t.Helper()
	e, url := emulatortest.Start(t, cfg, ins...)
	return e, emulatortest.Client(t, url, region, emulatortest.SecretID, emulatortest.SecretKey)
}

// sdkError returns the API error of err, failing the test when err is nil
// or not an API error.
func sdkError(t *testing.T, err error) *sdkerrors.TencentCloudSDKError {
	t.Helper()
	var e *sdkerrors.TencentCloudSDKError
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want a TencentCloudSDKError", err)
	}
	return e
}

// codeOf returns the error code of err, "" for nil.
func codeOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	return sdkError(t, err).Code
}

func rebootRequest(ids ...string) *cvm.RebootInstancesRequest {
	r := cvm.NewRebootInstancesRequest()
	r.InstanceIds = common.StringPtrs(ids)
	return r
}

// mustReboot reboots ids and returns the call's RequestId.
func mustReboot(t *testing.T, c *cvm.Client, ids ...string) string {
	t.Helper()
	resp, err := c.RebootInstances(rebootRequest(ids...))
	if err != nil {
		t.Fatalf("RebootInstances(%v): %v", ids, err)
	}
	return *resp.Response.RequestId
}

// mustDescribe describes ids (Limit 100) and returns the instances by ID.
func mustDescribe(t *testing.T, c *cvm.Client, ids ...string) map[string]*cvm.Instance {
	t.Helper()
	req := cvm.NewDescribeInstancesRequest()
	req.InstanceIds = common.StringPtrs(ids)
	req.Limit = common.Int64Ptr(100)
	resp, err := c.DescribeInstances(req)
	if err != nil {
		t.Fatalf("DescribeInstances(%v): %v", ids, err)
	}
	out := map[string]*cvm.Instance{}
	for _, in := range resp.Response.InstanceSet {
		out[*in.InstanceId] = in
	}
	return out
}

func mustStatus(t *testing.T, e *emulator.Emulator, id string) emulator.Status {
	t.Helper()
	s, ok := e.Status(id)
	if !ok {
		t.Fatalf("Status(%s): no such instance", id)
	}
	return s
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// fleet returns n RUNNING instances with predictable IDs ins-t0000000….
func fleet(n int) []emulator.Instance {
	out := make([]emulator.Instance, n)
	for i := range out {
		out[i] = emulator.Instance{ID: testID(i), Name: "node-" + testID(i)[4:]}
	}
	return out
}

func testID(i int) string {
	const digits = "0123456789"
	b := []byte("ins-t0000000")
	for j := len(b) - 1; j >= 5 && i > 0; j-- {
		b[j] = digits[i%10]
		i /= 10
	}
	return string(b)
}
