package emulator

import "slices"

// MaxInstancesPerCall is the API's limit of InstanceIds in one request.
const MaxInstancesPerCall = 100

// operation is an action that moves instances from one state through a
// transitional one to another: RebootInstances, StartInstances,
// StopInstances.
type operation struct {
	name    string // LatestOperation, e.g. RebootInstances
	from    string // the only state it accepts
	during  string // the state while it runs
	to      string // the state once it ran
	failMsg string // LatestOperationErrorMsg of a failed run
}

var (
	opReboot = operation{name: "RebootInstances", from: StateRunning, during: StateRebooting, to: StateRunning,
		failMsg: "The instance did not restart successfully; the reboot task failed."}
	opStart = operation{name: "StartInstances", from: StateStopped, during: StateStarting, to: StateRunning}
	opStop  = operation{name: "StopInstances", from: StateRunning, during: StateStopping, to: StateStopped}
)

// stopTypes are the values of StopType.
var stopTypes = []string{"SOFT", "HARD", "SOFT_FIRST"}

// rebootInstances serves RebootInstances.
func (e *Emulator) rebootInstances(c *callContext) (any, *apiError) {
	e.mu.Lock()
	c.at = e.now()
	allowed := e.limiter.allow(c.at)
	e.mu.Unlock()
	if !allowed {
		return nil, errorf(codeRequestLimitExceeded, "RebootInstances was called more than %d times in one second.", e.limiter.n)
	}
	p := c.params
	if err := p.only("InstanceIds", "ForceReboot", "StopType"); err != nil {
		return nil, err
	}
	if p.has("ForceReboot") && p.has("StopType") {
		return nil, errorf(codeInvalidParameterCombo, "The parameters `ForceReboot` and `StopType` cannot be used together.")
	}
	if _, _, err := p.boolean("ForceReboot"); err != nil {
		return nil, err
	}
	if err := checkStopType(p); err != nil {
		return nil, err
	}
	return e.operate(c, opReboot)
}

// startInstances serves StartInstances.
func (e *Emulator) startInstances(c *callContext) (any, *apiError) {
	if err := c.params.only("InstanceIds"); err != nil {
		return nil, err
	}
	return e.operate(c, opStart)
}

// stopInstances serves StopInstances.
func (e *Emulator) stopInstances(c *callContext) (any, *apiError) {
	p := c.params
	if err := p.only("InstanceIds", "ForceStop", "StopType", "StoppedMode"); err != nil {
		return nil, err
	}
	if p.has("ForceStop") && p.has("StopType") {
		return nil, errorf(codeInvalidParameterCombo, "The parameters `ForceStop` and `StopType` cannot be used together.")
	}
	if _, _, err := p.boolean("ForceStop"); err != nil {
		return nil, err
	}
	if err := checkStopType(p); err != nil {
		return nil, err
	}
	mode, ok, err := p.str("StoppedMode")
	if err != nil {
		return nil, err
	}
	if ok && mode != "KEEP_CHARGING" && mode != "STOP_CHARGING" {
		return nil, errorf(codeInvalidParameterValue, "The parameter `StoppedMode` must be KEEP_CHARGING or STOP_CHARGING.")
	}
	return e.operate(c, opStop)
}

func checkStopType(p params) *apiError {
	st, ok, err := p.str("StopType")
	if err != nil {
		return err
	}
	if ok && !slices.Contains(stopTypes, st) {
		return errorf(codeInvalidParameterValue, "The parameter `StopType` must be one of SOFT, HARD, SOFT_FIRST.")
	}
	return nil
}

// operate checks InstanceIds and starts op on every one of them, or on
// none: a batch with one unknown instance, or one in a state op does not
// accept, fails as a whole with a message naming the offending instances.
func (e *Emulator) operate(c *callContext, op operation) (any, *apiError) {
	ids, err := requiredIDs(c.params)
	if err != nil {
		return nil, err
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	targets := make([]*instance, 0, len(ids))
	var missing []string
	for _, id := range ids {
		in := e.byID[id]
		if in == nil || in.Region != c.region {
			missing = append(missing, id)
			continue
		}
		in.settle(now)
		targets = append(targets, in)
	}
	if len(missing) > 0 {
		return nil, errorf(codeInstanceIDNotFound, "The %s %s not found in region %s.", instancesNamed(missing), isAre(len(missing)), c.region)
	}
	for _, in := range targets {
		if in.State == op.from {
			continue
		}
		var same []string
		for _, other := range targets {
			if other.State == in.State {
				same = append(same, other.ID)
			}
		}
		return nil, errorf(StateErrorCode(in.State), "The %s %s %s; %s needs %s.", instancesNamed(same), isAre(len(same)), in.State, op.name, op.from)
	}
	for _, in := range targets {
		fail := ""
		if op.name == opReboot.name {
			e.rebootCalls[in.ID]++
			if e.failNext[in.ID] {
				delete(e.failNext, in.ID)
				fail = op.failMsg
			}
		}
		in.begin(now, e.rebootTime, op.name, c.requestID, op.during, op.to, fail)
	}
	return struct{}{}, nil
}

// requiredIDs returns the InstanceIds of an operation, checked and without
// duplicates.
func requiredIDs(p params) ([]string, *apiError) {
	ids, _, err := p.strings("InstanceIds")
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errorf(codeMissingParameter, "The parameter `InstanceIds` is missing.")
	}
	return checkIDs(ids)
}

// checkIDs checks a list of instance IDs (at most 100, all well formed) and
// drops duplicates.
func checkIDs(ids []string) ([]string, *apiError) {
	if len(ids) > MaxInstancesPerCall {
		return nil, errorf(codeLimitExceeded, "The parameter `InstanceIds` has %d elements; at most %d are allowed.", len(ids), MaxInstancesPerCall)
	}
	var bad []string
	for _, id := range ids {
		if !ValidInstanceID(id) {
			bad = append(bad, safeToken(id))
		}
	}
	if len(bad) > 0 {
		return nil, errorf(codeInstanceIDMalformed, "The %s %s malformed; IDs look like ins-xxxxxxxx.", idsNamed(bad), isAre(len(bad)))
	}
	out := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}
