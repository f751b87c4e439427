package dnsbl

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// rule is how the test server answers the names it covers.
type rule struct {
	a        []string      // A records
	txt      []string      // one TXT record of these strings
	txts     int           // repeat the TXT record this many times (default 1)
	rcode    int           // answer code when not NOERROR
	delay    time.Duration // wait before answering
	ttl      uint32        // TTL of the records (default 300)
	truncate bool          // answer UDP with TC and no records, TCP in full
	soa      bool          // put a SOA (negative TTL = ttl) in negative answers
	silent   bool          // never answer
	formerr  bool          // answer FORMERR to queries with EDNS0

	// Broken answers.
	wholeUDP  bool   // answer UDP in full, whatever the size offered
	tcpTC     bool   // with truncate: set TC over TCP too (the records in)
	tcpClose  bool   // with truncate: close TCP connections without answering
	class     uint16 // the records' class (default IN)
	owner     string // the records' owner (default the name asked)
	wrongType bool   // answer an A question with TXT records of a's texts
	nxRecords bool   // answer NXDOMAIN, with the records
	qname     string // the question in the answer: another name
	cut       int    // octets cut off the end of the packed answer
}

// listServer is an in-process DNS server on 127.0.0.1, UDP and TCP on the
// same port. Rules are keyed by fully qualified name; a name is covered by
// the rule of its longest covered suffix; an uncovered name is NXDOMAIN.
type listServer struct {
	Addr  string
	mu    sync.Mutex
	rules map[string]rule
	log   []string // "udp A 2.0.0.127.bl.test. from 127.0.0.1:PORT" per query
}

func startServer(t testing.TB, rules map[string]rule) *listServer {
	t.Helper()
	s := &listServer{rules: map[string]rule{}}
	for k, v := range rules {
		s.rules[dns.Fqdn(strings.ToLower(k))] = v
	}
	pc, l := testpeer.ListenUDPTCP(t)
	s.Addr = pc.LocalAddr().String()
	testpeer.ServeDNS(t, &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)})
	testpeer.ServeDNS(t, &dns.Server{Listener: l, Handler: dns.HandlerFunc(s.serve)})
	return s
}

// queries returns how many queries matched all the given words of the log
// line ("udp", "TXT", a name...).
func (s *listServer) queries(words ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
next:
	for _, l := range s.log {
		f := strings.Fields(l)
		for _, w := range words {
			found := false
			for _, x := range f {
				found = found || x == w
			}
			if !found {
				continue next
			}
		}
		n++
	}
	return n
}

func (s *listServer) find(name string) (rule, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := name; ; {
		if r, ok := s.rules[n]; ok {
			return r, true
		}
		i := strings.IndexByte(n, '.')
		if i < 0 || i == len(n)-1 {
			return rule{}, false
		}
		n = n[i+1:]
	}
}

func (s *listServer) serve(w dns.ResponseWriter, q *dns.Msg) {
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	qs := q.Question[0]
	name := strings.ToLower(qs.Name)
	s.mu.Lock()
	s.log = append(s.log, proto+" "+dns.TypeToString[qs.Qtype]+" "+name+" from "+w.RemoteAddr().String())
	s.mu.Unlock()
	r, covered := s.find(name)
	if r.silent {
		return
	}
	time.Sleep(r.delay)
	m := new(dns.Msg)
	m.SetReply(q)
	if r.formerr && q.IsEdns0() != nil {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	if opt := q.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	ttl := r.ttl
	if ttl == 0 {
		ttl = 300
	}
	hdr := func(t uint16) dns.RR_Header {
		h := dns.RR_Header{Name: qs.Name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
		if r.class != 0 {
			h.Class = r.class
		}
		if r.owner != "" {
			h.Name = r.owner
		}
		return h
	}
	switch {
	case !covered:
		m.Rcode = dns.RcodeNameError
	case r.rcode != 0:
		m.Rcode = r.rcode
	case qs.Qtype == dns.TypeA && r.wrongType:
		for _, a := range r.a {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{a}})
		}
	case qs.Qtype == dns.TypeA:
		for _, a := range r.a {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.ParseIP(a)})
		}
	case qs.Qtype == dns.TypeTXT && r.txt != nil:
		for i := 0; i < max(r.txts, 1); i++ {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: r.txt})
		}
	}
	if r.nxRecords {
		m.Rcode = dns.RcodeNameError
	}
	if len(m.Answer) == 0 && r.soa {
		m.Ns = append(m.Ns, &dns.SOA{Hdr: hdr(dns.TypeSOA), Ns: "ns.test.", Mbox: "hostmaster.test.",
			Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl})
		m.Ns[0].Header().Name = "test."
	}
	if r.qname != "" {
		m.Question[0].Name = r.qname
	}
	switch {
	case proto == "tcp" && r.truncate && r.tcpClose:
		_ = w.Close()
		return
	case proto == "tcp" && r.truncate && r.tcpTC:
		m.Truncated = true
	}
	if proto == "udp" && !r.wholeUDP {
		if r.truncate {
			m.Answer, m.Truncated = nil, true
		} else {
			size := dns.MinMsgSize
			if opt := q.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			m.Truncate(size)
		}
	}
	if r.cut > 0 {
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		_, _ = w.Write(b[:len(b)-r.cut])
		return
	}
	_ = w.WriteMsg(m)
}

// deadServer returns a loopback UDP address where nothing listens: queries
// to it fail at once (connection refused).
func deadServer(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// blackhole returns a loopback UDP address that reads queries and never
// answers, like a server behind a lost route.
func blackhole(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}
