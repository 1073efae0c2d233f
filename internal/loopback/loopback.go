// Package loopback picks free ports on 127.0.0.1 for servers that must be
// told their addresses before they bind them, such as the members of an
// etcd cluster, which name each other in their initial configuration.
package loopback

import (
	"errors"
	"net"
	"syscall"
)

// Addrs returns n distinct addresses on 127.0.0.1 whose ports nobody
// listened on a moment ago. All n ports are held together while they are
// picked, so the kernel cannot hand out one port twice; asking for one
// port at a time and releasing each at once can return the same port
// twice. The ports are released before Addrs returns, so another process
// may still take one before its server binds it: a caller that must not
// fail then starts again with fresh addresses when InUse says so.
func Addrs(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// InUse reports whether err is a failure to bind an address that another
// socket holds.
func InUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
