package frontend

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// listAnswer is how the test server answers one name.
type listAnswer struct {
	a      []string // A records
	txt    string   // a TXT record, when not empty
	rcode  int      // answer code when not NOERROR
	silent bool     // never answer
}

// listServer is an in-process DNS server on 127.0.0.1 (UDP): names it does
// not know are NXDOMAIN. It counts the queries it was asked.
type listServer struct {
	addr    string
	answers map[string]listAnswer
	mu      sync.Mutex
	asked   []string
}

func startListServer(t testing.TB, answers map[string]listAnswer) *listServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &listServer{addr: pc.LocalAddr().String(), answers: map[string]listAnswer{}}
	for k, v := range answers {
		s.answers[dns.Fqdn(k)] = v
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
	testpeer.ServeDNS(t, srv)
	return s
}

func (s *listServer) serve(w dns.ResponseWriter, q *dns.Msg) {
	qs := q.Question[0]
	s.mu.Lock()
	s.asked = append(s.asked, dns.TypeToString[qs.Qtype]+" "+qs.Name)
	s.mu.Unlock()
	a, ok := s.answers[strings.ToLower(qs.Name)]
	if a.silent {
		return
	}
	m := new(dns.Msg)
	m.SetReply(q)
	hdr := dns.RR_Header{Name: qs.Name, Rrtype: qs.Qtype, Class: dns.ClassINET, Ttl: 300}
	switch {
	case !ok:
		m.Rcode = dns.RcodeNameError
	case a.rcode != 0:
		m.Rcode = a.rcode
	case qs.Qtype == dns.TypeA:
		for _, ip := range a.a {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP(ip)})
		}
	case qs.Qtype == dns.TypeTXT && a.txt != "":
		m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{a.txt}})
	}
	_ = w.WriteMsg(m)
}

func (s *listServer) queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.asked)
}

// The lists the table tests ask. 127.0.0.2 is on bl1, bl2 and wl1;
// 192.0.2.1 on bl1 only; 192.0.2.2 on bl2 and wl1; 192.0.2.3 is refused
// by bl1 (an error code) and fails on bl2 (SERVFAIL); 192.0.2.4 gets no
// answer from bl1; 2001:db8::1 is on bl1 (IPv6 nibbles); dead.test
// answers REFUSED for 192.0.2.1.
func testLists(t testing.TB) *listServer {
	v6 := dnsbl.QueryName(netip.MustParseAddr("2001:db8::1"), "bl1.test")
	return startListServer(t, map[string]listAnswer{
		"2.0.0.127.bl1.test":  {a: []string{"127.0.0.2"}, txt: "bl1 says no to 127.0.0.2"},
		"2.0.0.127.bl2.test":  {a: []string{"127.0.0.3"}, txt: "bl2 says no"},
		"2.0.0.127.wl1.test":  {a: []string{"127.0.10.1"}},
		"1.2.0.192.bl1.test":  {a: []string{"127.0.0.2"}, txt: "bl1: 192.0.2.1 is a \r\nspam\x00source"},
		"2.2.0.192.bl2.test":  {a: []string{"127.0.0.3"}, txt: "bl2 says no to 192.0.2.2"},
		"2.2.0.192.wl1.test":  {a: []string{"127.0.10.1"}},
		"3.2.0.192.bl1.test":  {a: []string{"127.255.255.254"}},
		"3.2.0.192.bl2.test":  {rcode: dns.RcodeServerFailure},
		"4.2.0.192.bl1.test":  {silent: true},
		"5.2.0.192.bl1.test":  {a: []string{"127.0.0.2"}}, // no TXT
		v6:                    {a: []string{"127.0.0.2"}, txt: "bl1 lists 2001:db8::1"},
		"1.2.0.192.antirbl.a": {a: []string{"127.0.0.2"}},
		"1.2.0.192.dead.test": {rcode: dns.RcodeRefused},
	})
}

func zonesOf(t testing.TB, block, allow []string) []dnsbl.Zone {
	t.Helper()
	var zs []dnsbl.Zone
	for _, spec := range block {
		z, err := dnsbl.ParseZone(spec, dnsbl.Block)
		if err != nil {
			t.Fatal(err)
		}
		zs = append(zs, z)
	}
	for _, spec := range allow {
		z, err := dnsbl.ParseZone(spec, dnsbl.Allow)
		if err != nil {
			t.Fatal(err)
		}
		zs = append(zs, z)
	}
	return zs
}

func TestDecideDNSLists(t *testing.T) {
	srv := testLists(t)
	tests := []struct {
		name      string
		ip        string
		block     []string
		allow     []string
		threshold int // default 1
		allowTh   int // default -1
		failTemp  bool
		temp      bool
		rbl       []string
		permanent bool
		anti      []string
		replies   map[string]string
		// What Decide must return.
		action  Action
		reply   string // Verdict.Reply of a refusal
		reason  string // in Reasons
		exports map[string]string
		warns   int // DNS list failures logged
	}{
		{name: "not listed passes", ip: "198.51.100.1", block: []string{"bl1.test", "bl2.test"},
			action: Pass, exports: map[string]string{"DNSBL": "", "DNSWL": "", "SCORE": "0"}},
		{name: "listed is refused with the TXT", ip: "192.0.2.1", block: []string{"bl1.test"},
			action: Refuse, reply: "554 5.7.1 bl1: 192.0.2.1 is a spam?source", reason: "listed by bl1.test; score 1 >= 1"},
		{name: "no TXT: generic text", ip: "192.0.2.5", block: []string{"bl1.test"},
			action: Refuse, reply: "554 5.7.1 client [192.0.2.5] blocked using bl1.test"},
		{name: "--dnsbl-reply text", ip: "192.0.2.1", block: []string{"bl1.test"}, replies: map[string]string{"bl1.test": "See https://bl1.test/?%IP%"},
			action: Refuse, reply: "554 5.7.1 See https://bl1.test/?192.0.2.1"},
		{name: "--temp makes it 451", ip: "192.0.2.1", block: []string{"bl1.test"}, temp: true,
			action: Refuse, reply: "451 4.7.1 bl1: 192.0.2.1 is a spam?source"},
		{name: "below threshold passes with the zone exported", ip: "192.0.2.1", block: []string{"bl1.test", "bl2.test"}, threshold: 2,
			action: Pass, reason: "listed by bl1.test; score 1 below 2", exports: map[string]string{"DNSBL": "bl1.test", "SCORE": "1"}},
		{name: "weights summed reach the threshold", ip: "127.0.0.2", block: []string{"bl1.test*2", "bl2.test*3"}, threshold: 5,
			action: Refuse, reply: "554 5.7.1 bl2 says no", reason: "listed by bl1.test bl2.test; score 5 >= 5"},
		{name: "weights summed stay below", ip: "127.0.0.2", block: []string{"bl1.test*2", "bl2.test*2"}, threshold: 5,
			action: Pass, exports: map[string]string{"DNSBL": "bl1.test bl2.test", "SCORE": "4"}},
		{name: "filter that does not match", ip: "127.0.0.2", block: []string{"bl2.test=127.0.0.2"},
			action: Pass, exports: map[string]string{"DNSBL": "", "SCORE": "0"}},
		{name: "allow list trusts and skips the rest", ip: "192.0.2.2", block: []string{"bl2.test"}, allow: []string{"wl1.test*2"},
			action: Trusted, reason: "allowed by wl1.test; score -1 <= -1", exports: map[string]string{"DNSBL": "bl2.test", "DNSWL": "wl1.test", "SCORE": "-1"}},
		{name: "allow list outweighed", ip: "192.0.2.2", block: []string{"bl2.test*2"}, allow: []string{"wl1.test"},
			action: Refuse, reply: "554 5.7.1 bl2 says no to 192.0.2.2"},
		{name: "error answer is not a listing", ip: "192.0.2.3", block: []string{"bl1.test", "bl2.test"},
			action: Pass, reason: "bl1.test (error code), bl2.test (servfail) could not be asked; passed", warns: 2,
			exports: map[string]string{"DNSBL": "", "SCORE": "0"}},
		{name: "--dns-fail tempfail defers", ip: "192.0.2.3", block: []string{"bl1.test"}, failTemp: true,
			action: Refuse, reply: "451 4.4.3 Temporary DNS list lookup failure, try again later", warns: 1},
		{name: "timeout passes", ip: "192.0.2.4", block: []string{"bl1.test"},
			action: Pass, reason: "bl1.test (timeout) could not be asked", warns: 1},
		{name: "tempfail does not hide a listing", ip: "192.0.2.1", block: []string{"bl1.test", "dead.test"}, failTemp: true,
			action: Refuse, reply: "554 5.7.1 bl1: 192.0.2.1 is a spam?source", reason: "dead.test (refused) could not be asked", warns: 1},
		{name: "IPv6 in nibbles", ip: "2001:db8::1", block: []string{"bl1.test"},
			action: Refuse, reply: "554 5.7.1 bl1 lists 2001:db8::1"},
		{name: "mapped IPv4 asked as IPv4", ip: "::ffff:192.0.2.5", block: []string{"bl1.test"},
			action: Refuse, reply: "554 5.7.1 client [192.0.2.5] blocked using bl1.test"},
		{name: "-r: 451 as rblsmtpd's default", ip: "192.0.2.1", rbl: []string{"bl1.test"},
			action: Refuse, reply: "451 4.7.1 bl1: 192.0.2.1 is a spam?source"},
		{name: "-r -b: 553", ip: "192.0.2.1", rbl: []string{"bl1.test"}, permanent: true,
			action: Refuse, reply: "553 5.7.1 bl1: 192.0.2.1 is a spam?source"},
		{name: "-r -b with a zone failed: 451", ip: "192.0.2.1", rbl: []string{"bl1.test"}, block: []string{"dead.test"}, permanent: true,
			action: Refuse, reply: "451 4.7.1 bl1: 192.0.2.1 is a spam?source", warns: 1},
		{name: "-a trusts over -r", ip: "192.0.2.1", rbl: []string{"bl1.test"}, anti: []string{"antirbl.a"},
			action: Trusted, reason: "anti-listed by antirbl.a (-a)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.threshold == 0 {
				tt.threshold = 1
			}
			if tt.allowTh == 0 {
				tt.allowTh = -1
			}
			zones := zonesOf(t, append(slices.Clone(tt.block), tt.rbl...), append(slices.Clone(tt.allow), tt.anti...))
			c, err := dnsbl.New(dnsbl.Config{Zones: zones, Servers: []string{srv.addr}, Timeout: 300 * time.Millisecond, Replies: tt.replies})
			if err != nil {
				t.Fatal(err)
			}
			var logbuf bytes.Buffer
			p := &Policy{Temp: tt.temp, Greylist: &Greylisting{}, Log: logline.WriterLogger(&logbuf),
				DNS: &DNSLists{Checker: c, Threshold: tt.threshold, AllowThreshold: tt.allowTh, FailTemp: tt.failTemp,
					RBL: set(tt.rbl), RBLPermanent: tt.permanent, AntiRBL: set(tt.anti)}}
			v := p.Decide(context.Background(), Client{Remote: netip.AddrPortFrom(netip.MustParseAddr(tt.ip), 25)})
			if v.Action != tt.action {
				t.Fatalf("action %v, want %v (reasons %q)", v.Action, tt.action, v.Reasons)
			}
			if strings.ContainsAny(v.Reply.String()+v.Reason(), "\r\n") {
				t.Errorf("CR or LF in %q / %q", v.Reply, v.Reason())
			}
			if v.Action == Refuse && v.Reply.String() != tt.reply {
				t.Errorf("reply %q, want %q", v.Reply, tt.reply)
			}
			if v.Action != Refuse && v.Reply.Code != 0 {
				t.Errorf("a %v verdict carries code %d", v.Action, v.Reply.Code)
			}
			if tt.reason != "" && !strings.Contains(v.Reason(), tt.reason) {
				t.Errorf("reasons %q lack %q", v.Reasons, tt.reason)
			}
			got := map[string]string{}
			for _, e := range v.Exports() {
				if _, dup := got[e.Name]; dup {
					t.Errorf("export %s twice", e.Name)
				}
				got[e.Name] = e.Value
			}
			for k, want := range tt.exports {
				if g, ok := got[k]; !ok || g != want {
					t.Errorf("export %s = %q (set %v), want %q", k, g, ok, want)
				}
			}
			if n := strings.Count(logbuf.String(), `msg="DNS list failed"`); n != tt.warns {
				t.Errorf("%d failures logged, want %d:\n%s", n, tt.warns, logbuf.String())
			}
			// Details are check's: a deciding Policy spends nothing on them.
			if len(v.Details) != 0 {
				t.Errorf("details %q written outside mxfront check", v.Details)
			}
			p.DryRun = true
			if v = p.Decide(context.Background(), Client{Remote: netip.AddrPortFrom(netip.MustParseAddr(tt.ip), 25)}); len(v.Details) != len(zones)+1 {
				t.Errorf("details %q: want one line per zone and the score", v.Details)
			}
		})
	}
}

func set(names []string) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Steps 1 and 2 come before the DNS lists, which are then never asked.
func TestDecideDNSListsPrecedence(t *testing.T) {
	srv := testLists(t)
	c, err := dnsbl.New(dnsbl.Config{Zones: zonesOf(t, []string{"bl1.test"}, nil), Servers: []string{srv.addr}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{Allow: list(t, "192.0.2.1"), DNS: &DNSLists{Checker: c, Threshold: 1, AllowThreshold: -1}}
	allowed := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), 25)
	listed := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 25)
	for _, tc := range []struct {
		name string
		c    Client
		want Action
	}{
		{"--allow", Client{Remote: allowed}, Trusted},
		{"RELAYCLIENT", Client{Remote: listed, RelayClient: true}, Trusted},
		{"RBLSMTPD empty", Client{Remote: listed, HasRBLSMTPD: true}, Trusted},
		{"RBLSMTPD", Client{Remote: listed, HasRBLSMTPD: true, RBLSMTPD: "-no"}, Refuse},
	} {
		if v := p.Decide(context.Background(), tc.c); v.Action != tc.want || slices.ContainsFunc(v.Reasons, func(r string) bool { return strings.HasPrefix(r, "DNS") }) {
			t.Errorf("%s: %v %q", tc.name, v.Action, v.Reasons)
		}
	}
	if q := srv.queries(); len(q) != 0 {
		t.Errorf("the lists were asked: %q", q)
	}
	// Without a Checker nothing is asked and nothing exported.
	p = &Policy{DNS: &DNSLists{}}
	if v := p.Decide(context.Background(), Client{Remote: listed}); v.Action != Pass || len(v.Exports()) != 0 {
		t.Errorf("no checker: %+v", v)
	}
}

// `mxfront check` reads each zone's query, answer, TXT, time and whether it
// counted from the Details.
func TestDNSListsDetails(t *testing.T) {
	srv := testLists(t)
	c, err := dnsbl.New(dnsbl.Config{Zones: zonesOf(t, []string{"bl1.test*2", "bl2.test=127.0.0.2"}, []string{"wl1.test"}),
		Servers: []string{srv.addr}, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{DryRun: true, DNS: &DNSLists{Checker: c, Threshold: 3, AllowThreshold: -1}}
	v := p.Decide(context.Background(), Client{Remote: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 0)})
	if v.Action != Pass {
		t.Fatalf("action %v %q", v.Action, v.Reasons)
	}
	want := []string{
		`dnsbl bl1.test*2: query 2.0.0.127.bl1.test; answer 127.0.0.2; txt "bl1 says no to 127.0.0.2"; time `,
		`dnsbl bl2.test=127.0.0.2: query 2.0.0.127.bl2.test; answer 127.0.0.3; txt -; time `,
		`dnswl wl1.test: query 2.0.0.127.wl1.test; answer 127.0.10.1; txt -; time `,
		`dns score: 1 (refuse at >= 3, trust at <= -1)`,
	}
	ends := []string{"; counted +2", "; not counted (filter 127.0.0.2)", "; counted -1", ""}
	if len(v.Details) != len(want) {
		t.Fatalf("details %q", v.Details)
	}
	for i, w := range want {
		if !strings.HasPrefix(v.Details[i], w) || !strings.HasSuffix(v.Details[i], ends[i]) {
			t.Errorf("detail %d = %q, want %q...%q", i, v.Details[i], w, ends[i])
		}
	}
}

// Decide with three zones on an in-process server on loopback: a clean
// client (three A queries answered NXDOMAIN) and a listed one (A and TXT).
func BenchmarkDecideThreeZones(b *testing.B) {
	srv := testLists(b)
	c, err := dnsbl.New(dnsbl.Config{Zones: zonesOf(b, []string{"bl1.test", "bl2.test"}, []string{"wl1.test"}),
		Servers: []string{srv.addr}, Timeout: 2 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	p := &Policy{DNS: &DNSLists{Checker: c, Threshold: 1, AllowThreshold: -1}}
	for _, bc := range []struct {
		name, ip string
		want     Action
	}{{"clean", "198.51.100.1", Pass}, {"listed", "192.0.2.1", Refuse}} {
		b.Run(bc.name, func(b *testing.B) {
			cl := Client{Remote: netip.AddrPortFrom(netip.MustParseAddr(bc.ip), 25)}
			for b.Loop() {
				if v := p.Decide(context.Background(), cl); v.Action != bc.want {
					b.Fatalf("%v %q", v.Action, v.Reasons)
				}
			}
		})
	}
}
