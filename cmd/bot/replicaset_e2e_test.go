//go:build e2e

// A replica set for the multi-process tests: three replicas of the bot
// binary on a three-member embedded etcd cluster, with the emulator and
// the Slack stand-in of a world around them, and the test's own
// connection to the cluster to read what the replicas stored.

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/cloud/emulator"
	"rebootbot/etcdstore"
	"rebootbot/etcdstore/etcdtest"
	"rebootbot/internal/testutil"

	"go.etcd.io/etcd/server/v3/embed"
)

// replicaSet is three replicas of the binary sharing a three-member
// cluster. A replica that is killed is started again in its slot, on a
// log file of its own.
type replicaSet struct {
	t        *testing.T
	w        *world
	cluster  []*etcdtest.Member
	store    *etcdstore.Store // the test's own connection to the cluster
	replicas []*replicaProcess

	mu     sync.Mutex
	starts int
	all    []*replicaProcess // every process started, for the log checks
}

// Lines a replica logs when it takes and loses the lead.
const (
	ledLine   = "leading: this replica now does"
	lostLine  = "lost the lead"
	leaseTTL  = time.Second
	pollEvery = 100 * time.Millisecond
)

// startReplicaSet starts the cluster, the world with instances (their
// reboots taking rebootDuration) and three replicas with a one-second
// lease; env adds to or replaces their environment.
func startReplicaSet(t *testing.T, instances []emulator.Instance, rebootDuration time.Duration, env map[string]string) *replicaSet {
	t.Helper()
	// etcdtest's 100 ms election timeout elects at once on an idle
	// machine; with three race-built bots busy on two cores, heartbeats
	// come late, members call elections and every write waits for them.
	// Slower ticks keep one raft leader under that load, and still let a
	// one-second lease expire on time.
	cluster := etcdtest.StartCluster(t, 3, func(c *embed.Config) {
		c.TickMs = 50
		c.ElectionMs = 500
	})
	var endpoints []string
	for _, m := range cluster {
		endpoints = append(endpoints, m.Endpoint)
	}
	all := map[string]string{
		"BOT_ETCD_ENDPOINTS": strings.Join(endpoints, ","), "BOT_ETCD_LEASE_TTL": leaseTTL.String(), "BOT_POLL_INTERVAL": pollEvery.String(),
	}
	maps.Copy(all, env)
	w := newWorld(t, worldConfig{Instances: instances, RebootDuration: rebootDuration, Env: all})
	cfg, _, err := etcdstore.ConfigFromEnv(func(k string) string { return w.env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitLong)
	defer cancel()
	st, err := etcdstore.Open(ctx, cfg, etcdstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &replicaSet{t: t, w: w, cluster: cluster, store: st}
	// Registered before the replicas' own clean-ups, so it runs after they
	// were killed and their logs are complete.
	t.Cleanup(s.checkLogs)
	for range 3 {
		s.replicas = append(s.replicas, s.start())
	}
	return s
}

// start runs one more replica process and waits until it listens.
func (s *replicaSet) start() *replicaProcess {
	s.t.Helper()
	s.mu.Lock()
	s.starts++
	name := fmt.Sprintf("replica%02d", s.starts)
	s.mu.Unlock()
	p := startReplicaProcess(s.t, s.w, name)
	s.mu.Lock()
	s.all = append(s.all, p)
	s.mu.Unlock()
	return p
}

// restart replaces the dead replica in slot i with a new process.
func (s *replicaSet) restart(i int) {
	s.t.Helper()
	<-s.replicas[i].done
	s.replicas[i] = s.start()
}

// checkLogs fails the test for a secret, a panic or a race in any
// replica's log, and shows the logs' ends when the test failed.
func (s *replicaSet) checkLogs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.all {
		b, _ := os.ReadFile(p.log)
		for _, secret := range s.w.secrets {
			if bytes.Contains(b, []byte(secret)) {
				s.t.Errorf("a secret appears in %s", p.log)
			}
		}
		for _, bad := range []string{"WARNING: DATA RACE", "\npanic: ", "\nfatal error: "} {
			if i := bytes.Index(b, []byte(bad)); i >= 0 {
				s.t.Errorf("%s has %q:\n%s", p.log, strings.TrimSpace(bad), b[i:min(len(b), i+6000)])
			}
		}
		if s.t.Failed() {
			s.t.Logf("%s (last lines):\n%s", p.log, tail(b, 30))
		}
	}
}

// alive reports whether p's process is still running.
func (p *replicaProcess) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// logLines returns p's log lines that contain msg.
func (p *replicaProcess) logLines(t *testing.T, msg string) []string {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), msg) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// leading reports whether p's log says it leads now: it took the lead
// more often than it lost it.
func (p *replicaProcess) leading(t *testing.T) bool {
	return p.alive() && len(p.logLines(t, ledLine)) > len(p.logLines(t, lostLine))
}

// tookLeadAt returns when p last logged that it took the lead.
func (p *replicaProcess) tookLeadAt(t *testing.T) time.Time {
	t.Helper()
	lines := p.logLines(t, ledLine)
	if len(lines) == 0 {
		t.Fatalf("%s never took the lead", p.log)
	}
	var line struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &line); err != nil {
		t.Fatalf("%s: a log line that is not JSON: %v", p.log, err)
	}
	return line.Time
}

// leader waits until exactly one live replica leads and returns its slot.
func (s *replicaSet) leader() int {
	s.t.Helper()
	who := -1
	testutil.Eventually(s.t, waitLong, func() bool {
		who = -1
		for i, p := range s.replicas {
			if !p.leading(s.t) {
				continue
			}
			if who >= 0 {
				return false // the old leader has not noticed yet
			}
			who = i
		}
		return who >= 0
	}, "one replica to lead")
	return who
}

// file sends `/reboot ids…` to p and waits for the request's card; it
// returns the request's ID and the card's ts. It learns the ID from the
// answer to the requester, which comes once the card is in the channel,
// so that it reads the channel once: with hundreds of requests, many
// goroutines matching every message on every change would keep the test
// process, and the etcd members it hosts, from keeping up.
func (s *replicaSet) file(p *replicaProcess, ids []string, why string) (id, ts string, err error) {
	responseURL := s.w.stub.ResponseURL()
	status, body, took, err := p.send.command(s.t.Context(), requester, strings.Join(ids, " ")+" "+why, responseURL)
	if err := answer("/slack/commands", status, body, took, err); err != nil {
		return "", "", err
	}
	var answers []string
	if !s.w.stub.WaitFor(waitLong, func() bool {
		answers = replies(s, responseURL, requester)
		for _, a := range answers {
			if strings.Contains(a, "the card is in the channel") {
				id = requestIDPattern.FindString(a)
				return true
			}
		}
		return false
	}) || id == "" {
		return "", "", fmt.Errorf("no card for %s; the requester was told %q", ids[0], answers)
	}
	title := "Reboot request " + id + " ("
	for _, m := range s.w.stub.Messages() {
		if m.ThreadTS == "" && strings.HasPrefix(m.Text, title) {
			return id, m.TS, nil
		}
	}
	return "", "", fmt.Errorf("%s: the requester was told its card is in the channel, but it is not", id)
}

// approveTwice has approver click Approve on request id's card at ts and
// Slack deliver the same click to each of to in turn. A replica that is
// dead by its turn is skipped, as Slack would get no answer from it and
// deliver elsewhere; every other delivery must be answered 200 in time.
func (s *replicaSet) approveTwice(approver, id, ts string, to ...*replicaProcess) error {
	form, err := to[0].send.clickForm(approver, bot.ActionApprove, id, ts, to[0].send.trigger(), s.w.stub.ResponseURL())
	if err != nil {
		return err
	}
	for _, p := range to {
		status, body, took, err := p.send.post(s.t.Context(), "/slack/interactions", form)
		if err != nil && !p.alive() {
			continue
		}
		if err := answer("/slack/interactions", status, body, took, err); err != nil {
			return err
		}
	}
	return nil
}

// events returns the audit events of request id, oldest first, read from
// the cluster.
func (s *replicaSet) events(id string) []approval.Event {
	s.t.Helper()
	var out []approval.Event
	if err := s.store.Audit(s.t.Context(), approval.AuditQuery{RequestID: id, Oldest: true}, func(e *approval.Event) error {
		out = append(out, *e)
		return nil
	}); err != nil {
		s.t.Fatalf("audit of %s: %v", id, err)
	}
	return out
}

// auditText returns request id's audit events, one JSON line each, for a
// failure's message.
func (s *replicaSet) auditText(id string) string {
	var b strings.Builder
	for _, e := range s.events(id) {
		line, _ := json.Marshal(e)
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// hasEvent reports whether request id's audit has an event of type typ.
func (s *replicaSet) hasEvent(id string, typ approval.EventType) bool {
	for _, e := range s.events(id) {
		if e.Type == typ {
			return true
		}
	}
	return false
}

// waitNothingOwed waits until the cluster holds no request that is open
// or owes a card update or report: the replicas finished everything.
func (s *replicaSet) waitNothingOwed() {
	s.t.Helper()
	var open []*approval.Request
	if !testutil.Poll(waitLong, func() bool {
		var err error
		open, err = s.store.Open(s.t.Context())
		return err == nil && len(open) == 0
	}) {
		for _, r := range open {
			s.t.Errorf("%s (%s) is still owed work: card current %v, end announced %v", r.ID, r.State, r.CardCurrent, r.EndAnnounced)
		}
		s.t.FailNow()
	}
}

// verifyAudit runs `bot audit verify` against the cluster.
func (s *replicaSet) verifyAudit() {
	s.t.Helper()
	var out bytes.Buffer
	if err := run(s.t.Context(), []string{"bot", "audit", "verify"}, func(k string) string { return s.w.env[k] }, &out, io.Discard); err != nil || !strings.Contains(out.String(), "audit log intact") {
		s.t.Errorf("bot audit verify: %v %s", err, out.String())
	}
}

// checkDecidedOnce checks, from the audit, that each of ids was requested,
// approved by each of its approvers once, executed and completed once,
// and that each instance was called once, as the emulator counted it.
func (s *replicaSet) checkDecidedOnce(ids []string, instances []emulator.Instance) {
	s.t.Helper()
	called := map[string]int{}
	for _, id := range ids {
		counts := map[approval.EventType]int{}
		approvedBy := map[string]int{}
		for _, e := range s.events(id) {
			counts[e.Type]++
			switch e.Type {
			case approval.EventApproved:
				approvedBy[e.Actor]++
			case approval.EventRebootCalled:
				for _, in := range e.Instances {
					called[in]++
				}
			}
		}
		for _, typ := range []approval.EventType{approval.EventRequested, approval.EventExecuting, approval.EventCompleted} {
			if counts[typ] != 1 {
				s.t.Errorf("%s has %d %s events, want 1", id, counts[typ], typ)
			}
		}
		if counts[approval.EventApproved] == 0 {
			s.t.Errorf("%s has no approval: a click was lost", id)
		}
		for who, n := range approvedBy {
			if n != 1 {
				s.t.Errorf("%s was approved %d times by %s, want once", id, n, who)
			}
		}
	}
	for _, in := range instances {
		got := s.w.emu.RebootCalls(in.ID)
		if got != 1 {
			s.t.Errorf("%s rebooted %d times, want 1", in.ID, got)
		}
		if called[in.ID] != got {
			s.t.Errorf("%s: the emulator accepted %d reboot calls, the audit records %d", in.ID, got, called[in.ID])
		}
	}
}

// healthz returns the status of p's GET /healthz, or an error.
func (p *replicaProcess) healthz(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.send.base+"/healthz", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
