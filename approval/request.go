// Package approval is rebootbot's domain: reboot requests and their life,
// the approval policy, the audit trail, and the interfaces the engine needs
// from the outside world (Store, Cloud, Notifier, Groups). It imports only the
// standard library; Slack, Tencent Cloud and bbolt live in adapters that
// import it.
package approval

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// State is where a request is in its life.
type State string

const (
	Pending         State = "PENDING"
	Approved        State = "APPROVED"
	Executing       State = "EXECUTING"
	Succeeded       State = "SUCCEEDED"
	Failed          State = "FAILED"
	PartiallyFailed State = "PARTIALLY_FAILED"
	Denied          State = "DENIED"
	Cancelled       State = "CANCELLED"
	Expired         State = "EXPIRED"
	// Rejected ends a request whose card could not be posted (for example a
	// channel the bot is not in). It never reaches a channel and holds no
	// instance.
	Rejected State = "REJECTED"
	// Stopped ends a rolling request before its last wave: someone
	// stopped it, or its failures exceeded its budget. The instances of
	// the waves that never started were not rebooted.
	Stopped State = "STOPPED"
)

// transitions lists every allowed state change. Anything else is a conflict.
// An executing request may still be denied, by the bot, when the policy in
// force no longer allows it before any instance was called.
var transitions = map[State][]State{
	Pending:   {Approved, Denied, Cancelled, Expired, Rejected},
	Approved:  {Executing},
	Executing: {Succeeded, Failed, PartiallyFailed, Denied, Stopped},
}

// CanTransition reports whether a request may go from one state to another.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Terminal reports whether no further change can happen in state s.
func (s State) Terminal() bool { return len(transitions[s]) == 0 }

// Open reports whether a request in state s still holds its instances.
func (s State) Open() bool { return !s.Terminal() }

// phrase names state s in the domain's own sentences ("R-1 is already
// denied").
func (s State) phrase() string {
	switch s {
	case PartiallyFailed:
		return "partially failed"
	case Executing:
		return "rebooting"
	}
	return strings.ToLower(string(s))
}

// StopType is how RebootInstances stops the guest.
type StopType string

const (
	Soft      StopType = "SOFT"
	Hard      StopType = "HARD"
	SoftFirst StopType = "SOFT_FIRST"
)

// Valid reports whether t is one of the API's StopType values.
func (t StopType) Valid() bool { return t == Soft || t == Hard || t == SoftFirst }

// Forceful reports whether t may cut power, which needs hard_min_approvals.
func (t StopType) Forceful() bool { return t == Hard || t == SoftFirst }

// Instance is what the bot knows of one CVM instance, as DescribeInstances
// reported it.
type Instance struct {
	ID                       string            `json:"id"`
	Name                     string            `json:"name,omitempty"`
	State                    string            `json:"state,omitempty"`
	Zone                     string            `json:"zone,omitempty"`
	PrivateIPs               []string          `json:"private_ips,omitempty"`
	PublicIPs                []string          `json:"public_ips,omitempty"`
	Tags                     map[string]string `json:"tags,omitempty"`
	LatestOperation          string            `json:"latest_operation,omitempty"`
	LatestOperationState     string            `json:"latest_operation_state,omitempty"`
	LatestOperationRequestID string            `json:"latest_operation_request_id,omitempty"`
	LatestOperationError     string            `json:"latest_operation_error,omitempty"`
}

// Instance states the engine cares about; the rest are reported as the API
// names them.
const (
	InstanceRunning   = "RUNNING"
	InstanceRebooting = "REBOOTING"
)

// Latest operation values of DescribeInstances.
const (
	OpReboot    = "RebootInstances"
	OpSuccess   = "SUCCESS"
	OpFailed    = "FAILED"
	OpOperating = "OPERATING"
)

// ValidInstanceID reports whether id has the form ins- followed by eight
// lowercase letters or digits.
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

// Approval is one person's yes.
type Approval struct {
	User string    `json:"user"`
	At   time.Time `json:"at"`
	// Lapsed reports whether the approval stopped counting: under the
	// policy the request was last judged by, its author may no longer
	// approve it (removed from the approvers, or the requester once self
	// approval is off). It stays on record, and counts again if the policy
	// lets its author approve again.
	Lapsed bool `json:"lapsed,omitempty"`
}

// RunState is where one instance is in an execution.
type RunState string

const (
	RunWaiting   RunState = ""          // not yet called
	RunIntent    RunState = "intent"    // intent stored, call may or may not have reached the cloud
	RunCalled    RunState = "called"    // RebootInstances accepted it
	RunSucceeded RunState = "succeeded" // back to RUNNING, reboot SUCCESS
	RunFailed    RunState = "failed"    // call refused, reboot FAILED, or timeout
)

// Done reports whether the instance has its final result.
func (s RunState) Done() bool { return s == RunSucceeded || s == RunFailed }

// Run is one instance's part in an execution. It is stored with the request
// so that a restart knows exactly what was called.
type Run struct {
	InstanceID string   `json:"instance_id"`
	State      RunState `json:"state"`
	// PriorOpRequestID is the instance's LatestOperationRequestId when the
	// intent to reboot was stored; a different one after a crash means the
	// call reached the cloud.
	PriorOpRequestID string `json:"prior_op_request_id,omitempty"`
	// CallRequestID is the RequestId of the RebootInstances call that took it.
	CallRequestID string        `json:"call_request_id,omitempty"`
	CalledAt      time.Time     `json:"called_at,omitzero"`
	Duration      time.Duration `json:"duration,omitempty"`
	// ErrorCode, ErrorMessage and Explanation describe a failure: Tencent's
	// code and message, and the plain-words sentence shown to people.
	ErrorCode    string `json:"error_code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	Explanation  string `json:"explanation,omitempty"`
	// Reported reports whether the result was posted in the card's thread.
	Reported bool `json:"reported,omitempty"`
}

// Card is where a request's approval card lives in Slack.
type Card struct {
	Channel string `json:"channel"`
	// TS is Slack's timestamp of the message: when Slack took it, in
	// seconds and microseconds since the epoch.
	TS string `json:"ts"`
}

// PostedAt returns when Slack took the card, read from its timestamp.
func (c Card) PostedAt() (time.Time, bool) {
	sec, frac, _ := strings.Cut(c.TS, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s <= 0 || len(frac) > 6 {
		return time.Time{}, false
	}
	var us int64
	if frac != "" {
		if us, err = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64); err != nil || us < 0 {
			return time.Time{}, false
		}
	}
	return time.Unix(s, us*1000).UTC(), true
}

// Request is one reboot request from creation to its outcome.
type Request struct {
	ID        string     `json:"id"` // R-<n>
	Requester string     `json:"requester"`
	Channel   string     `json:"channel"`
	Reason    string     `json:"reason"`
	StopType  StopType   `json:"stop_type"`
	Region    string     `json:"region"`
	Instances []Instance `json:"instances"` // as looked up at creation
	// Selector holds the selector words (tag:role=web, name:web-*) the
	// instances were selected with; empty when the request names IDs only.
	Selector []string `json:"selector,omitempty"`
	// Fingerprint identifies the frozen set of instances (see Fingerprint).
	Fingerprint string `json:"fingerprint,omitempty"`
	// Unselected counts, by state, the instances the selector matched that
	// were left out because they were not RUNNING.
	Unselected []StateCount `json:"unselected,omitempty"`
	// Required, ApproverGroups and SelfApproval are what the policy asked
	// of the request when it was last judged (created, clicked, or checked
	// before execution); every decision judges it again by the policy in
	// force. Required is how many approvals it needs.
	Required int `json:"required"`
	// ApproverGroups lists, per distinct policy rule the instances matched,
	// who may approve (user and user-group IDs); an approver must be in every
	// one of them.
	ApproverGroups [][]string `json:"approver_groups"`
	SelfApproval   bool       `json:"self_approval,omitempty"`
	Approvals      []Approval `json:"approvals,omitempty"`
	State          State      `json:"state"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
	DecidedBy      string     `json:"decided_by,omitempty"` // user ID or "bot"
	DecidedAt      time.Time  `json:"decided_at,omitzero"`
	Note           string     `json:"note,omitempty"` // why it was decided (deny/cancel comment, rejection reason)
	Card           Card       `json:"card,omitzero"`
	Runs           []Run      `json:"runs,omitempty"`
	StartedAt      time.Time  `json:"started_at,omitzero"`
	FinishedAt     time.Time  `json:"finished_at,omitzero"`
	// Plan is how the request rolls in waves; nil for one wave.
	Plan *Plan `json:"plan,omitempty"`
	// Wave is the wave started last (1-based; 0 before the first), and
	// WaveFinished whether it has finished. Each is stored before it takes
	// effect, so that a restart goes on at the right wave.
	Wave         int  `json:"wave,omitempty"`
	WaveFinished bool `json:"wave_finished,omitempty"`
	// NextWaveAt is when the pause after the finished wave ends.
	NextWaveAt time.Time `json:"next_wave_at,omitzero"`
	// Halt records a stop: no wave starts after it.
	Halt *Halt `json:"halt,omitempty"`
	// WavesReported counts the waves whose message was posted in the
	// thread (requests of more than MaxInstanceReports instances).
	WavesReported int `json:"waves_reported,omitempty"`
	// Announced reports whether the start of execution and the final summary
	// were posted in the thread, so that a restart does not post them twice.
	StartAnnounced bool `json:"start_announced,omitempty"`
	EndAnnounced   bool `json:"end_announced,omitempty"`
	// CardCurrent reports whether the card shows the latest state; false
	// means a card update is owed.
	CardCurrent bool `json:"card_current,omitempty"`
	// NoticesLost reports whether Slack answered that the card or its
	// thread can never be written again; then no card update or report is
	// owed.
	NoticesLost bool `json:"notices_lost,omitempty"`
	// Version counts the changes that show on the card, so that a card
	// update rendered from an older version does not mark a newer one as
	// shown.
	Version int `json:"version"`
}

// Settled reports whether nothing more is owed for r: it is terminal, its
// card shows the outcome and its reports are posted. The store keeps a
// request in its open index until it is settled, so that a restart finishes
// what was owed.
func (r *Request) Settled() bool {
	if !r.State.Terminal() {
		return false
	}
	if r.NoticesLost {
		return true
	}
	if r.Card.TS == "" {
		// Never posted: settled once the bot has given up on it (a
		// channel it cannot post in); until then a card is owed.
		return r.CardCurrent
	}
	return r.CardCurrent && (r.StartedAt.IsZero() || r.EndAnnounced)
}

// InstanceIDs returns the IDs of the request's instances in order.
func (r *Request) InstanceIDs() []string {
	ids := make([]string, len(r.Instances))
	for i, in := range r.Instances {
		ids[i] = in.ID
	}
	return ids
}

// HasApproved reports whether user has already approved r.
func (r *Request) HasApproved(user string) bool {
	for _, a := range r.Approvals {
		if a.User == user {
			return true
		}
	}
	return false
}

// Counted returns the approvals that count: those that have not lapsed.
func (r *Request) Counted() []Approval {
	var out []Approval
	for _, a := range r.Approvals {
		if !a.Lapsed {
			out = append(out, a)
		}
	}
	return out
}

// Run returns the run of instance id, or nil.
func (r *Request) Run(id string) *Run {
	for i := range r.Runs {
		if r.Runs[i].InstanceID == id {
			return &r.Runs[i]
		}
	}
	return nil
}

// markReported marks the runs of instances ids reported. An instance r
// has no run for is skipped: a store may hand an update an earlier
// version of the request first (see Store.Update).
func (r *Request) markReported(ids []string) {
	for _, id := range ids {
		if run := r.Run(id); run != nil {
			run.Reported = true
		}
	}
}

// Clone returns a deep copy of r, so that callers can keep a snapshot.
func (r *Request) Clone() *Request {
	c := *r
	c.Instances = make([]Instance, len(r.Instances))
	for i, in := range r.Instances {
		in.PrivateIPs = append([]string(nil), in.PrivateIPs...)
		in.PublicIPs = append([]string(nil), in.PublicIPs...)
		if in.Tags != nil {
			tags := make(map[string]string, len(in.Tags))
			for k, v := range in.Tags {
				tags[k] = v
			}
			in.Tags = tags
		}
		c.Instances[i] = in
	}
	c.Selector = slices.Clone(r.Selector)
	c.Unselected = slices.Clone(r.Unselected)
	c.ApproverGroups = make([][]string, len(r.ApproverGroups))
	for i, g := range r.ApproverGroups {
		c.ApproverGroups[i] = append([]string(nil), g...)
	}
	c.Approvals = append([]Approval(nil), r.Approvals...)
	c.Runs = append([]Run(nil), r.Runs...)
	if r.Plan != nil {
		plan := *r.Plan
		plan.Waves = make([][]string, len(r.Plan.Waves))
		for i, w := range r.Plan.Waves {
			plan.Waves[i] = slices.Clone(w)
		}
		c.Plan = &plan
	}
	if r.Halt != nil {
		h := *r.Halt
		c.Halt = &h
	}
	return &c
}

// transition moves r to state to, or returns a conflict saying why not.
func (r *Request) transition(to State) error {
	if !CanTransition(r.State, to) {
		return &Error{Kind: Conflict, Message: fmt.Sprintf("%s is already %s.", r.ID, r.State.phrase())}
	}
	r.State = to
	return nil
}

// cameFrom reports whether a click on the card at c can be meant for r:
// c is r's card. While r's card is not stored (the bot died between
// posting it and storing where it is), a card in r's channel that Slack
// took after r was created can only be r's, since the bot stores a request
// before posting its card; a card from before is another request's that
// had the same number (before the database was lost or restored from a
// backup).
func (r *Request) cameFrom(c Card) bool {
	if r.Card.TS != "" {
		return c.Channel == r.Card.Channel && c.TS == r.Card.TS
	}
	posted, ok := c.PostedAt()
	return ok && c.Channel == r.Channel && !posted.Before(r.CreatedAt)
}

// FormatRequestID returns the request ID for sequence number n.
func FormatRequestID(n uint64) string { return "R-" + strconv.FormatUint(n, 10) }

// ParseRequestID returns the sequence number of a request ID such as R-42.
func ParseRequestID(id string) (uint64, bool) {
	s, ok := strings.CutPrefix(strings.ToUpper(id), "R-")
	if !ok || s == "" || len(s) > 19 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}
