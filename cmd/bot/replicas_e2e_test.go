//go:build e2e

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/cloud/emulator"
	"rebootbot/etcdstore/etcdtest"
	"rebootbot/internal/testutil"
)

// replicaProcess is one bot binary run as a replica.
type replicaProcess struct {
	cmd  *exec.Cmd
	send *slackSender
	log  string
	done chan struct{}
}

// startReplicaProcess runs the bot binary with w's environment, logging to
// its own file, and waits until it listens.
func startReplicaProcess(t *testing.T, w *world, name string) *replicaProcess {
	t.Helper()
	p := &replicaProcess{log: filepath.Join(w.dir, name+".log"), done: make(chan struct{})}
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	p.cmd = exec.Command(w.bin, "serve")
	for k, v := range w.env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stderr = logFile
	var stdout syncWriter
	p.cmd.Stdout = &stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done })
	var base string
	testutil.Eventually(t, waitLong, func() bool {
		m := listeningLine.FindStringSubmatch(stdout.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	}, "%s to listen", name)
	p.send = &slackSender{base: base, secret: w.secret, team: "THARNESS", channel: channel, channelName: "ops", tag: name}
	return p
}

// syncWriter is a buffer that a process writes to while the test reads it.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// leads counts how often p took the lead.
func (p *replicaProcess) leads(t *testing.T) int {
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("leading: this replica now does"))
}

// TestReplicasTakeOverAfterSIGKILL runs three replicas of the binary on a
// three-member cluster. Each round files a request through one replica,
// clicks its approval on another and redelivers the click to the third;
// the leader is killed with SIGKILL right after its RebootInstances call
// has reached the cloud, before it stores the answer. Another replica must
// take over and finish, without calling the cloud for those instances
// again. The takeover time (SIGKILL to the new leader's log line) is
// reported.
func TestReplicasTakeOverAfterSIGKILL(t *testing.T) {
	const rounds = 3
	cluster := etcdtest.StartCluster(t, 3)
	var endpoints []string
	for _, m := range cluster {
		endpoints = append(endpoints, m.Endpoint)
	}
	var instances []emulator.Instance
	for i := range rounds * 2 {
		instances = append(instances, emulator.Instance{ID: fmt.Sprintf("ins-take%04d", i), Name: fmt.Sprintf("t%d", i), Zone: "ap-guangzhou-3"})
	}
	w := newWorld(t, worldConfig{Instances: instances, RebootDuration: 300 * time.Millisecond, Env: map[string]string{
		"BOT_ETCD_ENDPOINTS": strings.Join(endpoints, ","), "BOT_ETCD_LEASE_TTL": "2s", "BOT_POLL_INTERVAL": "200ms",
	}})
	replicas := make([]*replicaProcess, 3)
	for i := range replicas {
		replicas[i] = startReplicaProcess(t, w, fmt.Sprintf("replica%d", i))
	}
	t.Cleanup(func() {
		for i, p := range replicas {
			b, _ := os.ReadFile(p.log)
			for _, s := range w.secrets {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("a secret appears in replica %d's log", i)
				}
			}
			if bytes.Contains(b, []byte("\npanic: ")) || bytes.Contains(b, []byte("WARNING: DATA RACE")) {
				t.Errorf("replica %d's log has a panic or a race:\n%s", i, tail(b, 80))
			}
			if t.Failed() {
				t.Logf("replica %d's log:\n%s", i, tail(b, 40))
			}
		}
	})

	leader := func() int {
		var who int
		testutil.Eventually(t, waitLong, func() bool {
			who = -1
			for i, p := range replicas {
				select {
				case <-p.done:
					continue
				default:
				}
				if p.leads(t) > 0 && who < 0 {
					who = i
				}
			}
			return who >= 0
		}, "a leader")
		return who
	}

	var takeovers []time.Duration
	for round := range rounds {
		ids := []string{instances[2*round].ID, instances[2*round+1].ID}
		lead := leader()
		leadsBefore := make([]int, len(replicas))
		for i, p := range replicas {
			leadsBefore[i] = p.leads(t)
		}
		killed := make(chan time.Time, 1)
		var once sync.Once
		w.onEmulator(func(c emulator.Call) {
			if c.Action == "RebootInstances" && c.ErrorCode == "" {
				once.Do(func() {
					replicas[lead].cmd.Process.Kill()
					killed <- time.Now()
				})
			}
		})
		in, click, again := replicas[(lead+1)%3], replicas[(lead+2)%3], replicas[lead]
		if round%2 == 1 {
			in, click = click, in
		}
		id := fmt.Sprintf("R-%d", round+1)
		status, body, took, err := in.send.command(t.Context(), requester, strings.Join(ids, " ")+" takeover round", w.stub.ResponseURL())
		if err := answer("/slack/commands", status, body, took, err); err != nil {
			t.Fatal(err)
		}
		var ts string
		testutil.Eventually(t, waitLong, func() bool {
			for _, m := range w.stub.Messages() {
				if m.ThreadTS == "" && strings.Contains(m.Blocks, "Reboot request "+id+":") {
					ts = m.TS
					return true
				}
			}
			return false
		}, "the card of %s", id)
		form, err := click.send.clickForm(approver1, bot.ActionApprove, id, ts, click.send.trigger(), w.stub.ResponseURL())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*replicaProcess{click, again} {
			status, body, took, err := p.send.post(t.Context(), "/slack/interactions", form)
			if p == again && err != nil {
				continue // the leader may be dead already: Slack would get no answer and retry elsewhere
			}
			if err := answer("/slack/interactions", status, body, took, err); err != nil {
				t.Fatal(err)
			}
		}
		var at time.Time
		select {
		case at = <-killed:
		case <-time.After(waitLong):
			t.Fatalf("round %d: the leader never called RebootInstances", round)
		}
		<-replicas[lead].done
		testutil.Eventually(t, waitLong, func() bool {
			for i, p := range replicas {
				if i != lead && p.leads(t) > leadsBefore[i] {
					return true
				}
			}
			return false
		}, "another replica to take the lead")
		takeovers = append(takeovers, time.Since(at))
		testutil.Eventually(t, waitLong, func() bool {
			m, _ := w.stub.Card(ts)
			return strings.Contains(m.Blocks, "Succeeded")
		}, "%s to succeed after the takeover", id)
		w.onEmulator(nil)
		replicas[lead] = startReplicaProcess(t, w, fmt.Sprintf("replica%d-round%d", lead, round+1))
	}
	t.Logf("takeover after SIGKILL of the leader (lease 2 s, poll 200ms): %v", takeovers)
	for _, d := range takeovers {
		if d > 2*time.Second+200*time.Millisecond+2*time.Second {
			t.Errorf("a takeover took %s, want within the lease and a poll interval (plus slack for a loaded machine)", d)
		}
	}
	for _, in := range instances {
		if got := w.emu.RebootCalls(in.ID); got != 1 {
			t.Errorf("%s rebooted %d times, want 1", in.ID, got)
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"bot", "audit", "verify"}, func(k string) string { return w.env[k] }, &out, io.Discard); err != nil || !strings.Contains(out.String(), "audit log intact") {
		t.Errorf("bot audit verify: %v %s", err, out.String())
	}
	out.Reset()
	if err := run(t.Context(), []string{"bot", "audit", "list", "--format", "csv", "--limit", "0"}, func(k string) string { return w.env[k] }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), ",approved,"); got != rounds {
		t.Errorf("audit has %d approvals, want %d (one per request, the redelivered clicks acting once)", got, rounds)
	}
}

// TestPausedLeaderWritesNothing stops the leader with SIGSTOP right after
// its RebootInstances call reached the cloud and keeps it stopped past its
// lease: another replica takes over and finishes the request. Then the old
// leader gets SIGCONT, and with it the cloud's answer it was waiting for:
// it must not store anything, since another replica leads.
func TestPausedLeaderWritesNothing(t *testing.T) {
	cluster := etcdtest.StartCluster(t, 3)
	var endpoints []string
	for _, m := range cluster {
		endpoints = append(endpoints, m.Endpoint)
	}
	ids := []string{"ins-pause001", "ins-pause002"}
	w := newWorld(t, worldConfig{Instances: []emulator.Instance{{ID: ids[0], Name: "p1"}, {ID: ids[1], Name: "p2"}},
		RebootDuration: 300 * time.Millisecond, Env: map[string]string{
			"BOT_ETCD_ENDPOINTS": strings.Join(endpoints, ","), "BOT_ETCD_LEASE_TTL": "2s", "BOT_POLL_INTERVAL": "200ms",
		}})
	replicas := []*replicaProcess{startReplicaProcess(t, w, "replica0"), startReplicaProcess(t, w, "replica1")}
	var lead int
	testutil.Eventually(t, waitLong, func() bool {
		for i, p := range replicas {
			if p.leads(t) > 0 {
				lead = i
				return true
			}
		}
		return false
	}, "a leader")
	old, other := replicas[lead], replicas[1-lead]
	t.Cleanup(func() { old.cmd.Process.Signal(syscall.SIGCONT) })
	paused := make(chan struct{})
	var once sync.Once
	w.onEmulator(func(c emulator.Call) {
		if c.Action == "RebootInstances" && c.ErrorCode == "" {
			once.Do(func() {
				old.cmd.Process.Signal(syscall.SIGSTOP)
				close(paused)
			})
		}
	})
	status, body, took, err := other.send.command(t.Context(), requester, strings.Join(ids, " ")+" pause", w.stub.ResponseURL())
	if err := answer("/slack/commands", status, body, took, err); err != nil {
		t.Fatal(err)
	}
	var ts string
	testutil.Eventually(t, waitLong, func() bool {
		for _, m := range w.stub.Messages() {
			if m.ThreadTS == "" && strings.Contains(m.Blocks, "Reboot request R-1:") {
				ts = m.TS
				return true
			}
		}
		return false
	}, "the card of R-1")
	status, body, took, err = other.send.click(t.Context(), approver1, bot.ActionApprove, "R-1", ts, w.stub.ResponseURL())
	if err := answer("/slack/interactions", status, body, took, err); err != nil {
		t.Fatal(err)
	}
	select {
	case <-paused:
	case <-time.After(waitLong):
		t.Fatal("the leader never called RebootInstances")
	}
	testutil.Eventually(t, waitLong, func() bool { return other.leads(t) > 0 }, "the other replica to take the lead")
	testutil.Eventually(t, waitLong, func() bool {
		m, _ := w.stub.Card(ts)
		return strings.Contains(m.Blocks, "Succeeded")
	}, "R-1 to succeed under the new leader")
	w.onEmulator(nil)

	events := func() string {
		var out bytes.Buffer
		if err := run(t.Context(), []string{"bot", "audit", "list", "--format", "jsonl", "--limit", "0"}, func(k string) string { return w.env[k] }, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	before := events()
	if err := old.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitLong, func() bool {
		b, _ := os.ReadFile(old.log)
		return bytes.Contains(b, []byte("lost the lead"))
	}, "the old leader to notice it lost the lead")
	if after := events(); after != before {
		t.Errorf("the audit log changed after the paused leader resumed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for _, id := range ids {
		if got := w.emu.RebootCalls(id); got != 1 {
			t.Errorf("%s rebooted %d times, want 1", id, got)
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"bot", "audit", "verify"}, func(k string) string { return w.env[k] }, &out, io.Discard); err != nil || !strings.Contains(out.String(), "audit log intact") {
		t.Errorf("bot audit verify: %v %s", err, out.String())
	}
	b, _ := os.ReadFile(old.log)
	t.Logf("the old leader after SIGCONT:\n%s", tail(b, 8))
}

// TestReplicasManyRequests files 200 requests through three replicas of
// the binary, commands spread across them and each request needing two
// approvals, every click delivered twice, to two different replicas: each
// request is decided once (one approval recorded per approver, one
// execution), each instance rebooted once, nothing left owed, and the
// audit chain is intact.
func TestReplicasManyRequests(t *testing.T) {
	const (
		requests = 200
		inFlight = 8 // requests under way at once
	)
	var instances []emulator.Instance
	for i := range requests {
		instances = append(instances, emulator.Instance{ID: fmt.Sprintf("ins-many%04d", i), Name: fmt.Sprintf("m%d", i)})
	}
	// The default lease: the lead must not move under the load.
	s := startReplicaSet(t, instances, 200*time.Millisecond, map[string]string{"BOT_ETCD_LEASE_TTL": "10s", "BOT_POLL_INTERVAL": "200ms"})
	approvers := []string{approver1, approver2, approver3}
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	ids := make([]string, requests)
	slots := make(chan struct{}, inFlight)
	for i := range requests {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			r := s.replicas
			id, ts, err := s.file(r[i%3], []string{instances[i].ID}, "many requests")
			if err != nil {
				errs <- err
				return
			}
			ids[i] = id
			// The click reaches one replica and is delivered again to
			// another.
			if err := s.approveTwice(approvers[i%3], id, ts, r[(i+1)%3], r[(i+2)%3]); err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
				return
			}
			// The next request waits for this one's end, so that at most
			// inFlight executions run at once: one leader records every
			// execution, and a leader handed executions faster than it can
			// record them falls behind until they run past
			// BOT_REBOOT_TIMEOUT.
			if !s.w.stub.WaitFor(waitLong, func() bool {
				m, _ := s.w.stub.Card(ts)
				return slices.Contains(terminalOutcomes, cardOutcome(m))
			}) {
				errs <- fmt.Errorf("%s did not end", id)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	filed := time.Since(began)
	for _, id := range ids {
		if got := s.w.waitSettled(id); got != "Succeeded" {
			t.Errorf("%s ended %q, want Succeeded; its audit:\n%s", id, got, s.auditText(id))
		}
	}
	s.waitNothingOwed()
	logf(t, "%d requests through 3 replicas, every click delivered twice: filed and clicked in %s, all succeeded in %s",
		requests, filed.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	s.checkDecidedOnce(ids, instances)
	for _, id := range ids {
		approved := 0
		for _, e := range s.events(id) {
			if e.Type == approval.EventApproved {
				approved++
			}
		}
		if approved != 1 {
			t.Errorf("%s has %d approvals recorded, want 1", id, approved)
		}
	}
	s.verifyAudit()
	leaders := 0
	for _, p := range s.replicas {
		leaders += len(p.logLines(t, ledLine))
	}
	if leaders != 1 {
		t.Errorf("the lead was taken %d times, want once", leaders)
	}
}

// TestDemoReplicas runs bot demo --replicas 3 on the built binary.
func TestDemoReplicas(t *testing.T) {
	var out testutil.SyncBuffer
	if err := demoReplicas(t.Context(), mustBotBinary(t), 3, &out, io.Discard); err != nil {
		t.Fatalf("demo --replicas 3: %v\n%s", err, out.String())
	}
	for _, want := range []string{"leads: it runs executions", "was killed with SIGKILL", "took the lead", "Reboot request R-1: Succeeded",
		"ins-web00001 1, ins-web00002 1", "demo finished"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("transcript lacks %q:\n%s", want, out.String())
		}
	}
}
