package approval_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
	"rebootbot/store"
)

// refusingStore is a store that refuses, as a busy store past its write
// deadline does, the first write that would record an instance's reboot
// as succeeded once armed. Nothing of the refused write is stored.
type refusingStore struct {
	approval.Store
	armed   atomic.Bool
	refused atomic.Int32
}

func (s *refusingStore) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	return s.Store.Update(ctx, id, key, func(r *approval.Request) (approval.Change, error) {
		c, err := fn(r)
		if err != nil || !s.armed.Load() {
			return c, err
		}
		for _, ev := range c.Events {
			if ev.Type == approval.EventInstanceSucceeded && s.armed.CompareAndSwap(true, false) {
				s.refused.Add(1)
				return approval.Change{}, fmt.Errorf("store write: %w", context.DeadlineExceeded)
			}
		}
		return c, nil
	})
}

// TestReportedRebootSurvivesARefusedWrite has the store refuse the write
// of the wait results, as a leader's store does when it is handed
// executions faster than it can record them. Tencent reported every
// reboot finished, so the request must end Succeeded, with each instance
// rebooted once, not Failed with a timeout.
func TestReportedRebootSurvivesARefusedWrite(t *testing.T) {
	clock := testutil.NewFakeClock(epoch)
	db, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{NoSync: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := &refusingStore{Store: db}
	cloud, slack := newFakeCloud(testInstances()...), newFakeSlack()
	cloud.hold, cloud.waiting = make(chan struct{}), make(chan struct{}, 1)
	engine, err := approval.NewEngine(approval.Config{
		Store: st, Cloud: cloud, Rebooter: cloud, Notifier: slack, Policy: testPolicy(), Clock: clock,
		PollInterval: time.Millisecond, RebootTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := engine.Close(ctx); err != nil {
			t.Errorf("close engine: %v", err)
		}
	})
	ctx := context.Background()
	r, err := engine.Create(ctx, approval.CreateInput{Key: "busy", Requester: "UREQ", Channel: "COPS", Reason: "kernel patch",
		Instances: []string{"ins-aaaaaaaa", "ins-bbbbbbbb"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Approve(ctx, "click", r.ID, "UALICE", mustStoredCard(t, db, r.ID)); err != nil {
		t.Fatal(err)
	}
	<-cloud.waiting
	st.armed.Store(true)
	close(cloud.hold)

	var got *approval.Request
	testutil.Eventually(t, 10*time.Second, func() bool {
		got, err = db.Get(ctx, r.ID)
		return err == nil && got.State.Terminal()
	}, "%s to end", r.ID)
	if n := st.refused.Load(); n != 1 {
		t.Fatalf("the store refused %d writes of results, want 1", n)
	}
	if got.State != approval.Succeeded {
		t.Errorf("%s ended %s, want SUCCEEDED", r.ID, got.State)
	}
	for _, id := range r.InstanceIDs() {
		if run := got.Run(id); run.State != approval.RunSucceeded || run.ErrorCode != "" {
			t.Errorf("run %s = %+v, want succeeded", id, run)
		}
		if n := cloud.rebootCalls(id); n != 1 {
			t.Errorf("%s reboot calls = %d, want 1", id, n)
		}
	}
	if _, err := db.Verify(ctx); err != nil {
		t.Error(err)
	}
}
