// Package loopback picks free ports on 127.0.0.1 for servers that must be
// told their addresses before they bind them, such as the members of an
// etcd cluster, which name each other in their initial configuration.
package loopback

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lowest is the lowest port Addrs picks: the ports below are where
// well-known services listen.
const lowest = 10000

// Addrs returns n distinct addresses on 127.0.0.1 that nothing listens on.
//
// A port released after the kernel picked it for a listener on port 0
// can come back from the kernel at once, for the next listener or as the
// source port of any outgoing connection, before the server it was meant
// for binds it. So Addrs picks ports at random below the kernel's range
// of ephemeral ports, which the kernel never hands out by itself, and
// holds all n together while it picks, so that none is picked twice.
// Another server asking for the same port by number can still take it
// first: a caller that must not fail then starts again with fresh
// addresses when InUse says so. Where the ephemeral range cannot be read
// or starts too low, the kernel picks the ports.
func Addrs(n int) ([]string, error) {
	first, ok := ephemeralStart()
	pick := func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
	if ok && first-lowest >= 1000 {
		pick = func() (net.Listener, error) {
			for range 200 {
				ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(lowest+rand.IntN(first-lowest))))
				if !InUse(err) {
					return ln, err
				}
			}
			return nil, fmt.Errorf("no free port on 127.0.0.1 between %d and %d in 200 tries", lowest, first-1)
		}
	}
	addrs := make([]string, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}()
	for range n {
		ln, err := pick()
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// ephemeralStart returns the first port of the kernel's ephemeral range.
func ephemeralStart() (int, bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, false
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 0, false
	}
	first, err := strconv.Atoi(fields[0])
	return first, err == nil
}

// InUse reports whether err is a failure to bind an address that another
// socket holds.
func InUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
