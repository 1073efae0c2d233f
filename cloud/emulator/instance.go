package emulator

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Instance is one CVM instance as it is seeded into the emulator.
type Instance struct {
	ID   string // ins- followed by eight lowercase letters or digits
	Name string // "" = 未命名, the console's default name
	Zone string // "" = the region's zone 3, e.g. ap-guangzhou-3
	// Region "" is taken from Zone (ap-shanghai-2 → ap-shanghai), or
	// ap-guangzhou when Zone is empty too.
	Region     string
	State      string // "" = RUNNING
	PrivateIPs []string
	PublicIPs  []string
	Tags       map[string]string
}

// Status is a snapshot of one instance as DescribeInstances would show it.
type Status struct {
	Instance
	LatestOperation          string
	LatestOperationState     string
	LatestOperationRequestID string
	LatestOperationErrorMsg  string
}

// DefaultRegion is the region of instances seeded without one.
const DefaultRegion = "ap-guangzhou"

// defaultName is the name the console gives an instance nobody named.
const defaultName = "未命名"

// Instance states, as the API names them.
const (
	StatePending                 = "PENDING"
	StateLaunchFailed            = "LAUNCH_FAILED"
	StateRunning                 = "RUNNING"
	StateStopped                 = "STOPPED"
	StateStarting                = "STARTING"
	StateStopping                = "STOPPING"
	StateRebooting               = "REBOOTING"
	StateShutdown                = "SHUTDOWN"
	StateTerminating             = "TERMINATING"
	StateEnterRescueMode         = "ENTER_RESCUE_MODE"
	StateRescueMode              = "RESCUE_MODE"
	StateExitRescueMode          = "EXIT_RESCUE_MODE"
	StateEnterServiceLiveMigrate = "ENTER_SERVICE_LIVE_MIGRATE"
	StateServiceLiveMigrate      = "SERVICE_LIVE_MIGRATE"
	StateExitServiceLiveMigrate  = "EXIT_SERVICE_LIVE_MIGRATE"
)

// stateCodes maps every instance state to the error an operation that does
// not accept it answers with (UnsupportedOperation.InstanceState…).
var stateCodes = map[string]string{
	StatePending:                 "UnsupportedOperation.InstanceStatePending",
	StateLaunchFailed:            "UnsupportedOperation.InstanceStateLaunchFailed",
	StateRunning:                 "UnsupportedOperation.InstanceStateRunning",
	StateStopped:                 "UnsupportedOperation.InstanceStateStopped",
	StateStarting:                "UnsupportedOperation.InstanceStateStarting",
	StateStopping:                "UnsupportedOperation.InstanceStateStopping",
	StateRebooting:               "UnsupportedOperation.InstanceStateRebooting",
	StateShutdown:                "UnsupportedOperation.InstanceStateShutdown",
	StateTerminating:             "UnsupportedOperation.InstanceStateTerminating",
	StateEnterRescueMode:         "UnsupportedOperation.InstanceStateEnterRescueMode",
	StateRescueMode:              "UnsupportedOperation.InstanceStateRescueMode",
	StateExitRescueMode:          "UnsupportedOperation.InstanceStateExitRescueMode",
	StateEnterServiceLiveMigrate: "UnsupportedOperation.InstanceStateEnterServiceLiveMigrate",
	StateServiceLiveMigrate:      "UnsupportedOperation.InstanceStateServiceLiveMigrate",
	StateExitServiceLiveMigrate:  "UnsupportedOperation.InstanceStateExitServiceLiveMigrate",
}

// StateErrorCode returns the UnsupportedOperation.InstanceState… code an
// operation answers when an instance is in state, or "" for an unknown
// state.
func StateErrorCode(state string) string { return stateCodes[state] }

// ValidState reports whether state is one of the API's instance states.
func ValidState(state string) bool { return stateCodes[state] != "" }

// ValidInstanceID reports whether id has the API's form: ins- followed by
// eight lowercase letters or digits.
func ValidInstanceID(id string) bool {
	if len(id) != 12 || !strings.HasPrefix(id, "ins-") {
		return false
	}
	for _, c := range id[4:] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// normalize fills in the defaults of an Instance and checks it, returning
// a copy that shares nothing with in.
func normalize(in Instance) (Instance, error) {
	if !ValidInstanceID(in.ID) {
		return Instance{}, fmt.Errorf("instance ID %q is malformed: want ins- followed by 8 lowercase letters or digits", in.ID)
	}
	out := in
	if out.Name == "" {
		out.Name = defaultName
	}
	if len(out.Name) > 128 {
		return Instance{}, fmt.Errorf("instance %s: name is longer than 128 bytes", in.ID)
	}
	if out.Region == "" {
		out.Region = regionOfZone(out.Zone)
	}
	if !validRegionName(out.Region) {
		return Instance{}, fmt.Errorf("instance %s: region %q is malformed", in.ID, out.Region)
	}
	if out.Zone == "" {
		out.Zone = out.Region + "-3"
	}
	if !strings.HasPrefix(out.Zone, out.Region+"-") || len(out.Zone) == len(out.Region)+1 {
		return Instance{}, fmt.Errorf("instance %s: zone %q is not in region %s", in.ID, out.Zone, out.Region)
	}
	if out.State == "" {
		out.State = StateRunning
	}
	if !ValidState(out.State) {
		return Instance{}, fmt.Errorf("instance %s: unknown state %q", in.ID, out.State)
	}
	for _, ip := range slices.Concat(in.PrivateIPs, in.PublicIPs) {
		if a, err := netip.ParseAddr(ip); err != nil || a.Zone() != "" {
			return Instance{}, fmt.Errorf("instance %s: %q is not an IP address", in.ID, ip)
		}
	}
	for k := range in.Tags {
		if k == "" || len(k) > 255 {
			return Instance{}, fmt.Errorf("instance %s: tag keys must be 1 to 255 bytes", in.ID)
		}
	}
	out.PrivateIPs = slices.Clone(in.PrivateIPs)
	out.PublicIPs = slices.Clone(in.PublicIPs)
	out.Tags = maps.Clone(in.Tags)
	return out, nil
}

// regionOfZone returns the region of a zone such as ap-shanghai-2, or
// DefaultRegion when zone is empty.
func regionOfZone(zone string) string {
	if zone == "" {
		return DefaultRegion
	}
	i := strings.LastIndexByte(zone, '-')
	if i <= 0 {
		return zone
	}
	return zone[:i]
}

// validRegionName reports whether r looks like a region: lowercase words
// joined by dashes, such as ap-guangzhou or na-siliconvalley.
func validRegionName(r string) bool {
	if len(r) < 4 || len(r) > 64 || !strings.Contains(r, "-") {
		return false
	}
	for _, part := range strings.Split(r, "-") {
		if part == "" {
			return false
		}
		for _, c := range part {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// instance is the emulator's record of one instance. Transitions that take
// time (REBOOTING → RUNNING, …) are not driven by goroutines: the record
// holds when the current one ends, and settle applies it the next time the
// record is looked at.
type instance struct {
	Instance
	facts *facts

	op, opState, opRequestID, opError string

	// until is when the transition in progress ends (zero: none); then the
	// instance goes to next and its latest operation to nextOpState with
	// nextOpError.
	until       time.Time
	next        string
	nextOpState string
	nextOpError string
}

// settle applies a transition whose time has come.
func (in *instance) settle(now time.Time) {
	if in.until.IsZero() || now.Before(in.until) {
		return
	}
	in.State = in.next
	in.opState = in.nextOpState
	in.opError = in.nextOpError
	in.until = time.Time{}
}

// begin starts operation op (called with requestID) that moves the
// instance to during now and to final after d; failMsg, when not empty,
// makes the operation end FAILED with that message.
func (in *instance) begin(now time.Time, d time.Duration, op, requestID, during, final, failMsg string) {
	in.State = during
	in.op, in.opState, in.opRequestID, in.opError = op, opOperating, requestID, ""
	in.until = now.Add(d)
	in.next = final
	in.nextOpState, in.nextOpError = opSuccess, ""
	if failMsg != "" {
		in.nextOpState, in.nextOpError = opFailed, failMsg
	}
}

// status returns a snapshot of the record. It shares the record's IP
// lists and tags, which are never changed after Add; Emulator.Status
// copies them before they leave the package.
func (in *instance) status() Status {
	return Status{
		Instance:                 in.Instance,
		LatestOperation:          in.op,
		LatestOperationState:     in.opState,
		LatestOperationRequestID: in.opRequestID,
		LatestOperationErrorMsg:  in.opError,
	}
}

// Latest operation states.
const (
	opOperating = "OPERATING"
	opSuccess   = "SUCCESS"
	opFailed    = "FAILED"
)
