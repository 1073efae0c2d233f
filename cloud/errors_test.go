package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"

	"rebootbot/approval"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestAsCloudError(t *testing.T) {
	urlErr := func(cause error) error { return &url.Error{Op: "Post", URL: "http://127.0.0.1:1/", Err: cause} }
	tests := []struct {
		name          string
		err           error
		wantCode      string
		wantRequestID string
		wantTransient bool
	}{
		{"TencentCode", tcerr.NewTencentCloudSDKError("UnsupportedOperation.InstanceStateStopped", "stopped", "req-1"),
			"UnsupportedOperation.InstanceStateStopped", "req-1", false},
		{"RateLimit", tcerr.NewTencentCloudSDKError("RequestLimitExceeded", "slow down", "req-2"), "RequestLimitExceeded", "req-2", true},
		{"Wrapped", fmt.Errorf("reboot: %w", tcerr.NewTencentCloudSDKError("InternalError", "oops", "req-3")), "InternalError", "req-3", true},
		{"DialTimeout", tcerr.NewTencentCloudSDKErrorWithCause("ClientError.NetworkError", "Fail to get response", "",
			urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded})), CodeRequestTimeout, "", true},
		{"NetworkReset", tcerr.NewTencentCloudSDKErrorWithCause("ClientError.NetworkError", "Fail to get response", "",
			urlErr(&net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")})), CodeNetworkError, "", true},
		{"AttemptTimeout", tcerr.NewTencentCloudSDKErrorWithCause("ClientError.NetworkError", "Fail to get response", "",
			urlErr(context.DeadlineExceeded)), CodeRequestTimeout, "", true},
		{"AttemptCanceled", tcerr.NewTencentCloudSDKErrorWithCause("ClientError.NetworkError", "Fail to get response", "",
			urlErr(context.Canceled)), CodeCanceled, "", true},
		{"RawNetTimeout", timeoutErr{}, CodeRequestTimeout, "", true},
		{"RawNet", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("refused")}, CodeNetworkError, "", true},
		{"ContextCanceled", context.Canceled, CodeCanceled, "", true},
		{"ContextDeadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), CodeDeadlineExceeded, "", true},
		{"Status502", tcerr.NewTencentCloudSDKError("ClientError.HttpStatusCodeError", "Request fail with http status code: 502 Bad Gateway, with body: x", ""),
			"ClientError.HttpStatusCodeError", "", true},
		{"Status404", tcerr.NewTencentCloudSDKError("ClientError.HttpStatusCodeError", "Request fail with http status code: 404 Not Found, with body: x", ""),
			"ClientError.HttpStatusCodeError", "", false},
		{"Other", errors.New("boom"), "ClientError.Unknown", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AsCloudError(tt.err)
			if got == nil {
				t.Fatal("AsCloudError returned nil")
			}
			if got.Code != tt.wantCode || got.RequestID != tt.wantRequestID || got.Transient != tt.wantTransient {
				t.Errorf("got {%s %s transient=%v}, want {%s %s transient=%v}",
					got.Code, got.RequestID, got.Transient, tt.wantCode, tt.wantRequestID, tt.wantTransient)
			}
			if got.Explanation == "" {
				t.Error("no explanation")
			}
		})
	}
}

func TestAsCloudErrorNilAndPassThrough(t *testing.T) {
	if got := AsCloudError(nil); got != nil {
		t.Errorf("AsCloudError(nil) = %v, want nil", got)
	}
	ce := &approval.CloudError{Code: "X"}
	if got := AsCloudError(fmt.Errorf("wrapped: %w", ce)); got != ce {
		t.Errorf("AsCloudError did not return the wrapped CloudError")
	}
}

func TestAsCloudErrorTruncatesMessage(t *testing.T) {
	long := strings.Repeat("é", 1000)
	got := AsCloudError(tcerr.NewTencentCloudSDKError("ClientError.ParseJsonError", long, ""))
	if len(got.Message) > maxMessage+len("…") {
		t.Errorf("message is %d bytes, want at most %d", len(got.Message), maxMessage+len("…"))
	}
	if !strings.HasSuffix(got.Message, "…") || !strings.HasPrefix(got.Message, "é") {
		t.Errorf("message %q is not a clean cut", got.Message[:10])
	}
}

func TestAsErrorKinds(t *testing.T) {
	tests := []struct {
		code string
		want approval.Kind
	}{
		{"RequestLimitExceeded", approval.Unavailable},
		{"AuthFailure.SignatureFailure", approval.Forbidden},
		{"UnauthorizedOperation", approval.Forbidden},
		{CodeCredentialError, approval.Forbidden},
		{"InvalidParameterValue", approval.Invalid},
		{CodeInvalidRequest, approval.Invalid},
		{"UnsupportedOperation", approval.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			ce := newCloudError(tt.code, "m", "req")
			err := asError(ce, nil)
			if got := approval.ErrorKind(err); got != tt.want {
				t.Errorf("kind = %s, want %s", got, tt.want)
			}
			var got *approval.CloudError
			if !errors.As(err, &got) || got != ce {
				t.Error("the CloudError is not reachable with errors.As")
			}
			if msg := approval.ErrorMessage(err); !strings.Contains(msg, ce.Explanation) {
				t.Errorf("message %q does not carry the explanation", msg)
			}
		})
	}
	err := asError(newCloudError(CodeCanceled, "", ""), context.Canceled)
	if !errors.Is(err, context.Canceled) {
		t.Error("a cancelled call's error does not match context.Canceled")
	}
}

func TestNotSent(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"Dial", tcerr.NewTencentCloudSDKErrorWithCause("ClientError.NetworkError", "", "", &url.Error{Err: &net.OpError{Op: "dial"}}), true},
		{"DNS", &url.Error{Err: &net.DNSError{Name: "x"}}, true},
		{"Read", &url.Error{Err: &net.OpError{Op: "read"}}, false},
		{"Timeout", &url.Error{Err: context.DeadlineExceeded}, false},
	}
	for _, tt := range tests {
		if got := notSent(tt.err); got != tt.want {
			t.Errorf("%s: notSent = %v, want %v", tt.name, got, tt.want)
		}
	}
}
