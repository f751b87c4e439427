package dnsbl

import (
	"net"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDialTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := dialTCP(l.Addr().(*net.TCPAddr).AddrPort(), time.Now().Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	if n, err := c.Read(b); err != nil || string(b[:n]) != "hello" {
		t.Errorf("read %q, %v", b[:n], err)
	}

	// Nothing listening: refused at once, saying where.
	dead := netip.MustParseAddrPort(deadServer(t))
	start := time.Now()
	_, err = dialTCP(dead, start.Add(2*time.Second))
	if !isRefused(err) || err.Error() != "connect tcp "+dead.String()+": connection refused" {
		t.Errorf("dead server: %v", err)
	}
}

// A connect that the server does not complete ends at the deadline.
func TestDialTCPTimeout(t *testing.T) {
	// A listener whose accept queue is full drops SYNs.
	fd, err := socket(syscall.AF_INET, syscall.SOCK_STREAM)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*syscall.SockaddrInet4).Port))
	for range 8 {
		start := time.Now()
		c, err := dialTCP(server, start.Add(200*time.Millisecond))
		if err == nil {
			defer c.Close()
			continue
		}
		if !isTimeout(err) {
			t.Fatalf("full queue: %v", err)
		}
		// Not before the deadline; the upper bound only tells the deadline
		// from the kernel's own SYN timeout (about two minutes).
		if d := time.Since(start); d < 150*time.Millisecond || d > 30*time.Second {
			t.Errorf("full queue: timeout after %v", d)
		}
		return
	}
	t.Skip("the queue never filled: no connect to time out")
}

func TestZoneIndex(t *testing.T) {
	fd, err := socket(syscall.AF_INET, syscall.SOCK_DGRAM)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	for zone, want := range map[string]uint32{"": 0, "7": 7, "4294967295": 1<<32 - 1, "no-such-if0": 0,
		strings.Repeat("x", 64): 0} {
		if got := zoneIndex(fd, zone); got != want {
			t.Errorf("zone %q: index %d, want %d", zone, got, want)
		}
	}
	if runtime.GOOS != "linux" {
		return // named zones only on Linux
	}
	ifs, err := net.Interfaces()
	if err != nil || len(ifs) == 0 {
		t.Fatalf("no interfaces to compare with: %v", err)
	}
	for _, ifi := range ifs {
		if got := zoneIndex(fd, ifi.Name); got != uint32(ifi.Index) {
			t.Errorf("zone %q: index %d, want %d (net)", ifi.Name, got, ifi.Index)
		}
	}
}
