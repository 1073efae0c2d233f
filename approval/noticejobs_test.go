package approval_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
	"rebootbot/store"
)

// gatedSlack is a fakeSlack whose card updates wait until open is closed,
// counting how many wait at once.
type gatedSlack struct {
	*fakeSlack
	open chan struct{}

	mu            sync.Mutex
	waiting, most int
}

func (s *gatedSlack) UpdateCard(ctx context.Context, r *approval.Request) error {
	s.mu.Lock()
	s.waiting++
	s.most = max(s.most, s.waiting)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
	}()
	select {
	case <-s.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.fakeSlack.UpdateCard(ctx, r)
}

func (s *gatedSlack) counts() (waiting, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting, s.most
}

// TestCardJobsWaitingForSlackHoldFewRequests changes three times
// NoticeJobs requests at once while Slack does not answer: only NoticeJobs
// card jobs may hold their request meanwhile, and once Slack answers every
// card is brought up to date.
func TestCardJobsWaitingForSlackHoldFewRequests(t *testing.T) {
	clock := testutil.NewFakeClock(epoch)
	db, err := store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{NoSync: true, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &handingStore{Store: db}
	slack := &gatedSlack{fakeSlack: newFakeSlack(), open: make(chan struct{})}
	n := 3 * approval.NoticeJobs
	var instances []approval.Instance
	for i := range n {
		instances = append(instances, approval.Instance{ID: fmt.Sprintf("ins-n%07d", i), Name: fmt.Sprintf("web-%d", i), Zone: "ap-guangzhou-3"})
	}
	cloud := newFakeCloud(instances...)
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

	var ids []string
	for i := range n {
		r, err := engine.Create(context.Background(), approval.CreateInput{Key: fmt.Sprintf("create-%d", i), Requester: "UREQ",
			Channel: "COPS", Reason: "kernel patch", Instances: []string{instances[i].ID}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return slack.posts() == n }, "%d cards to be posted", n)
	for i, id := range ids {
		testutil.Eventually(t, 5*time.Second, func() bool {
			r, err := db.Get(context.Background(), id)
			return err == nil && r.Card.TS != ""
		}, "the card of %s to be stored", id)
		if _, err := engine.Cancel(context.Background(), fmt.Sprintf("cancel-%d", i), id, "UREQ"); err != nil {
			t.Fatal(err)
		}
	}

	testutil.Eventually(t, 10*time.Second, func() bool { w, _ := slack.counts(); return w >= approval.NoticeJobs },
		"%d card updates to wait for Slack", approval.NoticeJobs)
	testutil.Eventually(t, 5*time.Second, func() bool { return s.held() <= approval.NoticeJobs },
		"no more than %d requests held while Slack does not answer", approval.NoticeJobs)
	if _, most := slack.counts(); most > approval.NoticeJobs {
		t.Errorf("%d card updates waited for Slack at once, want at most %d", most, approval.NoticeJobs)
	}

	close(slack.open)
	for _, id := range ids {
		testutil.Eventually(t, 10*time.Second, func() bool {
			c := slack.card(id)
			return c != nil && c.State == approval.Cancelled
		}, "the card of %s to show it cancelled", id)
	}
}
