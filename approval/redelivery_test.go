package approval_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/store"
)

// errDied is what a store answers once its process is taken to be dead.
var errDied = errors.New("the process died")

// dyingStore is a store whose process dies right after the first request
// is created: every later write fails as if it never happened.
type dyingStore struct {
	*store.DB
	dead atomic.Bool
}

func (s *dyingStore) Create(ctx context.Context, r *approval.Request, key string, reply approval.Reply, events []approval.Event) error {
	if s.dead.Load() {
		return errDied
	}
	err := s.DB.Create(ctx, r, key, reply, events)
	s.dead.Store(err == nil)
	return err
}

func (s *dyingStore) Update(ctx context.Context, id, key string, fn func(r *approval.Request) (approval.Change, error)) (*approval.Request, approval.Reply, bool, error) {
	if s.dead.Load() {
		return nil, approval.Reply{}, false, errDied
	}
	return s.DB.Update(ctx, id, key, fn)
}

func (s *dyingStore) Record(ctx context.Context, key string, reply approval.Reply, events []approval.Event) (approval.Reply, bool, error) {
	if s.dead.Load() {
		return approval.Reply{}, false, errDied
	}
	return s.DB.Record(ctx, key, reply, events)
}

// TestCommandRedeliveredAfterCrashAtCreate: the bot dies right after a new
// request is stored. The same command delivered again (same trigger_id) to
// the restarted bot must be answered with that request, not refused as a
// second request for instances that are now held, and nothing more may be
// audited.
func TestCommandRedeliveredAfterCrashAtCreate(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "bot.db")
	db, err := store.Open(dbPath, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	cloud := newFakeCloud(testInstances()...)
	in := approval.CreateInput{Key: "trigger-1", Requester: "UREQ", Channel: "COPS", Reason: "kernel patch", Instances: []string{"ins-aaaaaaaa"}}

	dying := &dyingStore{DB: db}
	first, err := approval.NewEngine(approval.Config{Store: dying, Cloud: cloud, Rebooter: cloud, Notifier: newFakeSlack(), Policy: testPolicy(),
		Groups: fakeGroups{}, PollInterval: time.Millisecond, RebootTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	first.Create(context.Background(), in) // dies after storing the request
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	first.Close(cancelled)

	slack := newFakeSlack()
	second, err := approval.NewEngine(approval.Config{Store: db, Cloud: cloud, Rebooter: cloud, Notifier: slack, Policy: testPolicy(),
		Groups: fakeGroups{}, PollInterval: time.Millisecond, RebootTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		second.Close(ctx)
		db.Close()
	})
	r, err := second.Create(context.Background(), in)
	if err != nil {
		t.Fatalf("the redelivered command was refused: %v", err)
	}
	if got, want := r.ID, "R-1"; got != want {
		t.Errorf("redelivered command answered with %s, want %s", got, want)
	}
	var types []approval.EventType
	db.Audit(context.Background(), approval.AuditQuery{Oldest: true}, func(e *approval.Event) error {
		types = append(types, e.Type)
		return nil
	})
	if len(types) != 1 || types[0] != approval.EventRequested {
		t.Errorf("audit log = %v, want only the first requested event", types)
	}
}
