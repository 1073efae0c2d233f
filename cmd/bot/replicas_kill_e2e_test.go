//go:build e2e

package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
	"rebootbot/internal/testutil"
)

// replicaKillPoint is a moment of an execution at which the leader dies.
type replicaKillPoint struct {
	name string
	// arm sets the world up, before request id's approval, so that the
	// leader stops at the point. A hook of arm calls kill there itself;
	// otherwise arm returns the condition on which the test calls it.
	arm func(s *replicaSet, id string, ids []string, kill func()) (there func() bool)
}

// replicaKillPoints are the kill points of the crash tests, met by a
// leader among replicas.
var replicaKillPoints = []replicaKillPoint{
	{
		// The intent and each instance's latest operation are stored;
		// Tencent holds the call and then refuses it, so nothing was
		// rebooted. The next leader must call again.
		name: "IntentStored",
		arm: func(s *replicaSet, id string, ids []string, kill func()) func() bool {
			s.w.emu.SetFaults(emulator.Fault{Action: "RebootInstances", Code: "InternalError", Latency: time.Minute})
			return func() bool { return s.hasEvent(id, approval.EventRebootIntent) }
		},
	},
	{
		// RebootInstances was carried out, its answer is held back: the
		// next leader must find the reboot done and not call again.
		name: "CallSent",
		arm: func(s *replicaSet, id string, ids []string, kill func()) func() bool {
			s.w.emu.SetFaults(emulator.Fault{Action: "RebootInstances", Latency: time.Minute})
			return func() bool { return s.w.emu.RebootCalls(ids[0]) > 0 }
		},
	},
	{
		// The call's answer is stored; Tencent holds the leader's polls,
		// so it dies waiting for the instances to come back.
		name: "ResultStored",
		arm: func(s *replicaSet, id string, ids []string, kill func()) func() bool {
			var once sync.Once
			s.w.onEmulator(func(c emulator.Call) {
				if c.Action == "RebootInstances" && c.ErrorCode == "" {
					once.Do(func() { s.w.emu.SetFaults(emulator.Fault{Action: "DescribeInstances", Latency: time.Minute}) })
				}
			})
			return func() bool { return s.hasEvent(id, approval.EventRebootCalled) }
		},
	},
	{
		// The request is complete and Slack took the card's update, but
		// the leader dies before it has Slack's answer: the update is
		// still owed, and the next leader makes it.
		name: "CardUpdateOwed",
		arm: func(s *replicaSet, id string, ids []string, kill func()) func() bool {
			s.w.onSlack(func(c slackstub.Call) {
				if g := cardTitle.FindStringSubmatch(c.Form.Get("text")); c.Method == "chat.update" && g != nil && g[1] == id && g[2] == "Succeeded" {
					kill()
				}
			})
			return nil
		},
	},
}

// killRounds is how many times the leader is killed at each kill point:
// 10, or 2 with -short.
func killRounds() int {
	if testing.Short() {
		return 2
	}
	return 10
}

// TestReplicasKillLeaderAtEachPoint runs three replicas of the binary on
// a three-member cluster and kills the leader with SIGKILL at each kill
// point of the crash tests, ten times each, restarting the killed
// replica every time. Each round files a request through a follower and
// delivers its approval twice, once to the leader about to die. Another
// replica must finish every request: each instance rebooted exactly once,
// every click counted once, the audit chain intact, nothing owed. The
// takeover time (SIGKILL to the new leader's log line) is logged for each
// kill and summed up per kill point against the lease plus one poll;
// the machine is shared, so the times are reported, not asserted.
func TestReplicasKillLeaderAtEachPoint(t *testing.T) {
	rounds := killRounds()
	var instances []emulator.Instance
	for i := range len(replicaKillPoints) * rounds * 2 {
		instances = append(instances, emulator.Instance{ID: fmt.Sprintf("ins-kill%04d", i), Name: fmt.Sprintf("k%d", i), Zone: "ap-guangzhou-3"})
	}
	s := startReplicaSet(t, instances, 600*time.Millisecond, nil)
	began := time.Now()
	var ids []string
	takeovers := map[string][]time.Duration{}
	n := 0
	for _, kp := range replicaKillPoints {
		for round := range rounds {
			mine := []string{instances[2*n].ID, instances[2*n+1].ID}
			n++
			lead := s.leader()
			dying := s.replicas[lead]
			followers := []*replicaProcess{s.replicas[(lead+1)%3], s.replicas[(lead+2)%3]}
			id, ts, err := s.file(followers[round%2], mine, "kill "+kp.name)
			if err != nil {
				t.Fatalf("%s round %d: %v", kp.name, round+1, err)
			}
			ids = append(ids, id)

			killed := make(chan time.Time, 1)
			var once sync.Once
			kill := func() {
				once.Do(func() {
					dying.cmd.Process.Kill()
					killed <- time.Now()
				})
			}
			there := kp.arm(s, id, mine, kill)
			// The click reaches a follower and the leader, in turns
			// first; Slack's redelivery goes to the other.
			to := []*replicaProcess{followers[(round+1)%2], dying}
			if round%2 == 1 {
				slices.Reverse(to)
			}
			if err := s.approveTwice(approver1, id, ts, to...); err != nil {
				t.Fatalf("%s round %d: %v", kp.name, round+1, err)
			}
			if there != nil {
				testutil.Eventually(t, waitLong, there, "%s round %d: the leader to reach the kill point", kp.name, round+1)
				kill()
			}
			var at time.Time
			select {
			case at = <-killed:
			case <-time.After(waitLong):
				t.Fatalf("%s round %d: the leader never reached the kill point", kp.name, round+1)
			}
			<-dying.done
			s.w.onEmulator(nil)
			s.w.onSlack(nil)
			s.w.emu.SetFaults()
			if kp.name == "IntentStored" {
				for _, in := range mine {
					if got := s.w.emu.RebootCalls(in); got != 0 {
						t.Fatalf("%s round %d: %s was rebooted %d times before the kill, want 0", kp.name, round+1, in, got)
					}
				}
			}

			next := s.replicas[s.leader()]
			took := next.tookLeadAt(t).Sub(at)
			takeovers[kp.name] = append(takeovers[kp.name], took)
			t.Logf("%s round %d: %s killed the leader; %s took over in %s", kp.name, round+1, id, next.log[strings.LastIndex(next.log, "/")+1:], took.Round(time.Millisecond))
			s.restart(lead)
			if got := s.w.waitSettled(id); got != "Succeeded" {
				t.Fatalf("%s round %d: %s ended %q, want Succeeded", kp.name, round+1, id, got)
			}
			for _, in := range mine {
				if got := s.w.emu.RebootCalls(in); got != 1 {
					t.Errorf("%s round %d: %s rebooted %d times, want 1", kp.name, round+1, in, got)
				}
			}
		}
	}
	s.waitNothingOwed()
	s.checkDecidedOnce(ids, instances)
	s.verifyAudit()
	target := leaseTTL + pollEvery
	for _, kp := range replicaKillPoints {
		d := slices.Sorted(slices.Values(takeovers[kp.name]))
		logf(t, "takeover after SIGKILL of the leader at %s (%d kills, lease %s + poll %s = %s): min %s, median %s, max %s",
			kp.name, len(d), leaseTTL, pollEvery, target, d[0].Round(time.Millisecond), d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	logf(t, "%d leaders killed at %d kill points, %d requests all Succeeded, each instance rebooted once, in %s",
		len(ids), len(replicaKillPoints), len(ids), time.Since(began).Round(time.Second))
}
