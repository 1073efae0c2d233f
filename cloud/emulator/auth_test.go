package emulator_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
)

func TestSignatureThroughSDK(t *testing.T) {
	clk := newClock()
	_, url := emulatortest.Start(t, emulator.Config{Now: clk.Now}, emulator.Instance{ID: "ins-aaaaaaaa"})
	tests := []struct {
		name    string
		id, key string
		skew    time.Duration // of the emulator's clock against the SDK's
		want    string
	}{
		{"Valid", emulatortest.SecretID, emulatortest.SecretKey, 0, ""},
		{"BadKey", emulatortest.SecretID, "wrong-key-123", 0, "AuthFailure.SignatureFailure"},
		{"UnknownSecretID", "AKIDnobody", emulatortest.SecretKey, 0, "AuthFailure.SecretIdNotFound"},
		{"TimestampTooOld", emulatortest.SecretID, emulatortest.SecretKey, 6 * time.Minute, "AuthFailure.SignatureExpire"},
		{"TimestampInFuture", emulatortest.SecretID, emulatortest.SecretKey, -6 * time.Minute, "AuthFailure.SignatureExpire"},
		{"SmallSkew", emulatortest.SecretID, emulatortest.SecretKey, 4 * time.Minute, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(tt.skew)
			defer clk.Advance(-tt.skew)
			c := emulatortest.Client(t, url, region, tt.id, tt.key)
			resp, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest())
			if got := codeOf(t, err); got != tt.want {
				t.Fatalf("code = %q, want %q (%v)", got, tt.want, err)
			}
			if err != nil {
				e := sdkError(t, err)
				if e.RequestId == "" {
					t.Errorf("error has no RequestId")
				}
				if strings.Contains(e.Message, tt.key) || strings.Contains(e.Message, emulatortest.SecretKey) {
					t.Errorf("message shows a key: %s", e.Message)
				}
				return
			}
			if got, want := *resp.Response.TotalCount, int64(1); got != want {
				t.Errorf("TotalCount = %d, want %d", got, want)
			}
		})
	}
}

func TestSignatureWindowCanBeTurnedOff(t *testing.T) {
	clk := newClock()
	clk.Advance(72 * time.Hour)
	_, c := mustStart(t, emulator.Config{Now: clk.Now, SignatureWindow: -1}, emulator.Instance{ID: "ins-aaaaaaaa"})
	if _, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest()); err != nil {
		t.Fatalf("DescribeInstances with the window off: %v", err)
	}
}

func TestGETRequests(t *testing.T) {
	e, url := emulatortest.Start(t, emulator.Config{}, fleet(3)...)
	cpf := profile.NewClientProfile()
	cpf.HttpProfile.Scheme = "HTTP"
	cpf.HttpProfile.Endpoint = strings.TrimPrefix(url, "http://")
	cpf.HttpProfile.ReqMethod = "GET"
	c, err := cvm.NewClient(common.NewCredential(emulatortest.SecretID, emulatortest.SecretKey), region, cpf)
	if err != nil {
		t.Fatal(err)
	}
	got := mustDescribe(t, c, testID(0), testID(2))
	if len(got) != 2 || got[testID(0)] == nil || got[testID(2)] == nil {
		t.Fatalf("GET DescribeInstances found %d instances, want %s and %s", len(got), testID(0), testID(2))
	}
	req := cvm.NewDescribeInstancesRequest()
	req.Filters = []*cvm.Filter{{Name: common.StringPtr("instance-id"), Values: common.StringPtrs([]string{testID(1)})}}
	resp, err := c.DescribeInstances(req)
	if err != nil {
		t.Fatalf("GET DescribeInstances with a filter: %v", err)
	}
	if got, want := *resp.Response.TotalCount, int64(1); got != want {
		t.Errorf("TotalCount = %d, want %d", got, want)
	}
	reqID := mustReboot(t, c, testID(1))
	if got := mustStatus(t, e, testID(1)); got.State != emulator.StateRebooting || got.LatestOperationRequestID != reqID {
		t.Errorf("after GET RebootInstances: state %s, request %s; want REBOOTING, %s", got.State, got.LatestOperationRequestID, reqID)
	}
}
