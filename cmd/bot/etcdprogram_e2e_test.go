//go:build e2e

package main

import (
	"context"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	etcdProgramOnce sync.Once
	etcdProgramPath string
	etcdProgramErr  error
)

// mustBuiltEtcdProgram has a bot with no bot-etcd beside it build one from
// its source checkout, once per test binary, into the harness's build
// directory (removed when the tests end).
func mustBuiltEtcdProgram(t *testing.T) string {
	t.Helper()
	mustBotBinary(t) // makes the build directory
	etcdProgramOnce.Do(func() {
		etcdProgramPath, etcdProgramErr = findEtcdProgram(t.Context(), filepath.Join(t.TempDir(), "bot"), sourceModuleDir(), filepath.Join(buildDir, "ondemand"))
	})
	if etcdProgramErr != nil {
		t.Fatal(etcdProgramErr)
	}
	return etcdProgramPath
}

// TestEtcdProgramBuiltOnDemand runs a cluster on a bot-etcd built on
// demand, and stops it.
func TestEtcdProgramBuiltOnDemand(t *testing.T) {
	prog := mustBuiltEtcdProgram(t)
	if want := filepath.Join(buildDir, "ondemand", etcdProgramName); prog != want {
		t.Errorf("built at %s, want %s", prog, want)
	}

	endpoints, stop, err := startEtcdProgram(prog, t.TempDir(), 3, true)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if len(endpoints) != 3 {
		t.Fatalf("endpoints %v, want 3", endpoints)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	if got, err := cli.Get(ctx, "k"); err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" {
		t.Fatalf("get: %v, %v", got, err)
	}

	stop()
	for _, e := range endpoints {
		u, _ := url.Parse(e)
		if c, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still answers after stop", e)
		}
	}
}

// TestEtcdProgramRefusesBadArguments checks that a cluster bot-etcd cannot
// start comes back as an error carrying the program's own words.
func TestEtcdProgramRefusesBadArguments(t *testing.T) {
	_, _, err := startEtcdProgram(mustBuiltEtcdProgram(t), t.TempDir(), 6, false)
	wantError(t, err, "bot-etcd did not start the cluster", "--members 6: say 1 to 5")
}
