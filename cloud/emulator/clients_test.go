package emulator_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	cvm "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"

	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
)

// sdkClient returns an official SDK client for the emulator at rawURL
// that signs with signMethod and sends reqMethod requests.
func sdkClient(t *testing.T, rawURL string, cred common.CredentialIface, signMethod, reqMethod string) *cvm.Client {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	cpf := profile.NewClientProfile()
	cpf.SignMethod = signMethod
	cpf.HttpProfile.Scheme = strings.ToUpper(u.Scheme)
	cpf.HttpProfile.Endpoint = u.Host
	cpf.HttpProfile.ReqMethod = reqMethod
	cpf.HttpProfile.ReqTimeout = 30
	c, err := cvm.NewClient(cred, region, cpf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signMethods are the signature methods the official SDKs offer.
var signMethods = []string{"TC3-HMAC-SHA256", "HmacSHA256", "HmacSHA1"}

func TestSignatureMethodsThroughSDK(t *testing.T) {
	for _, sm := range signMethods {
		for _, verb := range []string{"POST", "GET"} {
			t.Run(sm+"/"+verb, func(t *testing.T) {
				e, url := emulatortest.Start(t, emulator.Config{}, fleet(3)...)
				c := sdkClient(t, url, common.NewCredential(emulatortest.SecretID, emulatortest.SecretKey), sm, verb)

				got := mustDescribe(t, c, testID(0), testID(2))
				if len(got) != 2 || got[testID(0)] == nil || got[testID(2)] == nil {
					t.Fatalf("DescribeInstances found %d instances, want %s and %s", len(got), testID(0), testID(2))
				}
				req := cvm.NewDescribeInstancesRequest()
				req.Filters = []*cvm.Filter{{Name: common.StringPtr("instance-name"), Values: common.StringPtrs([]string{"node-" + testID(1)[4:]})}}
				resp, err := c.DescribeInstances(req)
				if err != nil {
					t.Fatalf("DescribeInstances with a filter: %v", err)
				}
				if got, want := *resp.Response.TotalCount, int64(1); got != want {
					t.Errorf("TotalCount = %d, want %d", got, want)
				}
				reqID := mustReboot(t, c, testID(1))
				if got := mustStatus(t, e, testID(1)); got.State != emulator.StateRebooting || got.LatestOperationRequestID != reqID {
					t.Errorf("after RebootInstances: state %s, request %s; want REBOOTING, %s", got.State, got.LatestOperationRequestID, reqID)
				}
				if got, want := e.Calls("RebootInstances"), 1; got != want {
					t.Errorf("RebootInstances calls = %d, want %d", got, want)
				}
			})
		}
	}
}

func TestSignatureMethodsRefuseBadCredentials(t *testing.T) {
	clk := newClock()
	_, url := emulatortest.Start(t, emulator.Config{Now: clk.Now}, fleet(1)...)
	tests := []struct {
		name    string
		id, key string
		skew    time.Duration // of the emulator's clock against the SDK's
		want    string
	}{
		{"BadKey", emulatortest.SecretID, "wrong-key-123", 0, "AuthFailure.SignatureFailure"},
		{"UnknownSecretID", "AKIDnobody", emulatortest.SecretKey, 0, "AuthFailure.SecretIdNotFound"},
		{"TimestampTooOld", emulatortest.SecretID, emulatortest.SecretKey, 6 * time.Minute, "AuthFailure.SignatureExpire"},
		{"TimestampInFuture", emulatortest.SecretID, emulatortest.SecretKey, -6 * time.Minute, "AuthFailure.SignatureExpire"},
		{"SmallSkew", emulatortest.SecretID, emulatortest.SecretKey, 4 * time.Minute, ""},
	}
	for _, sm := range signMethods[1:] {
		for _, tt := range tests {
			t.Run(sm+"/"+tt.name, func(t *testing.T) {
				clk.Advance(tt.skew)
				defer clk.Advance(-tt.skew)
				c := sdkClient(t, url, common.NewCredential(tt.id, tt.key), sm, "POST")
				_, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest())
				if got := codeOf(t, err); got != tt.want {
					t.Fatalf("code = %q, want %q (%v)", got, tt.want, err)
				}
				if err != nil && strings.Contains(sdkError(t, err).Message, tt.key) {
					t.Errorf("message shows the key: %s", sdkError(t, err).Message)
				}
			})
		}
	}
}

// hostRewriter sends requests to addr while leaving the host they were
// signed with in the URL the SDK built: as the official Node.js SDK does
// when it signs the host name without the port.
type hostRewriter struct{ addr string }

func (h hostRewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Host = h.addr
	r.Host = h.addr
	return http.DefaultTransport.RoundTrip(r)
}

func TestHostSignedWithoutPort(t *testing.T) {
	_, rawURL := emulatortest.Start(t, emulator.Config{}, fleet(2)...)
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		signedHost string
		want       string
	}{
		{"127.0.0.1", ""}, // the host without its port
		{u.Host, ""},      // the host as sent
		{"localhost", "AuthFailure.SignatureFailure"},               // another name for the same machine is another host
		{"cvm.tencentcloudapi.com", "AuthFailure.SignatureFailure"}, // and so is the real endpoint
	}
	for _, sm := range signMethods {
		for _, tt := range tests {
			t.Run(sm+"/"+tt.signedHost, func(t *testing.T) {
				c := sdkClient(t, "http://"+tt.signedHost, common.NewCredential(emulatortest.SecretID, emulatortest.SecretKey), sm, "POST")
				c.WithHttpTransport(hostRewriter{addr: u.Host})
				resp, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest())
				if got := codeOf(t, err); got != tt.want {
					t.Fatalf("code = %q, want %q (%v)", got, tt.want, err)
				}
				if err == nil && *resp.Response.TotalCount != 2 {
					t.Errorf("TotalCount = %d, want 2", *resp.Response.TotalCount)
				}
			})
		}
	}
}

func TestSessionTokenThroughSDK(t *testing.T) {
	const token = "emulator-session-token-0001"
	_, url := emulatortest.Start(t, emulator.Config{Token: token}, fleet(1)...)
	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"Right", token, ""},
		{"Missing", "", "AuthFailure.TokenFailure"},
		{"Wrong", "another-session-token", "AuthFailure.TokenFailure"},
	}
	for _, sm := range signMethods {
		for _, tt := range tests {
			t.Run(sm+"/"+tt.name, func(t *testing.T) {
				cred := common.NewTokenCredential(emulatortest.SecretID, emulatortest.SecretKey, tt.token)
				c := sdkClient(t, url, cred, sm, "POST")
				_, err := c.DescribeInstances(cvm.NewDescribeInstancesRequest())
				if got := codeOf(t, err); got != tt.want {
					t.Fatalf("code = %q, want %q (%v)", got, tt.want, err)
				}
				if err != nil {
					if msg := sdkError(t, err).Message; strings.Contains(msg, token) || strings.Contains(msg, "another-session-token") {
						t.Errorf("message shows a token: %s", msg)
					}
				}
			})
		}
	}
}
