package dnsbl

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// The tests that exercise the network again, with every Check waiting in
// Go's network poller as serve mode's do (the others use rawLink on Linux).
func TestPollLink(t *testing.T) {
	if !haveRawLink {
		t.Skip("every Check uses the poller here")
	}
	withPoller = true
	defer func() { withPoller = false }()
	for _, tt := range []struct {
		name string
		test func(*testing.T)
	}{
		{"listed", TestListedAndNotListed},
		{"errors", TestErrorsAreNotListings},
		{"unreadable", TestUnreadableAnswersAreErrors},
		{"deadline", TestDeadlineSharedAcrossZones},
		{"many zones", TestOneDeadlineForManyZones},
		{"parallel", TestZonesInParallel},
		{"truncated", TestTruncatedAnswersRetriedOverTCP},
		{"retries", TestRetriesAcrossServers},
		{"formerr", TestEDNSFormerrFallback},
		{"one socket", TestOneSocketPerServer},
		{"stray answers", TestStrayAnswersIgnored},
		{"health", TestHealth},
		{"rbldnsd", TestRbldnsd},
	} {
		t.Run(tt.name, tt.test)
	}
}

// All questions of a Check to one server leave from one socket, told
// apart by their IDs.
func TestOneSocketPerServer(t *testing.T) {
	srv := startServer(t, map[string]rule{
		"2.0.0.127.b1.test": {a: []string{"127.0.0.2"}, txt: []string{"b1"}},
		"2.0.0.127.b2.test": {a: []string{"127.0.0.2"}, txt: []string{"b2"}},
		"2.0.0.127.b3.test": {a: []string{"127.0.0.2"}},
	})
	c := newChecker(t, Config{Zones: zones(t, "b1.test", "b2.test", "wl:b3.test"), Servers: []string{srv.Addr}})
	r := check(t, c, listedIP)
	if r.Score != 1 || r.Failed() || r.Text != "b1" {
		t.Fatalf("score %d errors %v text %q", r.Score, r.Errors(), r.Text)
	}
	ports := map[string]bool{}
	srv.mu.Lock()
	for _, l := range srv.log {
		ports[l[strings.LastIndexByte(l, ' ')+1:]] = true
	}
	n := len(srv.log)
	srv.mu.Unlock()
	if n != 5 || len(ports) != 1 {
		t.Errorf("%d queries from %d sockets, want 5 from 1: %v", n, len(ports), srv.log)
	}
}

// strayServer answers each query with an empty datagram, garbage, an
// answer with another ID, an answer to another question and then the
// answer: only the last counts.
func strayServer(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			send := func(m *dns.Msg) {
				b, _ := m.Pack()
				_, _ = pc.WriteTo(b, from)
			}
			_, _ = pc.WriteTo(nil, from)
			_, _ = pc.WriteTo([]byte("\x00"), from)
			_, _ = pc.WriteTo([]byte("garbage, not DNS"), from)
			m := new(dns.Msg)
			m.SetReply(q)
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA,
				Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 2)}}
			m.Id = q.Id + 1
			send(m)
			m.Id = q.Id
			m.Question[0].Name = "2.0.0.127.other.test."
			send(m)
			m.Question[0].Name = q.Question[0].Name
			m.Response = false
			send(m)
			m.Response = true
			if strings.HasPrefix(q.Question[0].Name, "1.") {
				m.Answer, m.Rcode = nil, dns.RcodeNameError
			}
			send(m)
		}
	}()
	return pc.LocalAddr().String()
}

func TestStrayAnswersIgnored(t *testing.T) {
	c := newChecker(t, Config{Zones: zones(t, "b1.test", "b2.test"), Servers: []string{strayServer(t)},
		Timeout: time.Second})
	if r := check(t, c, listedIP); r.Score != 2 || r.Failed() {
		t.Errorf("listed: score %d errors %v", r.Score, r.Errors())
	}
	if r := check(t, c, cleanIP); r.Score != 0 || r.Failed() {
		t.Errorf("clean: score %d errors %v", r.Score, r.Errors())
	}
}

// In the poller, a cancelled Check ends at once, not at its deadline.
func TestPollerCancelled(t *testing.T) {
	srv := startServer(t, map[string]rule{"test": {silent: true}})
	c := newChecker(t, Config{Zones: zones(t, "s1.test"), Servers: []string{srv.Addr},
		Timeout: time.Minute, Poller: true})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r := c.Check(ctx, listedIP)
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("cancelled Check took %v", el)
	}
	if e := r.Zones[0].Err; e == nil || e.Cause != Timeout {
		t.Errorf("cancelled: %v", e)
	}
}

// A server on ::1: the links open IPv6 sockets too.
func TestIPv6Server(t *testing.T) {
	pc, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA,
			Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 2)}}
		_ = w.WriteMsg(m)
	})}
	testpeer.ServeDNS(t, srv)
	for _, poller := range []bool{false, true} {
		c := newChecker(t, Config{Zones: zones(t, "wl:b1.test"), Servers: []string{pc.LocalAddr().String()},
			Timeout: time.Second, Poller: poller})
		if r := check(t, c, listedIP); r.Score != -1 || r.Failed() {
			t.Errorf("poller %v: score %d errors %v", poller, r.Score, r.Errors())
		}
	}
}
