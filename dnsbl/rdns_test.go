package dnsbl

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// rdnsServer answers from zone lines as a recursive resolver would: it
// follows CNAMEs within its data and puts the chain in the answer; a name
// it has no record of is NXDOMAIN. Names listed in servfail answer
// SERVFAIL, in silent nothing; raw maps a question name to the bytes of a
// whole answer (its ID patched in). It counts the questions it was asked.
type rdnsServer struct {
	addr     string
	rrs      []dns.RR
	servfail map[string]bool
	silent   map[string]bool
	raw      map[string][]byte
	mu       sync.Mutex
	asked    map[string]int // "PTR name." → count
}

func startRDNSServer(t *testing.T, lines ...string) *rdnsServer {
	t.Helper()
	s := &rdnsServer{servfail: map[string]bool{}, silent: map[string]bool{}, raw: map[string][]byte{}, asked: map[string]int{}}
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatal(err)
		}
		s.rrs = append(s.rrs, rr)
	}
	pc, l := testpeer.ListenUDPTCP(t)
	testpeer.ServeDNS(t, &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)})
	testpeer.ServeDNS(t, &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.serve)})
	s.addr = pc.LocalAddr().String()
	return s
}

// set changes the server's behaviour (servfail, silent, raw) while it
// serves: under its lock, as serve reads them.
func (s *rdnsServer) set(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *rdnsServer) count(qtype, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[qtype+" "+name]
}

func (s *rdnsServer) serve(w dns.ResponseWriter, q *dns.Msg) {
	qs := q.Question[0]
	name := strings.ToLower(qs.Name)
	s.mu.Lock()
	s.asked[dns.TypeToString[qs.Qtype]+" "+name]++
	silent, servfail := s.silent[name], s.servfail[name]
	b, isRaw := s.raw[name]
	s.mu.Unlock()
	if silent {
		return
	}
	if isRaw {
		b = slices.Clone(b)
		b[0], b[1] = byte(q.Id>>8), byte(q.Id)
		_, _ = w.Write(b)
		return
	}
	m := new(dns.Msg)
	m.SetReply(q)
	if servfail {
		m.Rcode = dns.RcodeServerFailure
		_ = w.WriteMsg(m)
		return
	}
	known := false
	for hops := 0; hops < 8; hops++ {
		next := ""
		for _, rr := range s.rrs {
			if !strings.EqualFold(rr.Header().Name, name) {
				continue
			}
			known = true
			switch {
			case rr.Header().Rrtype == qs.Qtype:
				m.Answer = append(m.Answer, rr)
			case rr.Header().Rrtype == dns.TypeCNAME:
				m.Answer = append(m.Answer, rr)
				next = strings.ToLower(rr.(*dns.CNAME).Target)
			}
		}
		if next == "" {
			break
		}
		name = next
	}
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	m.Compress = true
	_ = w.WriteMsg(m)
}

func rdnsChecker(t *testing.T, addr string, cache *Cache, timeout time.Duration) *Checker {
	t.Helper()
	c, err := New(Config{Servers: []string{addr}, Timeout: timeout, RDNS: true, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRDNS(t *testing.T) {
	lines := []string{
		// confirmed
		"5.0.0.127.in-addr.arpa. 300 IN PTR Mail.Good.Example.",
		"mail.good.example. 300 IN A 192.0.2.1",
		"mail.good.example. 300 IN A 127.0.0.5",
		// unconfirmed: the name resolves elsewhere
		"6.0.0.127.in-addr.arpa. 300 IN PTR host.elsewhere.example.",
		"host.elsewhere.example. 300 IN A 192.0.2.6",
		// unconfirmed: the name does not exist
		"7.0.0.127.in-addr.arpa. 300 IN PTR gone.example.",
		// RFC 2317 classless delegation: a CNAME, then the PTR
		"8.0.0.127.in-addr.arpa. 300 IN CNAME 8.0-25.0.0.127.in-addr.arpa.",
		"8.0-25.0.0.127.in-addr.arpa. 300 IN PTR mx.classless.example.",
		"mx.classless.example. 300 IN CNAME real.classless.example.",
		"real.classless.example. 300 IN A 127.0.0.8",
		// several names, the second confirms
		"9.0.0.127.in-addr.arpa. 300 IN PTR a.multi.example.",
		"9.0.0.127.in-addr.arpa. 300 IN PTR b.multi.example.",
		"b.multi.example. 300 IN A 127.0.0.9",
		// a name that is not a host name (control octet, underscore)
		`10.0.0.127.in-addr.arpa. 300 IN PTR bad\007name.example.`,
		"10.0.0.127.in-addr.arpa. 300 IN PTR under_score.example.",
		"under_score.example. 300 IN A 127.0.0.10",
		// the forward question fails
		"11.0.0.127.in-addr.arpa. 300 IN PTR broken.example.",
		// no PTR, but the name exists (NODATA)
		"12.0.0.127.in-addr.arpa. 300 IN TXT \"nothing\"",
		// IPv6
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa. 300 IN PTR v6.good.example.",
		"v6.good.example. 300 IN AAAA ::1",
		"v6.good.example. 300 IN A 127.0.0.1",
	}
	srv := startRDNSServer(t, lines...)
	srv.set(func() {
		srv.servfail["broken.example."] = true
		srv.servfail["13.0.0.127.in-addr.arpa."] = true
	})
	c := rdnsChecker(t, srv.addr, nil, 5*time.Second)
	for _, tc := range []struct {
		ip    string
		state RDNSState
		str   string
		host  string
	}{
		{"127.0.0.5", RDNSConfirmed, "confirmed mail.good.example", "mail.good.example"},
		{"::ffff:127.0.0.5", RDNSConfirmed, "confirmed mail.good.example", "mail.good.example"},
		{"127.0.0.6", RDNSUnconfirmed, "unconfirmed host.elsewhere.example", ""},
		{"127.0.0.7", RDNSUnconfirmed, "unconfirmed gone.example", ""},
		{"127.0.0.8", RDNSConfirmed, "confirmed mx.classless.example", "mx.classless.example"},
		{"127.0.0.9", RDNSConfirmed, "confirmed b.multi.example", "b.multi.example"},
		{"127.0.0.10", RDNSUnconfirmed, `unconfirmed bad\007name.example`, ""},
		{"127.0.0.11", RDNSError, "error", ""},
		{"127.0.0.12", RDNSNone, "none", ""},
		{"127.0.0.13", RDNSError, "error", ""},
		{"127.0.0.14", RDNSNone, "none", ""},
		{"::1", RDNSConfirmed, "confirmed v6.good.example", "v6.good.example"},
	} {
		r := c.Check(context.Background(), netip.MustParseAddr(tc.ip))
		if r.RDNS == nil {
			t.Fatalf("%s: no RDNS in the result", tc.ip)
		}
		if r.RDNS.State != tc.state || r.RDNS.String() != tc.str || r.RDNS.Host() != tc.host {
			t.Errorf("%s: %v %q host %q; want %v %q %q (%+v)", tc.ip, r.RDNS.State, r.RDNS.String(), r.RDNS.Host(),
				tc.state, tc.str, tc.host, r.RDNS)
		}
		if (r.RDNS.State == RDNSError) != (r.RDNS.Err != nil) {
			t.Errorf("%s: state %v with error %v", tc.ip, r.RDNS.State, r.RDNS.Err)
		}
		if h := r.RDNS.Host(); h != "" && !IsHostName(h) {
			t.Errorf("%s: host %q is not a host name", tc.ip, h)
		}
	}
	// The control octet and the underscore are never asked forward.
	if n := srv.count("A", "under_score.example."); n != 0 {
		t.Errorf("under_score.example asked %d times", n)
	}
}

// The PTR question goes out with the lists' questions, in one exchange and
// within one deadline: a silent forward name ends in an error at that
// deadline, not later, and the lists' answers are all there.
func TestRDNSSharesTheDeadline(t *testing.T) {
	srv := startRDNSServer(t,
		"5.0.0.127.in-addr.arpa. 300 IN PTR slow.example.",
		"5.0.0.127.bl.test. 300 IN A 127.0.0.2",
	)
	srv.set(func() { srv.silent["slow.example."] = true })
	c, err := New(Config{Servers: []string{srv.addr}, Timeout: 300 * time.Millisecond, RDNS: true,
		Zones: []Zone{mustZone(t, "bl.test")}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := c.Check(context.Background(), netip.MustParseAddr("127.0.0.5"))
	took := time.Since(start)
	if r.RDNS.State != RDNSError || r.RDNS.Err == nil || r.RDNS.Err.Cause != Timeout {
		t.Fatalf("rdns: %+v (err %v)", r.RDNS, r.RDNS.Err)
	}
	if !r.Zones[0].Listed {
		t.Fatalf("the list's answer is lost: %+v", r.Zones[0])
	}
	// Generous: the deadline is 300ms; a second check would show a
	// second deadline's worth.
	if took > 10*time.Second {
		t.Fatalf("took %v", took)
	}
}

func mustZone(t *testing.T, spec string) Zone {
	t.Helper()
	z, err := ParseZone(spec, Block)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// Hostile answers are bounded: 100 PTR records keep MaxPTR names and ask
// MaxForward of them; a name longer than 255 octets on the wire is an
// answer that cannot be read (an error, never "no name").
func TestRDNSHostile(t *testing.T) {
	var lines []string
	for i := 0; i < 100; i++ {
		lines = append(lines, fmt.Sprintf("20.0.0.127.in-addr.arpa. 300 IN PTR h%d.many.example.", i))
	}
	srv := startRDNSServer(t, lines...)
	long := longPTRAnswer(t, "21.0.0.127.in-addr.arpa.")
	srv.set(func() { srv.raw["21.0.0.127.in-addr.arpa."] = long })
	c := rdnsChecker(t, srv.addr, nil, 5*time.Second)
	r := c.Check(context.Background(), netip.MustParseAddr("127.0.0.20")).RDNS
	if r.PTRCount != 100 || len(r.PTRNames) != MaxPTR || len(r.Forward) != MaxForward || r.State != RDNSUnconfirmed {
		t.Fatalf("100 PTRs: count %d, names %d, forward %d, %v", r.PTRCount, len(r.PTRNames), len(r.Forward), r.State)
	}
	if len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "100 PTR records") {
		t.Errorf("notes: %q", r.Notes)
	}
	asked := 0
	for i := 0; i < 100; i++ {
		asked += srv.count("A", fmt.Sprintf("h%d.many.example.", i))
	}
	if asked != MaxForward {
		t.Errorf("%d forward questions, want %d", asked, MaxForward)
	}
	// An unreadable answer is asked again until the deadline: keep it short.
	c = rdnsChecker(t, srv.addr, nil, time.Second)
	r = c.Check(context.Background(), netip.MustParseAddr("127.0.0.21")).RDNS
	if r.State != RDNSError || r.Err == nil || r.Err.Cause != Unreadable {
		t.Fatalf("a 256-octet name: %+v (err %v)", r, r.Err)
	}
}

// longPTRAnswer is an answer to a PTR question for qname whose PTR name is
// 256 octets on the wire, which no valid message holds.
func longPTRAnswer(t *testing.T, qname string) []byte {
	q, err := appendQuery(nil, 0, qname, typePTR, false)
	if err != nil {
		t.Fatal(err)
	}
	q[2] |= flagQR >> 8
	q[7] = 1 // one answer
	var name []byte
	for i := 0; i < 3; i++ {
		name = append(name, 63)
		name = append(name, strings.Repeat("a", 63)...)
	}
	name = append(name, 62)
	name = append(name, strings.Repeat("b", 62)...)
	name = append(name, 0) // 256 octets: one more than RFC 1035 allows
	rdata := name
	q = append(q, 0xc0, headerLen, 0, typePTR, 0, classINET, 0, 0, 1, 0, byte(len(rdata)>>8), byte(len(rdata)))
	return append(q, rdata...)
}

// Serve mode's cache keeps the PTR and forward answers for their TTL.
func TestRDNSCache(t *testing.T) {
	srv := startRDNSServer(t,
		"5.0.0.127.in-addr.arpa. 300 IN PTR mail.good.example.",
		"mail.good.example. 300 IN A 127.0.0.5",
	)
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cache := NewCache(100, time.Hour, clock)
	c := rdnsChecker(t, srv.addr, cache, 5*time.Second)
	ip := netip.MustParseAddr("127.0.0.5")
	for i := 0; i < 3; i++ {
		r := c.Check(context.Background(), ip).RDNS
		if r.State != RDNSConfirmed || r.Cached != (i > 0) || r.Forward[0].Cached != (i > 0) {
			t.Fatalf("check %d: %+v", i, r)
		}
	}
	if p, a := srv.count("PTR", "5.0.0.127.in-addr.arpa."), srv.count("A", "mail.good.example."); p != 1 || a != 1 {
		t.Fatalf("asked PTR %d, A %d times; want once each", p, a)
	}
	mu.Lock()
	now = now.Add(301 * time.Second)
	mu.Unlock()
	if r := c.Check(context.Background(), ip).RDNS; r.Cached || r.State != RDNSConfirmed {
		t.Fatalf("after the TTL: %+v", r)
	}
	if p := srv.count("PTR", "5.0.0.127.in-addr.arpa."); p != 2 {
		t.Fatalf("asked PTR %d times after the TTL; want 2", p)
	}
}

func TestIsHostName(t *testing.T) {
	for s, want := range map[string]bool{
		"mail.example.com": true, "a": true, "xn--bcher-kva.example": true, "MX1.Example.NET": true,
		"": false, "a..b": false, "-a.example": false, "a-.example": false, "a_b.example": false,
		"a.example.": false, `bad\007.example`: false, "a b.example": false, strings.Repeat("a", 64) + ".example": false,
		strings.Repeat("abcdefghi.", 25) + "abc": true, strings.Repeat("abcdefghi.", 25) + "abcd": false,
	} {
		if got := IsHostName(s); got != want {
			t.Errorf("IsHostName(%q) = %v", s, got)
		}
	}
}

// A name with more addresses than are kept to show confirms a client
// whose address comes last, and serve's cache keeps no answer of more
// than maxCachedAddrs records (its owner chooses how many it has).
func TestRDNSManyAddresses(t *testing.T) {
	lines := []string{"22.0.0.127.in-addr.arpa. 300 IN PTR pool.many.example."}
	for i := 1; i <= 2*maxCachedAddrs; i++ {
		lines = append(lines, fmt.Sprintf("pool.many.example. 300 IN A 192.0.%d.%d", i/250, i%250+1))
	}
	lines = append(lines, "pool.many.example. 300 IN A 127.0.0.22")
	srv := startRDNSServer(t, lines...)
	c := rdnsChecker(t, srv.addr, NewCache(100, time.Hour, nil), 5*time.Second)
	ip := netip.MustParseAddr("127.0.0.22")
	for i := 0; i < 2; i++ {
		r := c.Check(context.Background(), ip).RDNS
		if r.State != RDNSConfirmed || len(r.Forward) != 1 {
			t.Fatalf("check %d: %v %+v", i, r.State, r.Forward)
		}
		if f := r.Forward[0]; !f.Match || f.Cached || len(f.Addrs) != MaxPTR || f.Addrs[0] != ip {
			t.Fatalf("check %d: forward %+v", i, f)
		}
	}
	if n := srv.count("A", "pool.many.example."); n != 2 {
		t.Errorf("asked A %d times; want 2 (an answer of %d records is not cached)", n, 2*maxCachedAddrs+1)
	}
}

// A PTR record in the answer to another question (an A list query) is
// skipped, as other types are; an NXDOMAIN answer that holds PTR records
// contradicts itself: an error, not "no name".
func TestRDNSStrayRecords(t *testing.T) {
	q := new(dns.Msg)
	q.SetQuestion("2.0.0.127.bl.test.", dns.TypeA)
	m := new(dns.Msg)
	m.SetReply(q)
	for _, l := range []string{"2.0.0.127.bl.test. 300 IN A 127.0.0.2", "2.0.0.127.bl.test. 300 IN PTR stray.example."} {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var r reply
	if err := unpack(b, &r); err != nil || len(r.addrs) != 1 || r.ptr != nil {
		t.Fatalf("A answer with a stray PTR: %v, %+v", err, r.records)
	}

	srv := startRDNSServer(t)
	pq := new(dns.Msg)
	pq.SetQuestion("5.0.0.127.in-addr.arpa.", dns.TypePTR)
	nx := new(dns.Msg)
	nx.SetReply(pq)
	nx.Rcode = dns.RcodeNameError
	rr, _ := dns.NewRR("5.0.0.127.in-addr.arpa. 300 IN PTR liar.example.")
	nx.Answer = append(nx.Answer, rr)
	if b, err = nx.Pack(); err != nil {
		t.Fatal(err)
	}
	srv.set(func() { srv.raw["5.0.0.127.in-addr.arpa."] = b })
	res := rdnsChecker(t, srv.addr, nil, time.Second).Check(context.Background(), netip.MustParseAddr("127.0.0.5")).RDNS
	if res.State != RDNSError || res.Err == nil || res.Err.Cause != Unreadable {
		t.Fatalf("NXDOMAIN with a PTR: %+v (err %v)", res, res.Err)
	}
}

// A PTR answer whose names are long is used but not cached: its owner
// picks the names, and the cache's 50,000 entries must stay small.
func TestRDNSLongNamesNotCached(t *testing.T) {
	label := strings.Repeat("x", 60)
	var lines []string
	for i := 0; i < 6; i++ { // about 1,200 octets of names
		lines = append(lines, fmt.Sprintf("5.0.0.127.in-addr.arpa. 300 IN PTR h%d.%s.%s.%s.example.", i, label, label, label))
	}
	srv := startRDNSServer(t, lines...)
	c := rdnsChecker(t, srv.addr, NewCache(100, time.Hour, nil), 5*time.Second)
	for i := 0; i < 2; i++ {
		r := c.Check(context.Background(), netip.MustParseAddr("127.0.0.5")).RDNS
		if len(r.PTRNames) != 6 || r.Cached {
			t.Fatalf("check %d: %d names, cached %v", i, len(r.PTRNames), r.Cached)
		}
	}
	if n := srv.count("PTR", "5.0.0.127.in-addr.arpa."); n != 2 {
		t.Fatalf("asked %d times, want 2 (not cached)", n)
	}
}

// A health check that cannot run for lack of our own fds says nothing of
// the zone.
func TestHealthExhaustedIsUnchecked(t *testing.T) {
	ex := probe{err: &Error{Cause: Exhausted, Detail: "too many open files"}}
	ok2 := probe{addrs: []netip.Addr{netip.MustParseAddr("127.0.0.2")}}
	for _, h := range []Health{health("bl.test", ex, probe{}, probe{}), health("bl.test", ok2, ex, probe{})} {
		if h.Status != Unchecked {
			t.Fatalf("%v: %s", h.Status, h.Detail)
		}
	}
}
