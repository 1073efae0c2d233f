//go:build e2e

package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/cloud/emulator"
	"rebootbot/internal/testutil"
)

// openLoopShape is the environment variable that turns
// TestReplicasOpenLoop on: REQUESTSxAT_ONCE, such as 600x200.
const openLoopShape = "REBOOTBOT_OPEN_LOOP"

// TestReplicasOpenLoop files one-instance requests through three replicas
// as fast as they answer, each click delivered to the two other replicas,
// without waiting for any request to end, so that the leader is handed
// executions faster than it may record them. It checks what must hold
// however far behind the store falls:
//
//   - every delivery is answered 200 within Slack's 3 s;
//   - a command the store did not take is answered so, and a request it
//     took is Pending with its card posted if nobody's click was recorded;
//   - every approved request Succeeded, was approved, executed and
//     completed once, and its instance was rebooted once;
//   - no instance of a request that was not approved was rebooted;
//   - every request has one card in the channel, and it is stored;
//   - the audit log verifies.
//
// It takes minutes at the larger shapes, so it runs only when asked:
//
//	REBOOTBOT_OPEN_LOOP=600x200 go test -tags e2e -run TestReplicasOpenLoop -v ./cmd/bot/
func TestReplicasOpenLoop(t *testing.T) {
	shape := os.Getenv(openLoopShape)
	if shape == "" {
		t.Skipf("set %s=REQUESTSxAT_ONCE (for example 600x200) to run", openLoopShape)
	}
	var requests, atOnce int
	if n, err := fmt.Sscanf(shape, "%dx%d", &requests, &atOnce); err != nil || n != 2 || requests < 1 || requests > 10000 || atOnce < 1 {
		t.Fatalf("%s=%q: want REQUESTSxAT_ONCE, such as 600x200, with at most 10000 requests", openLoopShape, shape)
	}
	instances := make([]emulator.Instance, requests)
	for i := range instances {
		instances[i] = emulator.Instance{ID: fmt.Sprintf("ins-open%04d", i), Name: fmt.Sprintf("o%d", i)}
	}
	s := startReplicaSet(t, instances, 200*time.Millisecond, map[string]string{"BOT_ETCD_LEASE_TTL": "10s", "BOT_POLL_INTERVAL": "200ms"})
	approvers := []string{approver1, approver2, approver3}

	// What happened to each request, as its requester and approver saw it.
	type seen struct {
		id, ts  string
		refused string   // why no card came for the command
		late    []string // deliveries not answered 200 within 3 s
	}
	all := make([]seen, requests)
	began := time.Now()
	var wg sync.WaitGroup
	slots := make(chan struct{}, atOnce)
	for i := range requests {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			r, o := s.replicas, &all[i]
			id, ts, err := s.file(r[i%3], []string{instances[i].ID}, "open loop")
			if err != nil {
				o.refused = err.Error()
				return
			}
			o.id, o.ts = id, ts
			form, err := r[0].send.clickForm(approvers[i%3], bot.ActionApprove, id, ts, r[0].send.trigger(), s.w.stub.ResponseURL())
			if err != nil {
				t.Error(err)
				return
			}
			for _, p := range []*replicaProcess{r[(i+1)%3], r[(i+2)%3]} {
				status, body, took, err := p.send.post(s.t.Context(), "/slack/interactions", form)
				if err := answer("/slack/interactions", status, body, took, err); err != nil {
					o.late = append(o.late, fmt.Sprintf("%s: %v", id, err))
				}
			}
		})
	}
	wg.Wait()
	filedIn := time.Since(began)

	// Wait until what is left open is requests nobody's click reached:
	// Pending, each with its card in the channel. A click answered "may
	// not have been recorded" may still be, and its request executed, so
	// the requests are sorted only then.
	var open []*approval.Request
	owed := func(r *approval.Request) bool { return r.State != approval.Pending || r.Card.TS == "" }
	if !testutil.Poll(5*time.Minute, func() bool {
		var err error
		open, err = s.store.Open(t.Context())
		return err == nil && !slices.ContainsFunc(open, owed)
	}) {
		for _, r := range open {
			if owed(r) {
				t.Errorf("%s (%s) is still owed work: card %+v, card current %v", r.ID, r.State, r.Card, r.CardCurrent)
			}
		}
	}
	settledIn := time.Since(began)

	var approvedIDs, unapprovedIDs []string
	var approved, untouched []emulator.Instance
	refusals := map[string]int{}
	late := 0
	for i, o := range all {
		for _, e := range o.late {
			t.Error(e)
			late++
		}
		switch {
		case o.refused != "":
			if !strings.Contains(o.refused, "nothing was recorded") && !strings.Contains(o.refused, "may not have been recorded") &&
				!strings.Contains(o.refused, "its approval card will appear") {
				t.Errorf("request for %s: %s", instances[i].ID, o.refused)
			}
			refusals[untakenKind(o.refused)]++
			untouched = append(untouched, instances[i])
		case s.hasEvent(o.id, approval.EventApproved):
			approvedIDs = append(approvedIDs, o.id)
			approved = append(approved, instances[i])
		default:
			unapprovedIDs = append(unapprovedIDs, o.id)
			untouched = append(untouched, instances[i])
		}
	}
	for _, id := range approvedIDs {
		if got := s.w.waitSettled(id); got != "Succeeded" {
			t.Errorf("%s ended %q, want Succeeded; its audit:\n%s", id, got, s.auditText(id))
		}
	}
	s.checkDecidedOnce(approvedIDs, approved)
	for _, in := range untouched {
		if n := s.w.emu.RebootCalls(in.ID); n != 0 {
			t.Errorf("%s was rebooted %d times, but its request was not approved", in.ID, n)
		}
	}
	cards := map[string]int{}
	for _, m := range s.w.stub.Messages() {
		if g := cardTitle.FindStringSubmatch(m.Text); m.ThreadTS == "" && g != nil {
			cards[g[1]]++
		}
	}
	for id, n := range cards {
		if n != 1 {
			t.Errorf("%s has %d cards in the channel, want 1", id, n)
		}
	}
	s.verifyAudit()
	logf(t, "%d requests through 3 replicas, %d at a time, every click delivered to two: filed and clicked in %s, every approved one had Succeeded and every card was up to date %s after the first command; "+
		"%d approved, %d filed but no click recorded, %d commands not taken %v, %d deliveries late or failed; %d left Pending",
		requests, atOnce, filedIn.Round(time.Millisecond), settledIn.Round(time.Millisecond),
		len(approvedIDs), len(unapprovedIDs), len(untouched)-len(unapprovedIDs), refusals, late, len(open))
}

// untakenKind names what a requester whose command got no card was told.
func untakenKind(told string) string {
	for _, k := range []string{"nothing was recorded", "may not have been recorded", "its approval card will appear", "longer than Slack's 3 s"} {
		if strings.Contains(told, k) {
			return k
		}
	}
	return "other"
}
