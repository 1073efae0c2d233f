package approval_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
)

// staleStore decides every update first on the request as it was created,
// then on the stored one, as the etcd store does when what it remembers of
// a request is older than what another replica wrote since: the first
// decision's transaction fails its compares and is dropped.
type staleStore struct {
	approval.Store
	mu      sync.Mutex
	created map[string]*approval.Request
	stale   int // decisions made on an old version
}

func (s *staleStore) Create(ctx context.Context, r *approval.Request, key string, reply approval.Reply, events []approval.Event) error {
	if err := s.Store.Create(ctx, r, key, reply, events); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.created == nil {
		s.created = map[string]*approval.Request{}
	}
	s.created[r.ID] = r.Clone()
	return nil
}

func (s *staleStore) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	s.mu.Lock()
	old := s.created[id]
	if old != nil {
		old = old.Clone()
		s.stale++
	}
	s.mu.Unlock()
	if old != nil {
		fn(old)
	}
	return s.Store.Update(ctx, id, key, fn)
}

// TestDecisionsOnAnOldVersionAreHarmless runs requests, one of them in
// waves, to their end through a store that decides each update first on
// the request as created, with no runs: nothing may panic, and every
// report is still posted once and marked.
func TestDecisionsOnAnOldVersionAreHarmless(t *testing.T) {
	cloud := newFakeCloud(testInstances()[:2]...)
	db := openDB(t, nil)
	stale := &staleStore{Store: db}
	slack := newFakeSlack()
	e := startEngine(t, approval.Config{Store: stale, Cloud: cloud, Rebooter: cloud, Notifier: slack})
	ctx := context.Background()
	ids := []string{"ins-aaaaaaaa", "ins-bbbbbbbb"}
	var done []string
	for _, waves := range []approval.WaveOptions{{}, {Size: 1}} {
		r, err := e.Create(ctx, approval.CreateInput{Key: fmt.Sprint("cmd", waves.Size), Requester: "UREQ", Channel: "COPS", Reason: "kernel", Instances: ids, Waves: waves})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Approve(ctx, fmt.Sprint("click", waves.Size), r.ID, "UALICE", storedCard(t, db, r.ID)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, func() bool {
			got, err := db.Get(ctx, r.ID)
			return err == nil && got.Settled()
		}, "%s to settle", r.ID)
		done = append(done, r.ID)
	}
	for _, id := range done {
		got, err := db.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != approval.Succeeded || !got.EndAnnounced {
			t.Errorf("%s: state %s, end announced %v; want Succeeded, announced", id, got.State, got.EndAnnounced)
		}
		for _, run := range got.Runs {
			if !run.Reported {
				t.Errorf("%s: %s not marked reported", id, run.InstanceID)
			}
		}
		wantReportedOnce(t, slack, id, ids)
	}
	stale.mu.Lock()
	defer stale.mu.Unlock()
	if stale.stale == 0 {
		t.Fatal("no update was decided on an old version")
	}
}
