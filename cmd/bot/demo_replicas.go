package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
)

// demoReplicasLease is the replicas' lease in the demo: short, so that the
// takeover shows within seconds.
const demoReplicasLease = 2 * time.Second

// demoReplicas runs n replicas of the bot binary bin on an embedded
// n-member etcd cluster, sends the command and the clicks to different
// replicas, kills the leader with SIGKILL in the middle of the execution,
// and shows another replica taking over and each instance rebooted once.
func demoReplicas(ctx context.Context, bin string, n int, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "rebootbot-demo-replicas-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	say("rebootbot demo: %d replicas of the bot on a %d-member etcd cluster, a CVM emulator and a Slack stand-in on 127.0.0.1.\n", n, n)

	// The demo's time starts once etcd runs: the first run may build the
	// program that runs it.
	endpoints, stopEtcd, err := startDemoEtcd(dir, n, true)
	if err != nil {
		return err
	}
	defer stopEtcd()
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	say("etcd members: %s", strings.Join(endpoints, " "))

	secretID, secretKey := "AKIDrebootbotDEMO0000000000000000000", randomHex(16)
	var hook sync.Mutex
	var onReboot func()
	emu := emulator.New(emulator.Config{SecretID: secretID, SecretKey: secretKey, RebootDuration: 1500 * time.Millisecond,
		OnCall: func(c emulator.Call) {
			hook.Lock()
			fn := onReboot
			hook.Unlock()
			if c.Action == "RebootInstances" && c.ErrorCode == "" && fn != nil {
				fn()
			}
		}})
	ids := []string{"ins-web00001", "ins-web00002"}
	if err := emu.Add(emulator.Instance{ID: ids[0], Name: "web-1", Zone: "ap-guangzhou-3"}, emulator.Instance{ID: ids[1], Name: "web-2", Zone: "ap-guangzhou-4"}); err != nil {
		return err
	}
	emuURL, stopEmu, err := serveLocal(emu)
	if err != nil {
		return err
	}
	defer stopEmu()
	stub := slackstub.New()
	stubURL, stopStub, err := serveStub(stub)
	if err != nil {
		return err
	}
	defer stopStub()

	secret := randomHex(16)
	env := []string{
		"SLACK_BOT_TOKEN=xoxb-rebootbot-demo", "SLACK_SIGNING_SECRET=" + secret, "SLACK_API_URL=" + stubURL + "/api/",
		"BOT_LISTEN_ADDR=127.0.0.1:0", "BOT_APPROVERS=" + demoApprover, "BOT_POLL_INTERVAL=250ms",
		"BOT_ETCD_ENDPOINTS=" + strings.Join(endpoints, ","), "BOT_ETCD_LEASE_TTL=" + demoReplicasLease.String(),
		"TENCENTCLOUD_SECRET_ID=" + secretID, "TENCENTCLOUD_SECRET_KEY=" + secretKey, "TENCENTCLOUD_ENDPOINT=" + emuURL,
		"HOME=" + dir,
	}
	replicas := make([]*demoReplica, n)
	for i := range replicas {
		if replicas[i], err = startDemoReplica(ctx, bin, env, secret, dir, i); err != nil {
			return err
		}
		defer replicas[i].kill()
		say("replica %d listening on %s", i+1, replicas[i].send.base)
	}
	lead := -1
	if !stub.WaitFor(10*time.Second, func() bool { lead = leaderOf(replicas); return lead >= 0 }) {
		return errors.New("no replica took the lead")
	}
	say("replica %d leads: it runs executions, expiry and card updates; every replica answers Slack\n", lead+1)

	in, clickOn, again := replicas[(lead+1)%n], replicas[(lead+2)%n], replicas[lead]
	d := &driver{stub: stub, send: in.send}
	say("── <@%s> in #ops, through replica %d: /reboot %s kernel patch", demoRequester, in.n+1, strings.Join(ids, " "))
	if _, err := d.command(ctx, say, demoRequester, strings.Join(ids, " ")+" kernel patch"); err != nil {
		return err
	}
	card, err := awaitCard(stub)
	if err != nil {
		return err
	}
	killed := make(chan time.Time, 1)
	var once sync.Once
	hook.Lock()
	onReboot = func() {
		once.Do(func() {
			replicas[lead].kill()
			killed <- time.Now()
		})
	}
	hook.Unlock()
	form, err := clickOn.send.clickForm(demoApprover, bot.ActionApprove, "R-1", card.TS, clickOn.send.trigger(), stub.ResponseURL())
	if err != nil {
		return err
	}
	say("── <@%s> clicks Approve; Slack delivers it to replica %d, then again to replica %d", demoApprover, clickOn.n+1, again.n+1)
	for _, r := range []*demoReplica{clickOn, again} {
		status, body, took, err := r.send.post(ctx, "/slack/interactions", form)
		if err == nil {
			err = answer("/slack/interactions", status, body, took, err)
		}
		if err != nil && r != again {
			return err
		}
	}
	var at time.Time
	select {
	case at = <-killed:
	case <-ctx.Done():
		return errors.New("the leader never called RebootInstances")
	}
	say("── replica %d (the leader) called RebootInstances and was killed with SIGKILL before storing the answer", lead+1)
	next := -1
	if !stub.WaitFor(15*time.Second, func() bool { next = leaderOf(replicas); return next >= 0 && next != lead }) {
		return errors.New("no replica took over")
	}
	say("── replica %d took the lead %s after the kill (lease %s) and resumed R-1 as a restart does", next+1, time.Since(at).Round(100*time.Millisecond), demoReplicasLease)
	if !stub.WaitFor(20*time.Second, func() bool {
		m, _ := stub.Card(card.TS)
		return strings.Contains(m.Text, "Succeeded")
	}) {
		return errors.New("R-1 did not finish after the takeover")
	}
	final, _ := stub.Card(card.TS)
	say("\n   the card now reads:")
	say("%s\n", indent(cardText(final), "   │ "))
	say("reboot calls the emulator received: %s %d, %s %d (the intent stored before the call, with each instance's", ids[0], emu.RebootCalls(ids[0]), ids[1], emu.RebootCalls(ids[1]))
	say("LatestOperationRequestId, told the new leader that the reboot had been sent)")
	for _, id := range ids {
		if got := emu.RebootCalls(id); got != 1 {
			return fmt.Errorf("%s was rebooted %d times, want once", id, got)
		}
	}
	say("demo finished: one decision, one reboot per instance, across a leader's death.")
	return nil
}

// demoReplica is one replica process of the demo.
type demoReplica struct {
	n    int
	cmd  *exec.Cmd
	send *slackSender
	log  *syncBuffer
	once sync.Once
	done chan struct{}
}

// kill ends the replica with SIGKILL and waits for it.
func (r *demoReplica) kill() {
	r.once.Do(func() { r.cmd.Process.Kill() })
	<-r.done
}

var demoListening = regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)

func startDemoReplica(ctx context.Context, bin string, env []string, secret, dir string, n int) (*demoReplica, error) {
	r := &demoReplica{n: n, log: &syncBuffer{}, done: make(chan struct{})}
	out := &syncBuffer{}
	r.cmd = exec.Command(bin, "serve")
	r.cmd.Env = env
	r.cmd.Stdout, r.cmd.Stderr = out, r.log
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start replica %d: %w", n+1, err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := demoListening.FindStringSubmatch(out.String()); m != nil {
			r.send = &slackSender{base: m[1], secret: secret, team: "TDEMO", channel: demoChannel, channelName: "ops", tag: fmt.Sprintf("r%d", n)}
			return r, nil
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("replica %d exited: %s", n+1, r.log.String())
		case <-ctx.Done():
			r.kill()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.kill()
			return nil, fmt.Errorf("replica %d did not listen within 10 s", n+1)
		}
	}
}

// leaderOf returns the live replica whose log says it took the lead last,
// or -1.
func leaderOf(replicas []*demoReplica) int {
	who, latest := -1, ""
	for i, r := range replicas {
		select {
		case <-r.done:
			continue
		default:
		}
		for line := range strings.Lines(r.log.String()) {
			if strings.Contains(line, "leading: this replica now does") && line > latest {
				who, latest = i, line
			}
		}
	}
	return who
}

// syncBuffer collects a process's output while the demo reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveStub serves the Slack stand-in on a free loopback port, telling it
// its own URL before it can answer anyone: the replicas that call it are
// other processes, so nothing else orders that write before its reads.
func serveStub(stub *slackstub.Server) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	stub.URL = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: stub, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return stub.URL, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
