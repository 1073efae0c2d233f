package approval_test

import (
	"context"
	"testing"
	"time"

	"rebootbot/approval"
)

// TestPassiveEngineLeavesWorkToTheActiveOne runs a passive engine beside
// an active one on the same store, as a replica that is not the leader
// runs beside the leader: the passive one answers the command and the
// click (and sends the answers to them), and the execution, the card
// update and the thread are the active one's once it is woken.
func TestPassiveEngineLeavesWorkToTheActiveOne(t *testing.T) {
	w := mustWorld(t, testPolicy(), newFakeCloud(testInstances()...), "")
	frontCloud, frontSlack := newFakeCloud(testInstances()...), newFakeSlack()
	front, err := approval.NewEngine(approval.Config{
		Store: w.store, Cloud: frontCloud, Rebooter: frontCloud, Notifier: frontSlack, Policy: w.policy, Clock: w.clock,
		PollInterval: time.Millisecond, RebootTimeout: time.Minute, Passive: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := front.Start(context.Background()); err != nil {
		t.Fatal(err)
	}

	r, err := front.Create(context.Background(), approval.CreateInput{Key: "t-1", Requester: "UREQ", Channel: "COPS", Reason: "kernel patch",
		Instances: []string{"ins-aaaaaaaa", "ins-bbbbbbbb"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Card.TS == "" {
		t.Fatalf("the passive engine did not post the card of the request it took: %+v", r.Card)
	}
	res, err := front.Approve(context.Background(), "click-1", r.ID, "UALICE", w.mustCard(t, r.ID))
	if err != nil {
		t.Fatal(err)
	}
	if res.Request.State != approval.Executing {
		t.Fatalf("state after the last approval = %s, want EXECUTING", res.Request.State)
	}

	// The clicker's answer is the passive engine's to send.
	answered := make(chan struct{})
	if !front.AfterLull(func(ctx context.Context) { close(answered) }) {
		t.Fatal("the passive engine took no answer to send")
	}
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the passive engine never sent the clicker's answer")
	}

	w.engine.Wake()
	w.waitState(t, r.ID, approval.Succeeded)
	for _, id := range r.InstanceIDs() {
		if got := w.cloud.rebootCalls(id); got != 1 {
			t.Errorf("%s: active engine's reboot calls = %d, want 1", id, got)
		}
		if got := frontCloud.rebootCalls(id); got != 0 {
			t.Errorf("%s: passive engine's reboot calls = %d, want 0", id, got)
		}
	}
	if got := w.slack.card(r.ID); got == nil || got.State != approval.Succeeded {
		t.Errorf("card updated by the active engine shows %v, want SUCCEEDED", got)
	}
	if got := len(w.slack.reportsOf(r.ID)); got == 0 {
		t.Error("the active engine posted no thread messages")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := front.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := frontSlack.posts(), 1; got != want {
		t.Errorf("passive engine posted %d cards, want %d", got, want)
	}
	if got := frontSlack.updateCalls(); got != 0 {
		t.Errorf("passive engine updated cards %d times, want 0", got)
	}
	if got := len(frontSlack.reportsOf(r.ID)); got != 0 {
		t.Errorf("passive engine posted %d thread messages, want 0", got)
	}
}
