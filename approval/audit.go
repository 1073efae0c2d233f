package approval

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// EventType names what happened.
type EventType string

const (
	EventRequested         EventType = "requested"
	EventRejected          EventType = "rejected"
	EventApproved          EventType = "approved"
	EventApprovalRefused   EventType = "approval_refused"
	EventDenied            EventType = "denied"
	EventCancelled         EventType = "cancelled"
	EventExpired           EventType = "expired"
	EventExecuting         EventType = "executing"
	EventRebootIntent      EventType = "reboot_intent"
	EventRebootCalled      EventType = "reboot_called"
	EventInstanceSucceeded EventType = "instance_succeeded"
	EventInstanceFailed    EventType = "instance_failed"
	EventCompleted         EventType = "completed"
	// EventWaveStarted and EventWaveFinished bound each wave of a rolling
	// request; EventStopped records a stop, by a person or by the failure
	// budget.
	EventWaveStarted  EventType = "wave_started"
	EventWaveFinished EventType = "wave_finished"
	EventStopped      EventType = "stopped"
	// EventNoticesLost records that Slack will never take the request's
	// card or thread messages again (the card deleted, the channel
	// archived, the token refused): from then on the audit log alone shows
	// what becomes of the request.
	EventNoticesLost EventType = "notices_lost"
)

// ActorBot is the actor of events the bot causes by itself.
const ActorBot = "bot"

// Details is the free part of an event; only the fields that apply are set.
type Details struct {
	Reason         string   `json:"reason,omitempty"`
	StopType       StopType `json:"stop_type,omitempty"`
	Region         string   `json:"region,omitempty"`
	Channel        string   `json:"channel,omitempty"`
	Approvals      []string `json:"approvals,omitempty"` // approvers so far
	Required       int      `json:"required,omitempty"`
	CloudRequestID string   `json:"cloud_request_id,omitempty"`
	ErrorCode      string   `json:"error_code,omitempty"`
	ErrorMessage   string   `json:"error_message,omitempty"`
	Outcome        string   `json:"outcome,omitempty"`
	Duration       string   `json:"duration,omitempty"`
	Note           string   `json:"note,omitempty"`
	// Selector and Fingerprint describe a request that selected its
	// instances by tag, name, address or zone (see Request).
	Selector    []string `json:"selector,omitempty"`
	Fingerprint string   `json:"fingerprint,omitempty"`
	// Plan is a rolling request's plan as asked ("--wave 10 --pause 5m"),
	// and Wave the wave an event is about (1-based).
	Plan string `json:"plan,omitempty"`
	Wave int    `json:"wave,omitempty"`
}

// Event is one record of the append-only audit log.
type Event struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id,omitempty"`
	Type      EventType `json:"type"`
	Actor     string    `json:"actor"`
	Instances []string  `json:"instances,omitempty"`
	Details   Details   `json:"details,omitzero"`
	// PrevHash is the hex SHA-256 of the previous event's canonical bytes
	// (empty for the first event).
	PrevHash string `json:"prev_hash"`
}

// CanonicalBytes returns the bytes an event is stored as and hashed from.
func (e *Event) CanonicalBytes() ([]byte, error) { return json.Marshal(e) }

// Hash returns the hex SHA-256 of the event's canonical bytes; the next
// event carries it as PrevHash.
func HashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// AuditQuery selects events. Zero fields do not filter. Results are newest
// first unless Oldest is set.
type AuditQuery struct {
	RequestID string
	Instance  string
	User      string // actor, or requester of the request concerned
	Since     time.Time
	Until     time.Time
	Limit     int // 0: no limit
	Oldest    bool
}

// VerifyError names the first event whose content or link does not match.
type VerifyError struct {
	Seq    uint64
	Reason string
}

func (e *VerifyError) Error() string {
	return "audit record " + uitoa(e.Seq) + " does not match: " + e.Reason
}

func uitoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
