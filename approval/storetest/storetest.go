// Package storetest is the contract of approval.Store as tests: Run checks
// a store implementation against it, so that every store (bbolt, etcd)
// passes the same tests: compare-and-set state changes, the
// one-open-request-per-instance claim, delivery dedupe, the audit chain,
// indexes and lookups, and concurrent writers on two replicas.
package storetest

import (
	"context"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
)

// Backend opens the stores Run tests.
type Backend struct {
	// Open returns a new, empty store, closed when the test ends. Events
	// stored without a time are stamped by now.
	Open func(t *testing.T, now func() time.Time) approval.Store
	// Replica returns a second handle on s's state, as another replica of
	// the bot would open it. Nil means the backend serves one process and
	// s itself stands in for the second replica.
	Replica func(t *testing.T, s approval.Store) approval.Store
}

// Run runs the whole contract against b, each test as a subtest.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"CreateAssignsSequentialIDs", testCreateAssignsSequentialIDs},
		{"CreateStoresEventsAndReply", testCreateStoresEventsAndReply},
		{"CreateRefusesHeldInstance", testCreateRefusesHeldInstance},
		{"CreateReplayedKeyStoresNothing", testCreateReplayedKeyStoresNothing},
		{"CreateTerminalHoldsNothing", testCreateTerminalHoldsNothing},
		{"CreateRefusesRequestWithoutState", testCreateRefusesRequestWithoutState},
		{"CreateManyInstances", testCreateManyInstances},
		{"UpdateReleasesInstancesOnlyWhenTerminal", testUpdateReleasesInstancesOnlyWhenTerminal},
		{"UpdateReplaysDelivery", testUpdateReplaysDelivery},
		{"UpdateErrorWritesNothing", testUpdateErrorWritesNothing},
		{"UpdateWithoutSaveAppendsOnlyEvents", testUpdateWithoutSaveAppendsOnlyEvents},
		{"UpdateRefusesChangedID", testUpdateRefusesChangedID},
		{"UpdateTerminalAgainKeepsOthersClaims", testUpdateTerminalAgainKeepsOthersClaims},
		{"NotFound", testNotFound},
		{"RecordReplays", testRecordReplays},
		{"OpenListsPendingOldestFirst", testOpenListsPendingOldestFirst},
		{"OpenKeepsUnsettledRequests", testOpenKeepsUnsettledRequests},
		{"CancelledContextWritesNothing", testCancelledContextWritesNothing},
		{"ConcurrentApprovals", testConcurrentApprovals},
		{"AuditMatchesFullScan", testAuditMatchesFullScan},
		{"AuditUserMatchesRequester", testAuditUserMatchesRequester},
		{"AuditInstanceOfRequestWhenEventNamesNone", testAuditInstanceOfRequestWhenEventNamesNone},
		{"EventTimes", testEventTimes},
		{"AuditStopsOnCallbackError", testAuditStopsOnCallbackError},
		{"AuditCallbackMayWrite", testAuditCallbackMayWrite},
		{"AuditFindsOldEventsInASparseIndex", testAuditFindsOldEventsInASparseIndex},
		{"ChainLinks", testChainLinks},
		{"ReplicasNeverForkTheChain", testReplicasNeverForkTheChain},
		{"ReplicasClaimAnInstanceOnce", testReplicasClaimAnInstanceOnce},
		{"ReplicasActOnADeliveryOnce", testReplicasActOnADeliveryOnce},
		{"ReplicasKeepEveryApproval", testReplicasKeepEveryApproval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, b) })
	}
}

// T0 is when the tests' clocks start.
var T0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// Tick returns a clock that moves one second a call, for Backend.Open's now.
func Tick(start time.Time) func() time.Time { return testutil.Ticker(start, time.Second) }

// open returns a store of b on a ticking clock.
func open(t *testing.T, b Backend) approval.Store {
	t.Helper()
	return b.Open(t, Tick(T0))
}

// replica returns the second replica's handle on s.
func replica(t *testing.T, b Backend, s approval.Store) approval.Store {
	t.Helper()
	if b.Replica == nil {
		return s
	}
	return b.Replica(t, s)
}

// NewRequest returns a pending request for instances by requester.
func NewRequest(requester string, instances ...string) *approval.Request {
	r := &approval.Request{
		Requester:      requester,
		Channel:        "C0123",
		Reason:         "kernel patch",
		StopType:       approval.Soft,
		Region:         "ap-guangzhou",
		Required:       1,
		ApproverGroups: [][]string{{"U0APPROVER"}},
		State:          approval.Pending,
		CreatedAt:      T0,
		ExpiresAt:      T0.Add(30 * time.Minute),
	}
	for _, id := range instances {
		r.Instances = append(r.Instances, approval.Instance{ID: id, Name: "web-" + id[4:], State: approval.InstanceRunning, Zone: "ap-guangzhou-3"})
	}
	return r
}

// Requested is the event a new request is created with.
func Requested(r *approval.Request) approval.Event {
	return approval.Event{
		Type:      approval.EventRequested,
		Actor:     r.Requester,
		Instances: r.InstanceIDs(),
		Details:   approval.Details{Reason: r.Reason, StopType: r.StopType, Region: r.Region},
	}
}

// mustCreate stores r with its requested event and returns its ID.
func mustCreate(t testing.TB, s approval.Store, r *approval.Request) string {
	t.Helper()
	if err := s.Create(context.Background(), r, "", approval.Reply{}, []approval.Event{Requested(r)}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	return r.ID
}

// mustSetState moves request id to state with one event by actor; a
// terminal request is left settled (nothing owed to Slack).
func mustSetState(t testing.TB, s approval.Store, id string, state approval.State, actor string, typ approval.EventType) {
	t.Helper()
	_, _, _, err := s.Update(context.Background(), id, "", func(r *approval.Request) (approval.Change, error) {
		r.State = state
		r.CardCurrent = state.Terminal()
		return approval.Change{Save: true, Events: []approval.Event{{Type: typ, Actor: actor}}}, nil
	})
	if err != nil {
		t.Fatalf("Update(%s → %s): %v", id, state, err)
	}
}

// mustAudit returns the events matching q.
func mustAudit(t testing.TB, s approval.Store, q approval.AuditQuery) []approval.Event {
	t.Helper()
	var got []approval.Event
	if err := s.Audit(context.Background(), q, func(e *approval.Event) error {
		got = append(got, *e)
		return nil
	}); err != nil {
		t.Fatalf("Audit(%+v): %v", q, err)
	}
	return got
}

// mustVerify checks the chain is intact and holds n events.
func mustVerify(t testing.TB, s approval.Store, n int) {
	t.Helper()
	got, err := s.Verify(context.Background())
	if err != nil || got != uint64(n) {
		t.Errorf("Verify = %d, %v; want %d intact events", got, err, n)
	}
}

func seqs(events []approval.Event) []uint64 {
	out := make([]uint64, len(events))
	for i, e := range events {
		out[i] = e.Seq
	}
	return out
}
