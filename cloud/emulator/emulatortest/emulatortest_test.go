package emulatortest_test

import (
	"strings"
	"testing"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
)

func TestStartAndClient(t *testing.T) {
	tests := []struct {
		name     string
		cfg      emulator.Config
		id, key  string
		endpoint func(url string) string
	}{
		{"DefaultKeyURL", emulator.Config{}, emulatortest.SecretID, emulatortest.SecretKey, func(u string) string { return u }},
		{"OwnKeyHostPort", emulator.Config{SecretID: "AKIDown", SecretKey: "ownkey"}, "AKIDown", "ownkey",
			func(u string) string { return strings.TrimPrefix(u, "http://") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, url := emulatortest.Start(t, tt.cfg, emulator.Instance{ID: "ins-aaaaaaaa"}, emulator.Instance{ID: "ins-bbbbbbbb"})
			if !strings.HasPrefix(url, "http://127.0.0.1:") {
				t.Errorf("endpoint = %q, want http://127.0.0.1:port", url)
			}
			c := emulatortest.Client(t, tt.endpoint(url), "ap-guangzhou", tt.id, tt.key)
			req := cvm.NewRebootInstancesRequest()
			req.InstanceIds = common.StringPtrs([]string{"ins-bbbbbbbb"})
			resp, err := c.RebootInstances(req)
			if err != nil {
				t.Fatalf("RebootInstances: %v", err)
			}
			s, _ := e.Status("ins-bbbbbbbb")
			if got, want := s.LatestOperationRequestID, *resp.Response.RequestId; got != want {
				t.Errorf("LatestOperationRequestId = %q, want %q", got, want)
			}
			if got, want := e.RebootCalls("ins-bbbbbbbb"), 1; got != want {
				t.Errorf("RebootCalls = %d, want %d", got, want)
			}
		})
	}
}
