//go:build e2e

package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/cloud/emulator"
	"rebootbot/etcdstore/etcdtest"
	"rebootbot/internal/testutil"
)

// healthWatch probes every replica's /healthz until stopped and keeps
// what was not 200.
type healthWatch struct {
	stop   context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	probes int
	bad    []string
}

// watchHealth probes the replicas of s every 50 ms.
func watchHealth(t *testing.T, s *replicaSet) *healthWatch {
	ctx, cancel := context.WithCancel(t.Context())
	h := &healthWatch{stop: cancel, done: make(chan struct{})}
	replicas := append([]*replicaProcess(nil), s.replicas...)
	go func() {
		defer close(h.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for i, p := range replicas {
				status, err := p.healthz(ctx)
				if ctx.Err() != nil {
					return
				}
				h.mu.Lock()
				h.probes++
				if err != nil || status != http.StatusOK {
					h.bad = append(h.bad, fmt.Sprintf("replica %d at %s: %d %v", i, time.Now().Format("15:04:05.000"), status, err))
				}
				h.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

// end stops the probes and returns how many were made and the failures.
func (h *healthWatch) end() (int, []string) {
	h.stop()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.probes, h.bad
}

// etcdLeader returns the member that leads the cluster's raft.
func etcdLeader(t *testing.T, cluster []*etcdtest.Member) int {
	t.Helper()
	who := -1
	testutil.Eventually(t, waitLong, func() bool {
		for i, m := range cluster {
			if m.Etcd.Server.Leader() == m.Etcd.Server.MemberID() {
				who = i
				return true
			}
		}
		return false
	}, "the etcd cluster to have a leader")
	return who
}

// TestReplicasEtcdMemberDown stops the member leading the etcd cluster
// under three replicas of the binary, with a request pending: nobody can
// tell. Every replica's /healthz stays 200 throughout; commands and
// clicks sent to each replica are answered as usual, and every request,
// the one pending across the stop included, is executed once.
func TestReplicasEtcdMemberDown(t *testing.T) {
	var instances []emulator.Instance
	for i := range 4 {
		instances = append(instances, emulator.Instance{ID: fmt.Sprintf("ins-member%02d", i), Name: fmt.Sprintf("e%d", i), Zone: "ap-guangzhou-3"})
	}
	s := startReplicaSet(t, instances, 300*time.Millisecond, nil)
	s.leader()
	var ids, tss []string
	id, ts, err := s.file(s.replicas[0], []string{instances[0].ID}, "across the member's stop")
	if err != nil {
		t.Fatal(err)
	}
	ids, tss = append(ids, id), append(tss, ts)

	health := watchHealth(t, s)
	down := etcdLeader(t, s.cluster)
	stopped := time.Now()
	s.cluster[down].Stop()
	t.Logf("etcd member %d (the raft leader) stopped in %s", down, time.Since(stopped).Round(time.Millisecond))

	for i, p := range s.replicas {
		id, ts, err := s.file(p, []string{instances[i+1].ID}, "one member down")
		if err != nil {
			t.Fatalf("a command to replica %d with a member down: %v", i, err)
		}
		ids, tss = append(ids, id), append(tss, ts)
	}
	for i := range ids {
		if err := s.approveTwice(approver1, ids[i], tss[i], s.replicas[(i+1)%3], s.replicas[(i+2)%3]); err != nil {
			t.Fatalf("a click with a member down: %v", err)
		}
	}
	for _, id := range ids {
		if got := s.w.waitSettled(id); got != "Succeeded" {
			t.Errorf("%s ended %q, want Succeeded", id, got)
		}
	}
	s.waitNothingOwed()
	probes, bad := health.end()
	if len(bad) > 0 {
		t.Errorf("/healthz was not 200 %d times of %d with one member down:\n%s", len(bad), probes, strings.Join(bad, "\n"))
	}
	logf(t, "one etcd member (the raft leader) down under 3 replicas: %d /healthz probes all 200, %d requests executed once each", probes, len(ids))
	s.checkDecidedOnce(ids, instances)
	s.verifyAudit()
}

// TestReplicasQuorumLostAndBack stops two of the three members under three
// replicas of the binary while one request is rebooting and another waits
// for its approval. Without quorum every replica's /healthz is 503, and a
// click and a command are each answered within Slack's 3 s with a message
// that nothing was recorded; nothing acts. When the members come back,
// /healthz recovers, the request that was rebooting is finished, the
// waiting one can be approved again, and nothing is rebooted twice.
func TestReplicasQuorumLostAndBack(t *testing.T) {
	rebooting, waiting, later := "ins-quorum01", "ins-quorum02", "ins-quorum03"
	instances := []emulator.Instance{{ID: rebooting, Name: "q1"}, {ID: waiting, Name: "q2"}, {ID: later, Name: "q3"}}
	s := startReplicaSet(t, instances, 3*time.Second, nil)
	s.leader()
	r1, ts1, err := s.file(s.replicas[0], []string{rebooting}, "approved before the loss")
	if err != nil {
		t.Fatal(err)
	}
	r2, ts2, err := s.file(s.replicas[1], []string{waiting}, "approved during the loss")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.approveTwice(approver1, r1, ts1, s.replicas[1], s.replicas[2]); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitLong, func() bool { return s.w.emu.RebootCalls(rebooting) == 1 }, "%s to be rebooting", r1)

	var wg sync.WaitGroup
	lost := time.Now()
	for _, m := range s.cluster[1:] {
		wg.Go(m.Stop)
	}
	wg.Wait()
	t.Logf("two of three etcd members stopped in %s", time.Since(lost).Round(time.Millisecond))
	for i, p := range s.replicas {
		testutil.Eventually(t, 10*time.Second, func() bool {
			status, err := p.healthz(t.Context())
			return err == nil && status == http.StatusServiceUnavailable
		}, "replica %d's /healthz to fail without quorum", i)
	}

	// A click and a command, each answered in time, recording nothing.
	clickURL := s.w.stub.ResponseURL()
	status, body, took, err := s.replicas[2].send.click(t.Context(), approver2, bot.ActionApprove, r2, ts2, clickURL)
	if err := answer("/slack/interactions", status, body, took, err); err != nil {
		t.Fatalf("a click without quorum: %v", err)
	}
	clicked := time.Now().Add(-took)
	commandURL := s.w.stub.ResponseURL()
	status, body, took, err = s.replicas[0].send.command(t.Context(), requester, later+" without quorum", commandURL)
	if err := answer("/slack/commands", status, body, took, err); err != nil {
		t.Fatalf("a command without quorum: %v", err)
	}
	commanded := time.Now().Add(-took)
	for _, d := range []struct {
		what, url, user string
		sent            time.Time
		body            string
	}{{"click", clickURL, approver2, clicked, ""}, {"command", commandURL, requester, commanded, body}} {
		var got string
		var at time.Time
		if !s.w.stub.WaitFor(waitLong, func() bool {
			for _, text := range append([]string{messageText([]byte(d.body))}, replies(s, d.url, d.user)...) {
				if strings.Contains(text, "nothing was recorded") {
					got, at = text, time.Now()
					return true
				}
			}
			return false
		}) {
			t.Fatalf("the %s without quorum was never told that nothing was recorded; it was told %q", d.what, replies(s, d.url, d.user))
		}
		if d.body != "" && strings.Contains(messageText([]byte(d.body)), "nothing was recorded") {
			at = d.sent
		}
		if waited := at.Sub(d.sent); waited > 3*time.Second {
			t.Errorf("the %s without quorum was told that nothing was recorded after %s, want within 3 s: %q", d.what, waited.Round(time.Millisecond), got)
		}
		logf(t, "a %s without quorum: answered 200, told %q after %s", d.what, got, at.Sub(d.sent).Round(time.Millisecond))
	}
	for _, in := range []string{waiting, later} {
		if got := s.w.emu.RebootCalls(in); got != 0 {
			t.Errorf("%s rebooted %d times without quorum, want 0", in, got)
		}
	}

	// Quorum is back.
	back := time.Now()
	for _, m := range s.cluster[1:] {
		m.Restart(t)
	}
	for i, p := range s.replicas {
		testutil.Eventually(t, waitLong, func() bool {
			status, err := p.healthz(t.Context())
			return err == nil && status == http.StatusOK
		}, "replica %d's /healthz to recover with quorum", i)
	}
	logf(t, "quorum back: every replica's /healthz 200 again %s after the members restarted", time.Since(back).Round(time.Millisecond))
	if got := s.w.waitSettled(r1); got != "Succeeded" {
		t.Errorf("%s, approved before the loss, ended %q, want Succeeded", r1, got)
	}
	if s.hasEvent(r2, approval.EventApproved) {
		t.Errorf("%s has an approval recorded from the click without quorum", r2)
	}
	if err := s.approveTwice(approver2, r2, ts2, s.replicas[2], s.replicas[0]); err != nil {
		t.Fatal(err)
	}
	if got := s.w.waitSettled(r2); got != "Succeeded" {
		t.Errorf("%s ended %q, want Succeeded", r2, got)
	}
	r3, _, err := s.file(s.replicas[1], []string{later}, "again after the loss")
	if err != nil {
		t.Fatal(err)
	}
	if r3 != "R-3" {
		t.Errorf("the command filed again after the loss is %s, want R-3: the one without quorum must have recorded nothing", r3)
	}
	if got := s.w.emu.RebootCalls(later); got != 0 {
		t.Errorf("%s rebooted %d times without being approved", later, got)
	}
	for _, in := range []string{rebooting, waiting} {
		if got := s.w.emu.RebootCalls(in); got != 1 {
			t.Errorf("%s rebooted %d times, want 1", in, got)
		}
	}
	s.verifyAudit()
}

// replies returns the texts the bot sent to responseURL or ephemerally to
// user.
func replies(s *replicaSet, responseURL, user string) []string {
	var out []string
	for _, c := range s.w.stub.ResponsesTo(responseURL, user) {
		out = append(out, responseText(c))
	}
	return out
}
