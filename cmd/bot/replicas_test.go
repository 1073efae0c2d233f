//go:build e2e

// The replicas share an embedded three-member etcd cluster, whose start
// and the two replicas' elections take several seconds: these run with
// the multi-process tests (go test -tags e2e ./cmd/bot).

package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
	"rebootbot/etcdstore/etcdtest"
	"rebootbot/internal/testutil"
)

// replicaWorld is a CVM emulator, a Slack stand-in and an etcd cluster
// that replicas of the bot share.
type replicaWorld struct {
	emu     *emulator.Emulator
	stub    *slackstub.Server
	cluster []*etcdtest.Member
	env     map[string]string
}

func mustReplicaWorld(t *testing.T, members int) *replicaWorld {
	t.Helper()
	emu, endpoint := emulatortest.Start(t, emulator.Config{SecretID: "AKIDtest", SecretKey: "test-key", RebootDuration: 50 * time.Millisecond},
		emulator.Instance{ID: "ins-aaaaaaa1", Name: "a1", Zone: "ap-guangzhou-3"},
		emulator.Instance{ID: "ins-aaaaaaa2", Name: "a2", Zone: "ap-guangzhou-3"},
		emulator.Instance{ID: "ins-bbbbbbb1", Name: "b1", Zone: "ap-guangzhou-3"},
	)
	stub := slackstub.New()
	stub.Token = "xoxb-test"
	url, stop, err := serveLocal(stub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	stub.URL = url
	cluster := etcdtest.StartCluster(t, members)
	var endpoints []string
	for _, m := range cluster {
		endpoints = append(endpoints, m.Endpoint)
	}
	return &replicaWorld{emu: emu, stub: stub, cluster: cluster, env: map[string]string{
		"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "signing-secret-value", "SLACK_API_URL": url + "/api/",
		"BOT_APPROVERS": demoApprover, "BOT_LISTEN_ADDR": "127.0.0.1:0", "BOT_POLL_INTERVAL": "200ms",
		"BOT_ETCD_ENDPOINTS": strings.Join(endpoints, ","), "BOT_ETCD_LEASE_TTL": "1s",
		"TENCENTCLOUD_SECRET_ID": "AKIDtest", "TENCENTCLOUD_SECRET_KEY": "test-key", "TENCENTCLOUD_ENDPOINT": endpoint,
	}}
}

// replica starts one replica and returns a driver that sends it Slack's
// deliveries, and its stop.
func (w *replicaWorld) replica(t *testing.T) (*driver, func() error, *testutil.SyncBuffer) {
	t.Helper()
	base, stop, stderr := mustRun(t, []string{"bot", "serve"}, w.env)
	return &driver{stub: w.stub, send: &slackSender{base: base, secret: w.env["SLACK_SIGNING_SECRET"],
		team: "TDEMO", channel: demoChannel, channelName: "ops", tag: "replica"}}, stop, stderr
}

// card waits for request id's card and returns its ts.
func (w *replicaWorld) card(t *testing.T, id string) string {
	t.Helper()
	var ts string
	testutil.Eventually(t, 10*time.Second, func() bool {
		for _, m := range w.stub.Messages() {
			if m.ThreadTS == "" && strings.Contains(m.Blocks, "Reboot request "+id+":") {
				ts = m.TS
				return true
			}
		}
		return false
	}, "the card of %s", id)
	return ts
}

// health returns the status of GET /healthz.
func health(t *testing.T, d *driver) int {
	t.Helper()
	resp, err := http.Get(d.send.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func quiet(string, ...any) {}

// TestReplicasShareOneCluster runs two replicas on a 3-member cluster: a
// command taken by one, its approval clicked on the other and redelivered
// to the first, is decided once and reboots each instance once, whichever
// replica leads; both are healthy, and bot audit reads the cluster with
// the same variables.
func TestReplicasShareOneCluster(t *testing.T) {
	w := mustReplicaWorld(t, 3)
	a, stopA, logA := w.replica(t)
	b, stopB, logB := w.replica(t)
	ctx := t.Context()
	for _, d := range []*driver{a, b} {
		if got := health(t, d); got != http.StatusOK {
			t.Errorf("%s/healthz = %d, want 200", d.send.base, got)
		}
	}

	if _, err := a.command(ctx, quiet, demoRequester, "ins-aaaaaaa1 ins-aaaaaaa2 kernel patch"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var calls []string
			for _, c := range w.stub.Calls() {
				calls = append(calls, c.Method+" "+c.Error)
			}
			t.Logf("A:\n%s\nB:\n%s\nslack: %q", logA, logB, calls)
			for _, m := range w.stub.Messages() {
				t.Logf("message %s (thread %s): %.300s", m.TS, m.ThreadTS, m.Text)
			}
			var out bytes.Buffer
			run(context.Background(), []string{"bot", "audit", "list", "--format", "csv", "--oldest"}, func(k string) string { return w.env[k] }, &out, &out)
			t.Logf("audit log:\n%s", out.String())
		}
	})
	ts := w.card(t, "R-1")
	click, err := b.send.clickForm(demoApprover, bot.ActionApprove, "R-1", ts, b.send.trigger(), w.stub.ResponseURL())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*driver{b, a} { // the click, then Slack's redelivery to the other replica
		status, body, took, err := d.send.post(ctx, "/slack/interactions", click)
		if err := answer("/slack/interactions", status, body, took, err); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 15*time.Second, func() bool {
		m, _ := w.stub.Card(ts)
		return strings.Contains(m.Blocks, "Succeeded")
	}, "R-1's card to show it succeeded")
	for _, id := range []string{"ins-aaaaaaa1", "ins-aaaaaaa2"} {
		if got := w.emu.RebootCalls(id); got != 1 {
			t.Errorf("%s rebooted %d times, want 1", id, got)
		}
	}
	leaders := strings.Count(logA.String()+logB.String(), "leading: this replica now does")
	if leaders != 1 {
		t.Errorf("%d replicas took the lead, want 1", leaders)
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"bot", "audit", "verify"}, func(k string) string { return w.env[k] }, &out, &out); err != nil || !strings.Contains(out.String(), "audit log intact") {
		t.Errorf("bot audit verify on the cluster: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(ctx, []string{"bot", "audit", "list", "--request", "R-1", "--format", "csv"}, func(k string) string { return w.env[k] }, &out, &out); err != nil {
		t.Errorf("bot audit list on the cluster: %v", err)
	}
	if got := strings.Count(out.String(), ",approved,"); got != 1 {
		t.Errorf("audit shows %d approvals of R-1, want 1:\n%s", got, out.String())
	}

	stopA()
	stopB()
	for _, secret := range []string{"signing-secret-value", "test-key"} {
		if strings.Contains(logA.String()+logB.String(), secret) {
			t.Error("a secret appears in a replica's log")
		}
	}
}
