package testpeer

import (
	"net"
	"strings"
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

// ZoneDNS is a fake DNS server on a free loopback port (UDP and TCP)
// answering from zone lines in dns.NewRR's format: the records of the name
// and type asked, with the name's CNAME records; NXDOMAIN for a name it has
// no record of, NODATA for one with records of other types only. Names
// ending in "servfail." answer SERVFAIL, in "silent." nothing. It returns
// the server's HOST:PORT.
func ZoneDNS(t testing.TB, lines ...string) string {
	t.Helper()
	var rrs []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	h := func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := strings.ToLower(q.Question[0].Name)
		switch {
		case strings.HasSuffix(name, "silent."):
			return
		case strings.HasSuffix(name, "servfail."):
			m.Rcode = dns.RcodeServerFailure
			_ = w.WriteMsg(m)
			return
		}
		known := false
		for _, rr := range rrs {
			if strings.EqualFold(rr.Header().Name, name) {
				known = true
				if rr.Header().Rrtype == q.Question[0].Qtype || rr.Header().Rrtype == dns.TypeCNAME {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
		if !known {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	}
	pc, l := ListenUDPTCP(t)
	ServeDNS(t, &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(h)})
	ServeDNS(t, &dns.Server{Listener: l, Handler: dns.HandlerFunc(h)})
	return pc.LocalAddr().String()
}
