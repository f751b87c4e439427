package dnsbl_test

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// truncatingServer is a list server that no real one can be made into: it
// lists 127.0.0.10 in tc.test and answers with TC set over UDP and over TCP
// too, the listing in the TCP answer. It counts the queries over TCP.
func truncatingServer(t *testing.T) (addr string, tcp *atomic.Int64) {
	t.Helper()
	tcp = new(atomic.Int64)
	handler := func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Truncated = true
		if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
			tcp.Add(1)
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA,
				Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 2)}}
		}
		_ = w.WriteMsg(m)
	}
	pc, l := testpeer.ListenUDPTCP(t)
	testpeer.ServeDNS(t, &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(handler)})
	testpeer.ServeDNS(t, &dns.Server{Listener: l, Handler: dns.HandlerFunc(handler)})
	return pc.LocalAddr().String(), tcp
}

// Issue 13: an answer truncated over UDP and over TCP is a failed lookup
// of its zone, not "not listed": the client passes (unsure means accept)
// and the failure is logged with its cause; with --dns-fail tempfail the
// client is deferred with 451.
func TestChainTruncatedOverTCPIsAFailure(t *testing.T) {
	e := setup(t)
	srv, tcp := truncatingServer(t)
	e.dns = "--dns-server=" + srv
	addr, ts := e.chain(t, "127.0.0.1", "--dnsbl", "tc.test")
	env := envAt(t, addr, "127.0.0.10")
	if env["MXFRONT_VERDICT"] != "pass" || env["MXFRONT_DNSBL"] != "" {
		t.Errorf("unreadable answer: %v", env)
	}
	testpeer.WaitOutput(t, ts, `msg="DNS list failed" ip=127.0.0.10 zone=tc.test query=10.0.0.127.tc.test cause="unreadable answer"`)
	if log := ts.Output(); !strings.Contains(log, "answer truncated (TC) over TCP too") {
		t.Errorf("the failure does not say why:\n%s", log)
	}
	if tcp.Load() == 0 {
		t.Error("mxfront never asked over TCP")
	}

	addr2, _ := e.chain(t, "127.0.0.1", "--dnsbl", "tc.test", "--dns-fail", "tempfail")
	if out, code := swaks(t, addr2, "127.0.0.10"); code != 24 || !strings.Contains(out, "451 4.4.3 Temporary DNS list lookup failure") {
		t.Errorf("--dns-fail tempfail: swaks exit %d:\n%s", code, out)
	}
}
