package serve

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// testList is a DNS list on loopback whose answer for 127.0.0.1 (and for
// every name, with all) the test changes.
type testList struct {
	mu  sync.Mutex
	one []string // the A records of 127.0.0.1's query
	all string   // when set, the answer to every query
}

func (l *testList) set(one []string, all string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.one, l.all = one, all
}

func (l *testList) serve(w dns.ResponseWriter, q *dns.Msg) {
	l.mu.Lock()
	one, all := l.one, l.all
	l.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(q)
	name := q.Question[0].Name
	var addrs []string
	switch {
	case all != "":
		addrs = []string{all}
	case strings.HasPrefix(name, "2.0.0.127."):
		addrs = []string{"127.0.0.2"}
	case strings.HasPrefix(name, "1.0.0.127."):
		addrs = one
	}
	if len(addrs) == 0 {
		m.Rcode = dns.RcodeNameError
	}
	for _, a := range addrs {
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.ParseIP(a)})
	}
	_ = w.WriteMsg(m)
}

func startList(t *testing.T) (*testList, string) {
	l := &testList{}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testpeer.ServeDNS(t, &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(l.serve)})
	return l, pc.LocalAddr().String()
}

// A zone that fails its health check is set aside and logged once, with
// the reason and the hint; it is back, logged once, when it passes.
func TestListHealthSetsAsideAndRestores(t *testing.T) {
	list, addr := startList(t)
	bl, _ := dnsbl.ParseZone("bl.test", dnsbl.Block)
	ok, _ := dnsbl.ParseZone("ok.test", dnsbl.Block)
	c, err := dnsbl.New(dnsbl.Config{Zones: []dnsbl.Zone{bl, ok}, Servers: []string{addr}, Timeout: time.Second, Poller: true})
	if err != nil {
		t.Fatal(err)
	}
	var log testpeer.Buffer
	changed := 0
	h := &ListHealth{Checker: c, Interval: time.Hour, Failures: 10, Log: logline.WriterLogger(&log), Changed: func() { changed++ }}
	h.Start()
	ctx := context.Background()
	h.CheckNow(ctx)
	if s := h.Summary(); s != "lists: 2 in use" || changed != 0 {
		t.Fatalf("all well: %q, %d changes", s, changed)
	}
	list.set(nil, "127.255.255.254") // every answer: "not from your resolver"
	h.CheckNow(ctx)
	h.CheckNow(ctx)
	lines := strings.Count(log.String(), "DNS list set aside")
	if lines != 2 || changed != 2 {
		t.Fatalf("%d set-aside lines, %d changes, want 2 and 2 (one per zone, once):\n%s", lines, changed, log.String())
	}
	if !strings.Contains(log.String(), "answers 127.255.255.254: this list refuses queries from your resolver") {
		t.Errorf("no plain hint:\n%s", log.String())
	}
	if s := h.Summary(); !strings.HasPrefix(s, "lists: 0 in use, 2 set aside (bl.test: refusing; ok.test: refusing)") {
		t.Errorf("summary %q", s)
	}
	zs := h.Zones()
	if len(zs) != 2 || !zs[0].SetAside() || zs[0].Status != dnsbl.Refusing || zs[0].Checked.IsZero() {
		t.Errorf("zones %+v", zs)
	}
	if r := c.Check(ctx, netipMust("127.0.0.2")); r.Failed() || r.Score != 0 || r.Zones[0].Aside == nil {
		t.Errorf("a client while aside: %+v", r)
	}
	list.set(nil, "")
	h.CheckNow(ctx)
	if n := strings.Count(log.String(), "DNS list back in use"); n != 2 || changed != 4 {
		t.Errorf("%d back lines, %d changes:\n%s", n, changed, log.String())
	}
	list.set([]string{"127.0.0.2"}, "") // 127.0.0.1 listed: everyone would be refused
	h.CheckNow(ctx)
	if !strings.Contains(log.String(), "127.0.0.1 is listed: the list answers every address") {
		t.Errorf("no hint for a list answering all:\n%s", log.String())
	}
	// A check cut short by the stop says nothing of the zones.
	list.set(nil, "")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	h.CheckNow(cctx)
	if len(c.Asides()) != 2 {
		t.Errorf("a cancelled check changed the zones: %+v", c.Asides())
	}
}

// Without health checks, live failures are only reported: nothing could
// bring the zone back.
func TestListHealthNoIntervalOnlyReports(t *testing.T) {
	list, addr := startList(t)
	list.set(nil, "127.255.255.254")
	bl, _ := dnsbl.ParseZone("bl.test", dnsbl.Block)
	c, err := dnsbl.New(dnsbl.Config{Zones: []dnsbl.Zone{bl}, Servers: []string{addr}, Timeout: time.Second, Poller: true})
	if err != nil {
		t.Fatal(err)
	}
	var log testpeer.Buffer
	h := &ListHealth{Checker: c, Failures: 2, Log: logline.WriterLogger(&log)}
	h.Start()
	h.Run(context.Background()) // returns at once
	for range 3 {
		if r := c.Check(context.Background(), netipMust("127.0.0.9")); r.Zones[0].Aside != nil || r.Zones[0].Err == nil {
			t.Fatalf("%+v", r.Zones[0])
		}
	}
	if n := strings.Count(log.String(), "DNS list failing; still asked (--dns-health-interval 0"); n != 1 {
		t.Errorf("%d failing lines:\n%s", n, log.String())
	}
	if s := h.Summary(); !strings.Contains(s, "1 in use, 1 failing (bl.test: 2 lookups in a row failed)") {
		t.Errorf("summary %q", s)
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }
