package testpeer

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// The fake DNS servers of unit tests (the end-to-end suites use rbldnsd).

// ServeDNS starts srv (a miekg/dns server on its PacketConn or Listener),
// returns once it serves, and shuts it down when the test ends.
func ServeDNS(t testing.TB, srv *dns.Server) {
	t.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
}

// ListenUDPTCP binds UDP and TCP on the same free loopback port, as a DNS
// server that answers truncated replies over TCP needs (another process
// may hold the TCP side of a free UDP port: it tries again).
func ListenUDPTCP(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
		if i == 50 {
			t.Fatalf("no loopback port free for both UDP and TCP: %v", err)
		}
	}
}
