package approval_test

import (
	"context"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
	"rebootbot/store"
)

// handingStore is a Store that keeps a weak pointer to every request it
// hands out, so that a test can tell whether any is still held.
type handingStore struct {
	approval.Store
	mu     sync.Mutex
	handed []weak.Pointer[approval.Request]
}

func (s *handingStore) keep(r *approval.Request) {
	if r == nil {
		return
	}
	s.mu.Lock()
	s.handed = append(s.handed, weak.Make(r))
	s.mu.Unlock()
}

func (s *handingStore) Get(ctx context.Context, id string) (*approval.Request, error) {
	r, err := s.Store.Get(ctx, id)
	s.keep(r)
	return r, err
}

func (s *handingStore) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	r, reply, replayed, err := s.Store.Update(ctx, id, key, func(r *approval.Request) (approval.Change, error) {
		s.keep(r)
		return fn(r)
	})
	s.keep(r)
	return r, reply, replayed, err
}

func (s *handingStore) Open(ctx context.Context) ([]*approval.Request, error) {
	rs, err := s.Store.Open(ctx)
	for _, r := range rs {
		s.keep(r)
	}
	return rs, err
}

// held returns how many of the requests handed out are still reachable.
func (s *handingStore) held() int {
	runtime.GC()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.handed {
		if p.Value() != nil {
			n++
		}
	}
	return n
}

// TestExecutionHoldsNoRequestWhileTheCloudAnswers checks that an execution
// waiting for its reboot call holds no decoded request: while a hundred
// fleet requests queue for the call budget (ten calls a second), each
// holding its request of a hundred instances would keep megabytes alive
// for nothing.
func TestExecutionHoldsNoRequestWhileTheCloudAnswers(t *testing.T) {
	cloud := newFakeCloud(testInstances()...)
	cloud.interrupt, cloud.reached = "before", make(chan struct{})
	clock := testutil.NewFakeClock(epoch)
	db, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{NoSync: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &handingStore{Store: db}
	slack := newFakeSlack()
	engine, err := approval.NewEngine(approval.Config{
		Store: s, Cloud: cloud, Rebooter: cloud, Notifier: slack, Policy: testPolicy(), Clock: clock,
		Groups: fakeGroups{}, PollInterval: time.Millisecond, RebootTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		engine.Close(ctx)
	}()
	id := func() string {
		r, err := engine.Create(context.Background(), approval.CreateInput{Requester: "UREQ", Channel: "COPS", Reason: "kernel patch",
			Instances: []string{"ins-aaaaaaaa", "ins-bbbbbbbb"}})
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}()
	card := func() approval.Card {
		var c approval.Card
		testutil.Eventually(t, 5*time.Second, func() bool {
			r, err := db.Get(context.Background(), id)
			if err == nil {
				c = r.Card
			}
			return c.TS != ""
		}, "the card of %s to be stored", id)
		return c
	}()
	if _, err := engine.Approve(context.Background(), "click-1", id, "UALICE", card); err != nil {
		t.Fatal(err)
	}
	<-cloud.reached
	testutil.Eventually(t, 5*time.Second, func() bool { return s.held() == 0 },
		"every request handed out to be let go while the reboot call is in flight")
}
