// Package etcdtest starts real etcd members in-process for tests: on
// 127.0.0.1, on free ports from loopback.Addrs, with their data in
// t.TempDir().
package etcdtest

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"rebootbot/internal/loopback"
)

// Member is one running etcd member.
type Member struct {
	Etcd *embed.Etcd
	// Endpoint is the member's client URL.
	Endpoint string

	cfg *embed.Config
	mu  sync.Mutex // guards Etcd and stopped across Stop and Restart
	// stopped reports whether the member is down.
	stopped bool
}

// Stop stops the member, as if its machine went away; calls while it is
// down do nothing.
func (m *Member) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	m.stopped = true
	m.Etcd.Close()
}

// Restart starts a stopped member again on its data and addresses, as a
// machine coming back does, and waits until it is ready: it rejoins the
// cluster and catches up with what was committed while it was down. A
// running member is left as it is.
func (m *Member) Restart(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.stopped {
		return
	}
	e, err := embed.StartEtcd(m.cfg)
	if err != nil {
		t.Fatalf("restart etcd member %s: %v", m.cfg.Name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		t.Fatalf("etcd member %s failed on restart: %v", m.cfg.Name, err)
	case <-time.After(30 * time.Second):
		e.Close()
		t.Fatalf("etcd member %s was not ready within 30 s of its restart", m.cfg.Name)
	}
	m.Etcd, m.stopped = e, false
}

// Start starts a single-member cluster, stopped when the test ends. Each
// of tune, if any, may change the member's configuration first.
func Start(t testing.TB, tune ...func(*embed.Config)) *Member {
	t.Helper()
	return StartCluster(t, 1, tune...)[0]
}

// StartCluster starts a cluster of n members, each stopped when the test
// ends, and waits until every member is ready. Should another process
// take one of the members' ports before the member binds it, the cluster
// starts again on fresh ports.
func StartCluster(t testing.TB, n int, tune ...func(*embed.Config)) []*Member {
	t.Helper()
	for attempt := 1; ; attempt++ {
		members, err := startCluster(t, n, tune)
		if err == nil {
			return members
		}
		if !loopback.InUse(err) || attempt == 3 {
			t.Fatal(err)
		}
	}
}

// startCluster makes one attempt at StartCluster. It fails the test
// itself on anything but a port taken before a member bound it; then it
// stops the members it started and returns the error.
func startCluster(t testing.TB, n int, tune []func(*embed.Config)) ([]*Member, error) {
	t.Helper()
	addrs, err := loopback.Addrs(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	cfgs := make([]*embed.Config, n)
	var initial []string
	for i := range cfgs {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = t.TempDir()
		// Shutting down logs errors about closed listeners; failures show
		// through the clients instead.
		cfg.LogLevel = "panic"
		// Short ticks elect a leader at once and keep lease expiry close
		// to the TTL asked for.
		cfg.TickMs = 10
		cfg.ElectionMs = 100
		cfg.UnsafeNoFsync = true
		client := mustURL(t, "http://"+addrs[2*i])
		peer := mustURL(t, "http://"+addrs[2*i+1])
		cfg.ListenClientUrls = []url.URL{client}
		cfg.AdvertiseClientUrls = []url.URL{client}
		cfg.ListenPeerUrls = []url.URL{peer}
		cfg.AdvertisePeerUrls = []url.URL{peer}
		initial = append(initial, cfg.Name+"="+peer.String())
		cfgs[i] = cfg
	}
	members := make([]*Member, 0, n)
	for _, cfg := range cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "rebootbot-test"
		for _, f := range tune {
			f(cfg)
		}
		e, err := embed.StartEtcd(cfg)
		if loopback.InUse(err) {
			for _, m := range members {
				m.Stop()
			}
			return nil, fmt.Errorf("start etcd member %s: %w", cfg.Name, err)
		}
		if err != nil {
			t.Fatalf("start etcd member %s: %v", cfg.Name, err)
		}
		m := &Member{Etcd: e, Endpoint: cfg.ListenClientUrls[0].String(), cfg: cfg}
		members = append(members, m)
		t.Cleanup(m.Stop)
	}
	deadline := time.After(30 * time.Second)
	for _, m := range members {
		select {
		case <-m.Etcd.Server.ReadyNotify():
		case err := <-m.Etcd.Err():
			t.Fatalf("etcd failed: %v", err)
		case <-deadline:
			t.Fatal("etcd did not become ready within 30 s")
		}
	}
	return members, nil
}

// Client returns a client of m, closed when the test ends. Each call makes
// a separate connection, as a separate replica would have.
func (m *Member) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.Endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      nopLogger(),
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// FreeAddr returns a loopback address with a port nobody listens on, for
// a test that needs an address where no server answers.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addrs, err := loopback.Addrs(1)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0]
}

func mustURL(t testing.TB, s string) url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return *u
}
