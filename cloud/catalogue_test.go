package cloud

import (
	"strings"
	"testing"
)

// rebootInstancesCodes are the error codes Tencent documents for
// RebootInstances (API 2017-03-12), as the SDK lists them.
var rebootInstancesCodes = []string{
	"FailedOperation.InvalidInstanceApplicationRole",
	"InternalServerError",
	"InvalidInstance.NotSupported",
	"InvalidInstanceId.Malformed",
	"InvalidInstanceId.NotFound",
	"InvalidParameterCombination",
	"InvalidParameterValue",
	"InvalidParameterValue.InstanceIdMalformed",
	"InvalidParameterValue.LimitExceeded",
	"MissingParameter",
	"MutexOperation.TaskRunning",
	"OperationDenied.InstanceOperationInProgress",
	"UnauthorizedOperation.MFAExpired",
	"UnauthorizedOperation.MFANotFound",
	"UnsupportedOperation",
	"UnsupportedOperation.InstanceReinstallFailed",
	"UnsupportedOperation.InstanceStateCorrupted",
	"UnsupportedOperation.InstanceStateEnterRescueMode",
	"UnsupportedOperation.InstanceStateEnterServiceLiveMigrate",
	"UnsupportedOperation.InstanceStateExitRescueMode",
	"UnsupportedOperation.InstanceStateExitServiceLiveMigrate",
	"UnsupportedOperation.InstanceStateFreezing",
	"UnsupportedOperation.InstanceStateIsolating",
	"UnsupportedOperation.InstanceStatePending",
	"UnsupportedOperation.InstanceStateRebooting",
	"UnsupportedOperation.InstanceStateServiceLiveMigrate",
	"UnsupportedOperation.InstanceStateShutdown",
	"UnsupportedOperation.InstanceStateStarting",
	"UnsupportedOperation.InstanceStateStopped",
	"UnsupportedOperation.InstanceStateStopping",
	"UnsupportedOperation.InstanceStateTerminating",
	"UnsupportedOperation.StoppedModeStopCharging",
}

// commonCodes are API 3.0's common error codes.
var commonCodes = []string{
	"ActionOffline",
	"AuthFailure.InvalidAuthorization",
	"AuthFailure.InvalidSecretId",
	"AuthFailure.MFAFailure",
	"AuthFailure.SecretIdNotFound",
	"AuthFailure.SignatureExpire",
	"AuthFailure.SignatureFailure",
	"AuthFailure.TokenFailure",
	"AuthFailure.UnauthorizedOperation",
	"DryRunOperation",
	"FailedOperation",
	"InternalError",
	"InvalidAction",
	"InvalidParameter",
	"InvalidParameterValue",
	"IpInBlacklist",
	"IpNotInWhitelist",
	"LimitExceeded",
	"MissingParameter",
	"NoSuchProduct",
	"NoSuchVersion",
	"RequestLimitExceeded",
	"RequestLimitExceeded.GlobalRegionUinLimitExceeded",
	"RequestLimitExceeded.IPLimitExceeded",
	"RequestLimitExceeded.UinLimitExceeded",
	"RequestSizeLimitExceeded",
	"ResourceInUse",
	"ResourceInsufficient",
	"ResourceNotFound",
	"ResourceUnavailable",
	"ResponseSizeLimitExceeded",
	"ServiceUnavailable",
	"UnauthorizedOperation",
	"UnknownParameter",
	"UnsupportedOperation",
	"UnsupportedProtocol",
	"UnsupportedRegion",
}

func TestCatalogueCoversDocumentedCodes(t *testing.T) {
	for _, code := range append(append([]string(nil), rebootInstancesCodes...), commonCodes...) {
		if _, ok := catalogue[code]; !ok {
			t.Errorf("catalogue has no entry for %s", code)
		}
	}
}

func TestCatalogueTexts(t *testing.T) {
	for code, e := range catalogue {
		switch {
		case e.text == "":
			t.Errorf("%s: empty explanation", code)
		case !strings.HasSuffix(e.text, "."):
			t.Errorf("%s: explanation %q does not end a sentence", code, e.text)
		case strings.Contains(e.text, "%!"):
			t.Errorf("%s: explanation %q has a formatting error", code, e.text)
		}
	}
}

func TestExplain(t *testing.T) {
	tests := []struct {
		code          string
		wantTransient bool
		wantContains  string
	}{
		{"RequestLimitExceeded", true, "limiting"},
		{"RequestLimitExceeded.UinLimitExceeded", true, "too many calls"},
		{"RequestLimitExceeded.SomethingNew", true, "RequestLimitExceeded.SomethingNew"},
		{"InternalError", true, "internal error"},
		{"InternalError.TradeUnknownError", true, "internal error"},
		{"InternalServerError", true, "internal error"},
		{"ServiceUnavailable", true, "unavailable"},
		{"ClientError.NetworkError", true, "could not reach"},
		{CodeRequestTimeout, true, "did not answer in time"},
		{"AuthFailure.SignatureFailure", false, "secret key does not match"},
		{"AuthFailure.SecretIdNotFound", false, "TENCENTCLOUD_SECRET_ID"},
		{"AuthFailure.BrandNew", false, "credentials"},
		{"UnauthorizedOperation", false, "CAM"},
		{"UnauthorizedOperation.SomethingElse", false, "CAM"},
		{"UnsupportedOperation.InstanceStateStopped", false, "stopped"},
		{"UnsupportedOperation.InstanceStateHibernating", false, "in state hibernating"},
		{"UnsupportedOperation.Other", false, "does not support"},
		{"InvalidInstanceId.NotFound", false, "No instance with this ID"},
		{"InvalidInstanceId.Gone", false, "not accepted"},
		{"MutexOperation.TaskRunning", false, "Another task"},
		{"OperationDenied.InstanceOperationInProgress", false, "in progress"},
		{"Weird.Code", false, "Weird.Code"},
		{"", false, "without a code"},
		{"Bad\x00Code", false, "Bad?Code"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			text, transient := Explain(tt.code)
			if transient != tt.wantTransient {
				t.Errorf("transient = %v, want %v", transient, tt.wantTransient)
			}
			if !strings.Contains(text, tt.wantContains) {
				t.Errorf("text = %q, want it to contain %q", text, tt.wantContains)
			}
		})
	}
}

func TestExplainPermanentFamilies(t *testing.T) {
	// The families the engine reports per instance must never be retried.
	for _, code := range rebootInstancesCodes {
		if code == "InternalServerError" {
			continue
		}
		if _, transient := Explain(code); transient {
			t.Errorf("%s is transient, want permanent", code)
		}
	}
}

func TestStateName(t *testing.T) {
	tests := []struct{ camel, want string }{
		{"Stopped", "STOPPED"},
		{"EnterRescueMode", "ENTER_RESCUE_MODE"},
		{"ServiceLiveMigrate", "SERVICE_LIVE_MIGRATE"},
	}
	for _, tt := range tests {
		if got := stateName(tt.camel); got != tt.want {
			t.Errorf("stateName(%q) = %q, want %q", tt.camel, got, tt.want)
		}
	}
}
