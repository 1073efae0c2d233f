package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"

	"rebootbot/approval"
)

// maxMessage bounds the Tencent message kept in a CloudError; SDK messages
// can carry a whole response body.
const maxMessage = 500

// AsCloudError turns an error from the SDK, the network or a context into a
// CloudError with Tencent's code and RequestId, a plain-words explanation
// and whether retrying may help. It returns nil for a nil error.
func AsCloudError(err error) *approval.CloudError {
	if err == nil {
		return nil
	}
	var ce *approval.CloudError
	if errors.As(err, &ce) {
		return ce
	}
	var sdk *tcerr.TencentCloudSDKError
	if errors.As(err, &sdk) {
		return fromSDK(sdk)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return newCloudError(CodeCanceled, err.Error(), "")
	case errors.Is(err, context.DeadlineExceeded):
		return newCloudError(CodeDeadlineExceeded, err.Error(), "")
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return newCloudError(CodeRequestTimeout, err.Error(), "")
		}
		return newCloudError(CodeNetworkError, err.Error(), "")
	}
	return newCloudError("ClientError.Unknown", err.Error(), "")
}

// fromSDK classifies an SDK error. The SDK reports every transport problem
// as ClientError.NetworkError; the cause tells a timeout or a cancellation
// apart.
func fromSDK(e *tcerr.TencentCloudSDKError) *approval.CloudError {
	msg := e.Message
	cause := errors.Unwrap(e)
	if cause != nil {
		msg += ": " + cause.Error()
	}
	code := e.Code
	if code == CodeNetworkError && cause != nil {
		var ne net.Error
		switch {
		case errors.Is(cause, context.Canceled):
			code = CodeCanceled
		case errors.Is(cause, context.DeadlineExceeded):
			code = CodeRequestTimeout
		case errors.As(cause, &ne) && ne.Timeout():
			code = CodeRequestTimeout
		}
	}
	ce := newCloudError(code, msg, e.RequestId)
	if code == "ClientError.HttpStatusCodeError" && serverSideStatus(e.Message) {
		ce.Transient = true
	}
	return ce
}

// serverSideStatus reports whether an HttpStatusCodeError message names a
// status worth retrying (5xx, 429): a proxy or load balancer in the way.
func serverSideStatus(msg string) bool {
	_, rest, ok := strings.Cut(msg, "status code: ")
	if !ok || rest == "" {
		return false
	}
	return rest[0] == '5' || strings.HasPrefix(rest, "429")
}

func newCloudError(code, msg, requestID string) *approval.CloudError {
	text, transient := Explain(code)
	return &approval.CloudError{
		Code:        code,
		Message:     truncate(msg, maxMessage),
		RequestID:   requestID,
		Explanation: text,
		Transient:   transient,
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// notSent reports whether err proves the request never reached Tencent
// Cloud, so that its outcome is known: nothing happened.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// refusedBeforeActing reports whether a Tencent error code means the call
// was turned away before anything was done.
func refusedBeforeActing(code string) bool {
	return strings.HasPrefix(code, "RequestLimitExceeded") || strings.HasPrefix(code, "AuthFailure")
}

// isolatable reports whether a RebootInstances error may be caused by some
// of the instances in the call rather than by the call itself, so that the
// other instances can still be rebooted without them.
func isolatable(code string) bool {
	switch {
	case strings.HasPrefix(code, "InvalidInstanceId."),
		strings.HasPrefix(code, "UnsupportedOperation."),
		strings.HasPrefix(code, "UnauthorizedOperation"),
		strings.HasPrefix(code, "ResourceUnavailable"),
		strings.HasPrefix(code, "ResourceInUse"),
		strings.HasPrefix(code, "InvalidInstance."),
		code == "InvalidInstanceState",
		code == "InvalidParameterValue.InstanceIdMalformed",
		code == "InvalidParameterValue",
		code == "UnsupportedOperation",
		code == "OperationDenied.InstanceOperationInProgress",
		code == "MutexOperation.TaskRunning",
		code == "FailedOperation.InvalidInstanceApplicationRole":
		return true
	}
	return false
}

// ambiguous reports whether an isolatable code may as well concern the
// whole call (a CAM policy, a generic refusal). Bisection on such a code
// stops as soon as both halves are refused the same way.
func ambiguous(code string) bool {
	return strings.HasPrefix(code, "UnauthorizedOperation") ||
		code == "UnsupportedOperation" || code == "InvalidParameterValue"
}

// kindOf says how the rest of rebootbot should treat a cloud error.
func kindOf(ce *approval.CloudError) approval.Kind {
	switch {
	case ce.Transient:
		return approval.Unavailable
	case strings.HasPrefix(ce.Code, "AuthFailure"), strings.HasPrefix(ce.Code, "UnauthorizedOperation"),
		ce.Code == CodeCredentialError:
		return approval.Forbidden
	case strings.HasPrefix(ce.Code, "InvalidParameter"), strings.HasPrefix(ce.Code, "InvalidInstanceId"),
		strings.HasPrefix(ce.Code, "InvalidRegion"), ce.Code == "MissingParameter", ce.Code == CodeInvalidRequest:
		return approval.Invalid
	}
	return approval.Unavailable
}

// asError wraps a CloudError for callers: approval.ErrorMessage shows its
// explanation, errors.As finds the CloudError (code and RequestId), and a
// context's error stays visible to errors.Is.
func asError(ce *approval.CloudError, ctxErr error) error {
	var inner error = ce
	if ctxErr != nil {
		inner = fmt.Errorf("%w (%w)", ce, ctxErr)
	}
	return &approval.Error{Kind: kindOf(ce), Message: "Tencent Cloud: " + ce.Explanation, Err: inner}
}
