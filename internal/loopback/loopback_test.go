package loopback

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrsAreDistinctAndFree(t *testing.T) {
	for range 50 {
		addrs, err := Addrs(6)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, a := range addrs {
			if seen[a] {
				t.Fatalf("Addrs(6) = %v: %s twice", addrs, a)
			}
			seen[a] = true
			if first, ok := ephemeralStart(); ok && first-lowest >= 1000 {
				if p := port(t, a); p < lowest || p >= first {
					t.Fatalf("Addrs gave %s, outside %d–%d below the ephemeral range", a, lowest, first-1)
				}
			}
		}
		// Every port was released: a server can bind each of them.
		for _, a := range addrs {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Fatalf("bind %s from Addrs: %v", a, err)
			}
			ln.Close()
		}
	}
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = net.Listen("tcp", ln.Addr().String())
	if err == nil {
		t.Fatalf("a second bind of %s succeeded", ln.Addr())
	}
	if !InUse(err) {
		t.Errorf("InUse(%v) = false, want true", err)
	}
	if InUse(net.ErrClosed) {
		t.Error("InUse(net.ErrClosed) = true, want false")
	}
}
