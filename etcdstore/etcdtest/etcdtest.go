// Package etcdtest starts real etcd members in-process for tests: on
// 127.0.0.1, on ports the kernel picks, with their data in t.TempDir().
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
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
// ends, and waits until every member is ready.
func StartCluster(t testing.TB, n int, tune ...func(*embed.Config)) []*Member {
	t.Helper()
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
		client := mustURL(t, "http://"+FreeAddr(t))
		peer := mustURL(t, "http://"+FreeAddr(t))
		cfg.ListenClientUrls = []url.URL{client}
		cfg.AdvertiseClientUrls = []url.URL{client}
		cfg.ListenPeerUrls = []url.URL{peer}
		cfg.AdvertisePeerUrls = []url.URL{peer}
		initial = append(initial, cfg.Name+"="+peer.String())
		cfgs[i] = cfg
	}
	members := make([]*Member, n)
	for i, cfg := range cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "rebootbot-test"
		for _, f := range tune {
			f(cfg)
		}
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			t.Fatalf("start etcd member %s: %v", cfg.Name, err)
		}
		members[i] = &Member{Etcd: e, Endpoint: cfg.ListenClientUrls[0].String(), cfg: cfg}
		t.Cleanup(members[i].Stop)
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
	return members
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

// FreeAddr returns a loopback address with a port nobody listens on. The
// port is released before etcd binds it; on a loopback interface another
// process taking it in between is unlikely enough for tests.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func mustURL(t testing.TB, s string) url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return *u
}
