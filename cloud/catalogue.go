package cloud

import (
	"strings"
	"unicode"
)

// explanation is what the catalogue knows about one error code.
type explanation struct {
	text      string
	transient bool
}

// Error codes rebootbot itself produces, next to Tencent's and the SDK's.
const (
	// CodeTimeout means Wait gave up on an instance.
	CodeTimeout = "Timeout"
	// CodeRebootFailed means the reboot was accepted but Tencent Cloud
	// reported its operation as FAILED.
	CodeRebootFailed = "RebootFailed"
	// CodeOutcomeUnknown means a RebootInstances call may or may not have
	// been carried out and the adapter could not find out which; it was not
	// repeated so that no instance is rebooted twice.
	CodeOutcomeUnknown = "ClientError.OutcomeUnknown"
	// CodeCanceled and CodeDeadlineExceeded mean the caller's context ended.
	CodeCanceled         = "ClientError.Canceled"
	CodeDeadlineExceeded = "ClientError.DeadlineExceeded"
	// CodeRequestTimeout means one HTTP attempt took longer than
	// Config.RequestTimeout.
	CodeRequestTimeout = "ClientError.RequestTimeout"
	// CodeNetworkError is the SDK's code for a request that got no answer.
	CodeNetworkError = "ClientError.NetworkError"
	// CodeCredentialError is the SDK's code for credentials it could not
	// find or use.
	CodeCredentialError = "ClientError.CredentialError"
	// CodeInvalidRequest means rebootbot refused to send a request it knew
	// to be wrong (an empty region name, an unknown stop type).
	CodeInvalidRequest = "ClientError.InvalidRequest"
)

// catalogue maps Tencent Cloud's error codes (the common ones of API 3.0 and
// every code the RebootInstances and DescribeInstances documentation lists),
// the SDK's client-side codes and rebootbot's own to plain words.
var catalogue = map[string]explanation{
	// Signatures and credentials.
	"AuthFailure":                               {"Tencent Cloud did not accept rebootbot's credentials.", false},
	"AuthFailure.InvalidAuthorization":          {"Tencent Cloud rejected the request's Authorization header; rebootbot's credentials are probably mistyped.", false},
	"AuthFailure.InvalidSecretId":               {"The SecretId rebootbot uses is not a valid Tencent Cloud API key.", false},
	"AuthFailure.MFAFailure":                    {"Tencent Cloud asked for multi-factor authentication, which rebootbot's API key cannot provide.", false},
	"AuthFailure.SecretIdNotFound":              {"The API key rebootbot uses does not exist or has been disabled; an administrator has to fix TENCENTCLOUD_SECRET_ID.", false},
	"AuthFailure.SignatureExpire":               {"Tencent Cloud refused the request because its timestamp was more than five minutes off; the clock of the machine running rebootbot is probably wrong.", false},
	"AuthFailure.SignatureFailure":              {"Tencent Cloud could not verify rebootbot's signature: the secret key does not match the SecretId.", false},
	"AuthFailure.TokenFailure":                  {"The temporary session token rebootbot uses is invalid or has expired.", false},
	"AuthFailure.UnauthorizedOperation":         {"rebootbot's Tencent Cloud account is not allowed to do this (CAM policy).", false},
	"AuthFailure.CamRoleNameAuthenticateFailed": {"Tencent Cloud did not accept the CAM role rebootbot runs as.", false},

	// Permissions.
	"UnauthorizedOperation":                          {"rebootbot's Tencent Cloud account is not allowed to do this; its CAM policy has to grant it.", false},
	"UnauthorizedOperation.MFAExpired":               {"The multi-factor authentication this operation needs has expired.", false},
	"UnauthorizedOperation.MFANotFound":              {"This operation needs multi-factor authentication, which rebootbot's API key cannot provide.", false},
	"UnauthorizedOperation.InvalidToken":             {"The temporary session token rebootbot uses is invalid or has expired.", false},
	"UnauthorizedOperation.PermissionDenied":         {"rebootbot's Tencent Cloud account is not allowed to do this; its CAM policy has to grant it.", false},
	"FailedOperation.InvalidInstanceApplicationRole": {"This instance has an application role that does not allow it to be rebooted through the API.", false},

	// Rate limits: Tencent allows 10 RebootInstances calls a second.
	"RequestLimitExceeded":                              {"Tencent Cloud is limiting how fast rebootbot may call it; trying again shortly usually works.", true},
	"RequestLimitExceeded.UinLimitExceeded":             {"The account made too many calls to Tencent Cloud in a short time; trying again shortly usually works.", true},
	"RequestLimitExceeded.IPLimitExceeded":              {"Too many calls came from this machine's address in a short time; trying again shortly usually works.", true},
	"RequestLimitExceeded.GlobalRegionUinLimitExceeded": {"The account made too many calls across all regions in a short time; trying again shortly usually works.", true},

	// Tencent's side.
	"InternalError":             {"Tencent Cloud had an internal error; trying again usually works.", true},
	"InternalServerError":       {"Tencent Cloud had an internal error; trying again usually works.", true},
	"ServiceUnavailable":        {"Tencent Cloud's CVM service is temporarily unavailable; trying again later usually works.", true},
	"ResourceUnavailable":       {"The instance is temporarily unavailable; trying again later may work.", false},
	"ResourceInUse":             {"The instance is in use by another operation.", false},
	"ResourceInsufficient":      {"Tencent Cloud does not have enough resources for this right now.", false},
	"ResourceNotFound":          {"Tencent Cloud could not find the resource.", false},
	"LimitExceeded":             {"An account quota on Tencent Cloud has been reached.", false},
	"ActionOffline":             {"Tencent Cloud has retired this API action; rebootbot needs an update.", false},
	"InvalidAction":             {"Tencent Cloud does not know this API action; rebootbot is talking to the wrong service.", false},
	"NoSuchProduct":             {"Tencent Cloud does not know the product rebootbot asked for; the endpoint is probably wrong.", false},
	"NoSuchVersion":             {"Tencent Cloud does not know the API version rebootbot uses.", false},
	"UnsupportedProtocol":       {"Tencent Cloud refused the protocol; the endpoint must use HTTPS.", false},
	"UnsupportedRegion":         {"The CVM API is not available in this region.", false},
	"InvalidRegion.NotFound":    {"Tencent Cloud does not know this region.", false},
	"InvalidRegion.Unavailable": {"This region is not available to the account.", false},
	"IpInBlacklist":             {"Tencent Cloud refuses calls from this machine's IP address.", false},
	"IpNotInWhitelist":          {"This machine's IP address is not on the account's allow list for API calls.", false},
	"RequestSizeLimitExceeded":  {"The request to Tencent Cloud was too large.", false},
	"ResponseSizeLimitExceeded": {"Tencent Cloud's answer would have been too large.", false},
	"DryRunOperation":           {"The request would have succeeded, but it was only a dry run.", false},

	// Instances and parameters.
	"InvalidInstanceId.NotFound":                                {"No instance with this ID exists in this region.", false},
	"InvalidInstanceId.Malformed":                               {"This is not a valid instance ID; IDs look like ins-abcd1234.", false},
	"InvalidParameterValue.InstanceIdMalformed":                 {"This is not a valid instance ID; IDs look like ins-abcd1234.", false},
	"InvalidInstance.NotSupported":                              {"This kind of instance cannot be rebooted through the API.", false},
	"InvalidInstanceState":                                      {"The instance is not in a state that allows a reboot; only RUNNING instances can be rebooted.", false},
	"InvalidParameter":                                          {"Tencent Cloud rejected a parameter of the request.", false},
	"InvalidParameterValue":                                     {"Tencent Cloud rejected a value in the request.", false},
	"InvalidParameterValue.LimitExceeded":                       {"The request named more instances than Tencent Cloud allows in one call (100).", false},
	"InvalidParameterValue.InvalidRegion":                       {"Tencent Cloud does not know this region.", false},
	"InvalidParameterCombination":                               {"The request combined parameters that cannot be used together (ForceReboot with StopType).", false},
	"MissingParameter":                                          {"The request lacked a required parameter, such as the instance IDs.", false},
	"UnknownParameter":                                          {"Tencent Cloud did not recognise a parameter of the request.", false},
	"InvalidFilter":                                             {"Tencent Cloud rejected a filter of the request.", false},
	"InvalidFilterValue.LimitExceeded":                          {"A filter of the request had too many values.", false},
	"MutexOperation.TaskRunning":                                {"Another task is already running on this instance; try again once it has finished.", false},
	"OperationDenied.InstanceOperationInProgress":               {"Another operation is still in progress on this instance; try again once it has finished.", false},
	"FailedOperation":                                           {"Tencent Cloud could not carry out the operation.", false},
	"UnsupportedOperation":                                      {"Tencent Cloud does not support this operation on this instance.", false},
	"UnsupportedOperation.InstanceReinstallFailed":              {"The instance is stuck after a failed system reinstall; reinstall it again or contact Tencent Cloud support.", false},
	"UnsupportedOperation.StoppedModeStopCharging":              {"The instance was stopped in no-charge mode and cannot be rebooted.", false},
	"UnsupportedOperation.InstanceStateCorrupted":               {"The instance has a permanent fault and cannot be rebooted; contact Tencent Cloud support.", false},
	"UnsupportedOperation.InstanceStateEnterRescueMode":         {"The instance is entering rescue mode and cannot be rebooted now.", false},
	"UnsupportedOperation.InstanceStateEnterServiceLiveMigrate": {"The instance is being live-migrated by Tencent Cloud and cannot be rebooted now.", false},
	"UnsupportedOperation.InstanceStateExitRescueMode":          {"The instance is leaving rescue mode and cannot be rebooted now.", false},
	"UnsupportedOperation.InstanceStateExitServiceLiveMigrate":  {"The instance is finishing a live migration and cannot be rebooted now.", false},
	"UnsupportedOperation.InstanceStateFreezing":                {"The instance is frozen (for example for an overdue payment) and cannot be rebooted.", false},
	"UnsupportedOperation.InstanceStateIsolating":               {"The instance is being isolated (moved to the recycle bin) and cannot be rebooted.", false},
	"UnsupportedOperation.InstanceStatePending":                 {"The instance is still being created and cannot be rebooted yet.", false},
	"UnsupportedOperation.InstanceStateRebooting":               {"The instance is already rebooting.", false},
	"UnsupportedOperation.InstanceStateRescueMode":              {"The instance is in rescue mode and cannot be rebooted.", false},
	"UnsupportedOperation.InstanceStateServiceLiveMigrate":      {"The instance is being live-migrated by Tencent Cloud and cannot be rebooted now.", false},
	"UnsupportedOperation.InstanceStateShutdown":                {"The instance is shut down (isolated or expired) and cannot be rebooted.", false},
	"UnsupportedOperation.InstanceStateStarting":                {"The instance is still starting and cannot be rebooted yet.", false},
	"UnsupportedOperation.InstanceStateStopped":                 {"The instance is stopped; only RUNNING instances can be rebooted. Start it instead.", false},
	"UnsupportedOperation.InstanceStateStopping":                {"The instance is stopping and cannot be rebooted.", false},
	"UnsupportedOperation.InstanceStateTerminating":             {"The instance is being terminated and cannot be rebooted.", false},

	// The SDK's client-side codes.
	"ClientError.NetworkError":        {"rebootbot could not reach Tencent Cloud (network error); trying again usually works.", true},
	"ClientError.HttpStatusCodeError": {"Tencent Cloud's endpoint answered with an HTTP error instead of an API response.", false},
	"ClientError.ParseJsonError":      {"Tencent Cloud's answer could not be read; trying again usually works.", true},
	"ClientError.IOError":             {"The connection to Tencent Cloud broke while reading its answer; trying again usually works.", true},
	"ClientError.CredentialError":     {"rebootbot has no usable Tencent Cloud credentials: set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY, or give it a credentials file or a CVM role.", false},
	"ClientError.CircuitBreakerError": {"The Tencent Cloud SDK stopped calling a failing endpoint for a while; trying again later usually works.", true},

	// rebootbot's own.
	CodeRequestTimeout:   {"Tencent Cloud did not answer in time; trying again usually works.", true},
	CodeCanceled:         {"rebootbot stopped waiting for Tencent Cloud because the operation was cancelled (for example while shutting down).", true},
	CodeDeadlineExceeded: {"rebootbot ran out of time waiting for Tencent Cloud.", true},
	CodeOutcomeUnknown:   {"The reboot call got no clear answer and rebootbot could not check whether it was carried out, so it did not try again to avoid rebooting twice. Check the instance in the console.", false},
	CodeTimeout:          {"The instance did not come back to RUNNING in time.", false},
	CodeRebootFailed:     {"Tencent Cloud reported that the reboot failed.", false},
	CodeInvalidRequest:   {"rebootbot refused to send an invalid request to Tencent Cloud.", false},
}

// prefixes explain codes that are not in the catalogue by their family;
// the longest matching prefix wins.
var prefixes = []struct {
	prefix string
	explanation
}{
	{"RequestLimitExceeded", explanation{"Tencent Cloud is limiting how fast rebootbot may call it; trying again shortly usually works.", true}},
	{"InternalError", explanation{"Tencent Cloud had an internal error; trying again usually works.", true}},
	{"AuthFailure", explanation{"Tencent Cloud did not accept rebootbot's credentials.", false}},
	{"UnauthorizedOperation", explanation{"rebootbot's Tencent Cloud account is not allowed to do this; its CAM policy has to grant it.", false}},
	{"InvalidInstanceId", explanation{"The instance ID was not accepted: it is malformed or no such instance exists.", false}},
	{"InvalidParameterValue", explanation{"Tencent Cloud rejected a value in the request.", false}},
	{"InvalidParameter", explanation{"Tencent Cloud rejected a parameter of the request.", false}},
	{"MissingParameter", explanation{"The request lacked a required parameter.", false}},
	{"OperationDenied", explanation{"Tencent Cloud refused the operation on this instance right now.", false}},
	{"MutexOperation", explanation{"Another task is already running on this instance; try again once it has finished.", false}},
	{"UnsupportedOperation", explanation{"Tencent Cloud does not support this operation on this instance.", false}},
	{"FailedOperation", explanation{"Tencent Cloud could not carry out the operation.", false}},
	{"ResourceNotFound", explanation{"Tencent Cloud could not find the resource.", false}},
	{"ResourceUnavailable", explanation{"The resource is temporarily unavailable; trying again later may work.", false}},
	{"ResourceInsufficient", explanation{"Tencent Cloud does not have enough resources for this right now.", false}},
	{"ResourceInUse", explanation{"The resource is in use by another operation.", false}},
	{"LimitExceeded", explanation{"An account quota on Tencent Cloud has been reached.", false}},
	{"InvalidRegion", explanation{"Tencent Cloud does not know this region or it is not available to the account.", false}},
	{"ClientError", explanation{"rebootbot's Tencent Cloud client failed before getting an answer.", false}},
}

// instanceStatePrefix starts the codes RebootInstances returns for an
// instance that is not RUNNING; the rest of the code names the state.
const instanceStatePrefix = "UnsupportedOperation.InstanceState"

// KnownCode reports whether the catalogue explains code by name, so that it
// may serve as a metric label: codes outside it are many and come from the
// peer.
func KnownCode(code string) bool {
	_, ok := catalogue[code]
	return ok
}

// Explain returns a sentence a Slack user understands for a Tencent Cloud
// (or SDK, or rebootbot) error code, and reports whether the error is
// transient: the same call may succeed if tried again. Unknown codes get a
// generic sentence that names the code.
func Explain(code string) (text string, transient bool) {
	if e, ok := catalogue[code]; ok {
		return e.text, e.transient
	}
	if state, ok := strings.CutPrefix(code, instanceStatePrefix); ok && state != "" {
		return "The instance is " + spaced(state) + ", and only RUNNING instances can be rebooted.", false
	}
	best := -1
	for i, p := range prefixes {
		if strings.HasPrefix(code, p.prefix) && (best < 0 || len(p.prefix) > len(prefixes[best].prefix)) {
			best = i
		}
	}
	if best >= 0 {
		return prefixes[best].text + " (Tencent Cloud code " + printable(code) + ")", prefixes[best].transient
	}
	if code == "" {
		return "Tencent Cloud reported an error without a code.", false
	}
	return "Tencent Cloud answered with error " + printable(code) + ", which rebootbot does not know; the code and RequestId in the audit log help Tencent Cloud support.", false
}

// spaced turns a CamelCase state name such as EnterRescueMode into
// "in state enter rescue mode" words.
func spaced(s string) string {
	var b strings.Builder
	b.WriteString("in state ")
	for i, r := range s {
		if unicode.IsUpper(r) && i > 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return printable(b.String())
}

// printable keeps a code from the network short and free of control
// characters before it is put in a sentence.
func printable(s string) string {
	const max = 80
	var b strings.Builder
	for i, r := range s {
		if i >= max {
			b.WriteString("…")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			b.WriteRune('?')
		}
	}
	return b.String()
}
