// Command bot-etcd runs a small etcd cluster on 127.0.0.1 for `bot demo
// --replicas N` and `bot bench --etcd N`. It lives apart from the bot so
// that the bot binary carries no etcd server: the server's packages cost
// a running bot several MiB of memory it never uses.
//
// It starts --members members with their data under --dir, prints their
// client URLs on one line ("endpoints URL,URL,…"), and runs until its
// standard input ends (the bot that started it closed it or died) or it
// gets SIGINT or SIGTERM; then it closes the members and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"rebootbot/internal/loopback"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bot-etcd:", err)
		os.Exit(1)
	}
}

// run starts the cluster that args describe, writes its endpoints to
// stdout and keeps it until stdin ends or ctx is done.
func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("bot-etcd", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for the members' data (required)")
	members := fs.Int("members", 1, "members of the cluster, 1 to 5")
	fast := fs.Bool("fast", false, "short election ticks, so that leases expire close to their TTL")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *dir == "":
		return errors.New("--dir is required")
	case *members < 1 || *members > 5:
		return fmt.Errorf("--members %d: say 1 to 5", *members)
	}
	endpoints, closeCluster, err := start(*dir, *members, *fast)
	if err != nil {
		return err
	}
	defer closeCluster()
	if _, err := fmt.Fprintf(stdout, "endpoints %s\n", strings.Join(endpoints, ",")); err != nil {
		return err
	}
	ended := make(chan struct{})
	go func() {
		io.Copy(io.Discard, stdin)
		close(ended)
	}()
	select {
	case <-ctx.Done():
	case <-ended:
	}
	return nil
}

// start starts an n-member etcd cluster on loopback with its data under
// dir and returns its client URLs. fast shortens the election ticks;
// otherwise etcd's defaults hold, fsync included (for measuring). Should
// another process take one of the members' ports before the member binds
// it, the cluster starts again on fresh ports, with its data removed.
func start(dir string, n int, fast bool) ([]string, func(), error) {
	for attempt := 1; ; attempt++ {
		endpoints, stop, err := startOnce(dir, n, fast)
		if !loopback.InUse(err) || attempt == 3 {
			return endpoints, stop, err
		}
		for i := range n {
			if err := os.RemoveAll(filepath.Join(dir, memberName(i))); err != nil {
				return nil, nil, err
			}
		}
	}
}

func memberName(i int) string { return fmt.Sprintf("m%d", i) }

// startOnce makes one attempt at start.
func startOnce(dir string, n int, fast bool) ([]string, func(), error) {
	hosts, err := loopback.Addrs(2 * n)
	if err != nil {
		return nil, nil, err
	}
	var cfgs []*embed.Config
	var initial, endpoints []string
	for i := range n {
		cfg := embed.NewConfig()
		cfg.Name = memberName(i)
		cfg.Dir = filepath.Join(dir, cfg.Name)
		cfg.LogLevel = "panic"
		if fast {
			cfg.TickMs, cfg.ElectionMs = 20, 200
		}
		addrs := []url.URL{{Scheme: "http", Host: hosts[2*i]}, {Scheme: "http", Host: hosts[2*i+1]}}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = addrs[:1], addrs[:1]
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = addrs[1:], addrs[1:]
		initial = append(initial, cfg.Name+"="+addrs[1].String())
		endpoints = append(endpoints, addrs[0].String())
		cfgs = append(cfgs, cfg)
	}
	var members []*embed.Etcd
	stop := func() {
		for _, m := range members {
			m.Close()
		}
	}
	for _, cfg := range cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "rebootbot-demo"
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			stop()
			return nil, nil, fmt.Errorf("start etcd member %s: %w", cfg.Name, err)
		}
		members = append(members, e)
	}
	for _, m := range members {
		select {
		case <-m.Server.ReadyNotify():
		case err := <-m.Err():
			stop()
			return nil, nil, fmt.Errorf("etcd: %w", err)
		case <-time.After(15 * time.Second):
			stop()
			return nil, nil, errors.New("etcd did not become ready within 15 s")
		}
	}
	return endpoints, stop, nil
}
