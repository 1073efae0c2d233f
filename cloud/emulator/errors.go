package emulator

import (
	"fmt"
	"strings"
)

// apiError is an error answered in the API 3.0 shape. Messages never
// contain secrets: no keys, no signatures, no Authorization header.
type apiError struct {
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(code, format string, args ...any) *apiError {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error codes the emulator answers with, as the API and the SDK's
// errors.go name them.
const (
	codeInvalidAuthorization = "AuthFailure.InvalidAuthorization"
	codeSignatureFailure     = "AuthFailure.SignatureFailure"
	codeSignatureExpire      = "AuthFailure.SignatureExpire"
	codeSecretIDNotFound     = "AuthFailure.SecretIdNotFound"
	codeTokenFailure         = "AuthFailure.TokenFailure"

	codeInvalidAction         = "InvalidAction"
	codeNoSuchVersion         = "NoSuchVersion"
	codeMissingParameter      = "MissingParameter"
	codeUnknownParameter      = "UnknownParameter"
	codeInvalidParameter      = "InvalidParameter"
	codeInvalidParameterValue = "InvalidParameterValue"
	codeInvalidParameterCombo = "InvalidParameterCombination"
	codeLimitExceeded         = "InvalidParameterValue.LimitExceeded"
	codeInvalidFilter         = "InvalidFilter"
	codeFilterLimitExceeded   = "InvalidFilterValue.LimitExceeded"
	codeInstanceIDMalformed   = "InvalidInstanceId.Malformed"
	codeInstanceIDNotFound    = "InvalidInstanceId.NotFound"
	codeRequestLimitExceeded  = "RequestLimitExceeded"
	codeRequestSizeLimit      = "RequestSizeLimitExceeded"
	codeUnsupportedProtocol   = "UnsupportedProtocol"
	codeUnsupportedRegion     = "UnsupportedRegion"
	codeInternalError         = "InternalError"
)

// quoteIDs renders instance IDs for a message: `ins-a`, `ins-b`.
func quoteIDs(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = "`" + id + "`"
	}
	return strings.Join(q, ", ")
}

// instancesNamed renders "instance `ins-a`" or "instances `ins-a`, `ins-b`".
func instancesNamed(ids []string) string {
	if len(ids) == 1 {
		return "instance " + quoteIDs(ids)
	}
	return "instances " + quoteIDs(ids)
}

// idsNamed renders "instance ID `x`" or "instance IDs `x`, `y`".
func idsNamed(ids []string) string {
	if len(ids) == 1 {
		return "instance ID " + quoteIDs(ids)
	}
	return "instance IDs " + quoteIDs(ids)
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
