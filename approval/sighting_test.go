package approval_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/testutil"
	"rebootbot/store"
)

// slowCreatorSlack is a creating replica's Slack whose card post is held
// until released, as a post in flight on a busy replica is.
type slowCreatorSlack struct {
	*fakeSlack
	entered chan struct{} // closed when the post has begun
	release chan struct{} // the post goes on when closed
	fail    error         // the post's answer once released, when set
}

func (s *slowCreatorSlack) PostCard(ctx context.Context, r *approval.Request) (approval.Card, error) {
	close(s.entered)
	<-s.release
	if s.fail != nil {
		return approval.Card{}, s.fail
	}
	return s.fakeSlack.PostCard(ctx, r)
}

// cardRace is a replica that created a request long ago by its clock and
// is still posting the card, and a leading engine on the same store that
// starts once the request is stored.
type cardRace struct {
	db                 *store.DB
	clock              *testutil.FakeClock // the leader's
	creatorSlack       *slowCreatorSlack
	leader             *approval.Engine
	leaderSlack        *fakeSlack
	created            chan *approval.Request
	creator            *approval.Engine
	creatorCreateError chan error
}

func mustCardRace(t *testing.T, creatorFails error) *cardRace {
	t.Helper()
	c := &cardRace{clock: testutil.NewFakeClock(epoch), leaderSlack: newFakeSlack(),
		creatorSlack: &slowCreatorSlack{fakeSlack: newFakeSlack(), entered: make(chan struct{}), release: make(chan struct{}), fail: creatorFails},
		created:      make(chan *approval.Request, 1), creatorCreateError: make(chan error, 1)}
	var err error
	c.db, err = store.Open(filepath.Join(t.TempDir(), "bot.db"), store.Options{NoSync: true, Now: c.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.db.Close() })
	cloud := newFakeCloud(testInstances()...)
	engine := func(passive bool, clock approval.Clock, slack approval.Notifier) *approval.Engine {
		e, err := approval.NewEngine(approval.Config{
			Store: c.db, Cloud: cloud, Rebooter: cloud, Notifier: slack, Policy: testPolicy(), Clock: clock,
			PollInterval: time.Millisecond, RebootTimeout: time.Minute, Passive: passive, Shared: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeEngine(t, e) })
		return e
	}
	// The creator's clock stands ten minutes behind: by the leader's, the
	// request is ten minutes old when the leader first sees it.
	c.creator = engine(true, testutil.NewFakeClock(epoch.Add(-10*time.Minute)), c.creatorSlack)
	go func() {
		r, err := c.creator.Create(context.Background(), approval.CreateInput{Key: "slow", Requester: "UREQ", Channel: "COPS",
			Reason: "kernel patch", Instances: []string{"ins-aaaaaaaa"}})
		c.created <- r
		c.creatorCreateError <- err
	}()
	<-c.creatorSlack.entered
	c.leader = engine(false, c.clock, c.leaderSlack)
	// The leader's first sweep is done when its expiry loop sleeps.
	testutil.Eventually(t, 10*time.Second, func() bool { return c.clock.Waiters() == 1 }, "the leader's first sweep")
	return c
}

// sweep moves the leader's clock by d, which must wake its sleeping
// expiry loop, and waits until the sweep is made.
func (c *cardRace) sweep(t *testing.T, d time.Duration) {
	t.Helper()
	c.clock.Advance(d)
	testutil.Eventually(t, 10*time.Second, func() bool { return c.clock.Waiters() == 1 }, "the leader's sweep")
}

func closeEngine(t *testing.T, e *approval.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Errorf("close engine: %v", err)
	}
}

// TestLeaderLeavesASlowCreatorsCardToIt has a leader see a request without
// a card that a slow replica created long ago and is still posting the
// card of. The leader waits the creator's grace from when it first saw
// the request, not from its creation: the creator's card lands, is the
// only card, and takes clicks.
func TestLeaderLeavesASlowCreatorsCardToIt(t *testing.T) {
	c := mustCardRace(t, nil)
	close(c.creatorSlack.release)
	r, err := <-c.created, <-c.creatorCreateError
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if r.Card.TS == "" {
		t.Fatalf("the creator stored no card: %+v", r.Card)
	}
	c.sweep(t, 7*time.Second)
	if _, err := c.leader.Approve(context.Background(), "click", r.ID, "UALICE", r.Card); err != nil {
		t.Fatalf("a click on the creator's card: %v", err)
	}
	closeEngine(t, c.leader) // waits for any card job of the leader's
	if n := c.leaderSlack.posts(); n != 0 {
		t.Errorf("the leader posted %d cards, want none: the creator's card was on its way", n)
	}
	stored, err := c.db.Get(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Card != r.Card {
		t.Errorf("stored card %+v, want the creator's %+v", stored.Card, r.Card)
	}
}

// TestLeaderPostsACardItsCreatorNeverDid has the slow creator's post fail
// and the creator, a replica that does no background work, leave the card
// owed: the leader posts it once the grace counted from its first sight
// is over, at the sweep that grace's end brings, and not before.
func TestLeaderPostsACardItsCreatorNeverDid(t *testing.T) {
	c := mustCardRace(t, &approval.Error{Kind: approval.Unavailable, Message: "Slack did not answer"})
	if n := c.leaderSlack.posts(); n != 0 {
		t.Fatalf("the leader posted %d cards at first sight, want none yet", n)
	}
	close(c.creatorSlack.release)
	r, err := <-c.created, <-c.creatorCreateError
	if err != nil || r.Card.TS != "" {
		t.Fatalf("create = %+v, %v; want the request stored without a card", r, err)
	}
	c.clock.Advance(6 * time.Second)
	c.leader.Wake() // a sweep within the grace: the kicked loop sleeps on a second timer
	testutil.Eventually(t, 10*time.Second, func() bool { return c.clock.Waiters() == 2 }, "the leader's sweep")
	if n := c.leaderSlack.posts(); n != 0 {
		t.Fatalf("the leader posted %d cards within the grace, want none", n)
	}
	c.clock.Advance(time.Second) // the grace ends: firstCardWait and creatorGrace
	testutil.Eventually(t, 10*time.Second, func() bool {
		got, err := c.db.Get(context.Background(), r.ID)
		return err == nil && got.Card.TS != ""
	}, "the leader to post %s's card", r.ID)
	if n := c.leaderSlack.posts(); n != 1 {
		t.Errorf("the leader posted %d cards, want 1", n)
	}
}
