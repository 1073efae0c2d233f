// Package emulator is a local stand-in for the Tencent Cloud CVM API 3.0
// (version 2017-03-12). It speaks the real protocol — TC3-HMAC-SHA256
// signatures with the X-TC-* headers and JSON bodies, the older HmacSHA256
// and HmacSHA1 signatures with form-encoded parameters, and API 3.0 error
// responses — so the official SDKs talk to it unchanged with an endpoint
// such as 127.0.0.1:9000: Go and Python sign the host with its port,
// Node.js without it, and tccli uses HmacSHA256 over HTTPS, which
// `bot emulator --tls` serves.
//
// It serves DescribeInstances, DescribeInstancesStatus, RebootInstances,
// StartInstances and StopInstances with the documented parameter checks and
// error codes, keeps each instance in one region, finishes operations after
// a configurable time measured on an injectable clock, limits
// RebootInstances to a number of calls per second, and can inject errors
// and latency. Tests reach it through the emulatortest subpackage; users
// run it with `bot emulator` (see Command).
package emulator

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config sets up an Emulator. Zero values select the defaults noted.
type Config struct {
	// SecretID and SecretKey are the key pair the emulator accepts. Without
	// them every request is refused with AuthFailure.SecretIdNotFound.
	SecretID, SecretKey string
	// Token, when set, must be sent in X-TC-Token (temporary credentials);
	// a request without it or with another one is refused with
	// AuthFailure.TokenFailure. Empty: X-TC-Token is not checked.
	Token string
	// Now tells time; nil means time.Now. Every timing (operation
	// completion, the rate window, the signature window) uses it, so a test
	// clock makes the emulator deterministic. The SDK signs with the real
	// time, so a test clock should start near it (or set SignatureWindow).
	Now func() time.Time
	// SignatureWindow is how far X-TC-Timestamp may be from Now in either
	// direction; 0 means the API's 5 minutes, a negative value turns the
	// check off (for tests that move a clock far ahead).
	SignatureWindow time.Duration
	// RebootDuration is how long an instance stays REBOOTING (and STARTING
	// or STOPPING) before the operation ends; 0 means 2s.
	RebootDuration time.Duration
	// CallsPerSecond is how many RebootInstances calls are let through in
	// any one-second window; further calls get RequestLimitExceeded. 0
	// means the API's 10; a negative value means no limit.
	CallsPerSecond int
	// DescribeCallsPerSecond is the same for DescribeInstances: 0 means
	// the API's 40; a negative value means no limit.
	DescribeCallsPerSecond int
	// Seed seeds the randomness of fault injection.
	Seed int64
	// OnCall, when set, is called after each API request is answered, from
	// the goroutine that served it.
	OnCall func(Call)
}

// Call describes one API request the emulator answered.
type Call struct {
	Action      string
	Region      string
	RequestID   string
	InstanceIDs []string  // the request's InstanceIds, when it could be read
	ErrorCode   string    // "" on success
	At          time.Time // when the call was taken: counted against its rate, for the rate-limited actions
}

// Default values of Config.
const (
	DefaultRebootDuration         = 2 * time.Second
	DefaultCallsPerSecond         = 10
	DefaultDescribeCallsPerSecond = 40
	DefaultSignatureWindow        = 5 * time.Minute
)

// APIVersion is the only API version the emulator serves.
const APIVersion = "2017-03-12"

// Emulator is an in-memory CVM API. It is an http.Handler; all its methods
// are safe for concurrent use.
type Emulator struct {
	cfg        Config
	now        func() time.Time
	rebootTime time.Duration
	window     time.Duration // signature window; <0: unchecked

	idPrefix [8]byte
	idSeq    atomic.Uint64

	mu              sync.Mutex
	byID            map[string]*instance
	byRegion        map[string][]*instance // in the order they were added
	rebootCalls     map[string]int
	calls           map[string]int
	totalCalls      int
	failNext        map[string]bool
	faults          []*faultState
	rng             *rand.Rand
	limiter         limiter // RebootInstances calls
	describeLimiter limiter // DescribeInstances calls
}

// New returns an emulator with no instances.
func New(cfg Config) *Emulator {
	e := &Emulator{
		cfg:         cfg,
		now:         cfg.Now,
		rebootTime:  cfg.RebootDuration,
		window:      cfg.SignatureWindow,
		byID:        make(map[string]*instance),
		byRegion:    make(map[string][]*instance),
		rebootCalls: make(map[string]int),
		calls:       make(map[string]int),
		failNext:    make(map[string]bool),
		rng:         rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.rebootTime <= 0 {
		e.rebootTime = DefaultRebootDuration
	}
	if e.window == 0 {
		e.window = DefaultSignatureWindow
	}
	perSecond := cfg.CallsPerSecond
	if perSecond == 0 {
		perSecond = DefaultCallsPerSecond
	}
	e.limiter = newLimiter(perSecond, time.Second)
	describes := cfg.DescribeCallsPerSecond
	if describes == 0 {
		describes = DefaultDescribeCallsPerSecond
	}
	e.describeLimiter = newLimiter(describes, time.Second)
	crand.Read(e.idPrefix[:])
	return e
}

// Add seeds instances. It adds all of them or, when one is malformed or
// its ID is taken, none and returns an error naming it.
func (e *Emulator) Add(ins ...Instance) error {
	norm := make([]Instance, len(ins))
	seen := make(map[string]bool, len(ins))
	for i, in := range ins {
		n, err := normalize(in)
		if err != nil {
			return err
		}
		if seen[n.ID] {
			return fmt.Errorf("instance %s is listed twice", n.ID)
		}
		seen[n.ID] = true
		norm[i] = n
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range norm {
		if _, ok := e.byID[n.ID]; ok {
			return fmt.Errorf("instance %s already exists", n.ID)
		}
	}
	for _, n := range norm {
		rec := &instance{Instance: n, facts: factsOf(n.ID, now)}
		e.byID[n.ID] = rec
		e.byRegion[n.Region] = append(e.byRegion[n.Region], rec)
	}
	return nil
}

// SetState puts instance id in state at once, ending any operation in
// progress without touching its latest operation. Tests use it to move
// instances out of RUNNING.
func (e *Emulator) SetState(id, state string) error {
	if !ValidState(state) {
		return fmt.Errorf("unknown instance state %q", state)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	in, ok := e.byID[id]
	if !ok {
		return fmt.Errorf("no instance %s", id)
	}
	in.State = state
	in.until = time.Time{}
	return nil
}

// Status returns a snapshot of instance id, and whether it exists.
func (e *Emulator) Status(id string) (Status, bool) {
	now := e.now()
	e.mu.Lock()
	in, ok := e.byID[id]
	if !ok {
		e.mu.Unlock()
		return Status{}, false
	}
	in.settle(now)
	s := in.status()
	e.mu.Unlock()
	s.PrivateIPs = slices.Clone(s.PrivateIPs)
	s.PublicIPs = slices.Clone(s.PublicIPs)
	s.Tags = maps.Clone(s.Tags)
	return s, true
}

// IDs returns the IDs of every instance, in the order they were added
// within each region and regions in name order.
func (e *Emulator) IDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for _, region := range slices.Sorted(maps.Keys(e.byRegion)) {
		for _, in := range e.byRegion[region] {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

// RebootCalls returns how many accepted RebootInstances calls included id.
func (e *Emulator) RebootCalls(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rebootCalls[id]
}

// Calls returns how many API requests were received for action, whatever
// their outcome; action "" counts every request.
func (e *Emulator) Calls(action string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if action == "" {
		return e.totalCalls
	}
	return e.calls[action]
}

// FailNextReboot makes the next accepted reboot of id end with
// LatestOperationState FAILED (the instance comes back RUNNING).
func (e *Emulator) FailNextReboot(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failNext[id] = true
}

// newRequestID returns a UUID-shaped RequestId unique to this emulator: a
// random prefix chosen at New followed by a counter.
func (e *Emulator) newRequestID() string {
	var b [16]byte
	copy(b[:8], e.idPrefix[:])
	binary.BigEndian.PutUint64(b[8:], e.idSeq.Add(1))
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant; the counter never reaches these bits
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}
