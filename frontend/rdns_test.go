package frontend

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// The reverse DNS of the test clients:
//
//	127.0.0.5   confirmed mail.good.example
//	127.0.0.6   unconfirmed (its name resolves to another address)
//	127.0.0.7   no PTR
//	127.0.0.11  the forward question fails (SERVFAIL)
//	127.0.0.20  confirmed, a generic name (dsl-127-0-0-20.pool.example)
//	127.0.0.30, 127.0.0.31  confirmed, one pool (mta1/mta2.out.example.net)
//	127.0.0.40  confirmed, and on the DNS allow list wl.test
func rdnsLines() []string {
	return []string{
		"5.0.0.127.in-addr.arpa. 60 IN PTR mail.good.example.",
		"mail.good.example. 60 IN A 127.0.0.5",
		"6.0.0.127.in-addr.arpa. 60 IN PTR liar.example.",
		"liar.example. 60 IN A 192.0.2.66",
		"11.0.0.127.in-addr.arpa. 60 IN PTR x.servfail.",
		"20.0.0.127.in-addr.arpa. 60 IN PTR dsl-127-0-0-20.pool.example.",
		"dsl-127-0-0-20.pool.example. 60 IN A 127.0.0.20",
		"30.0.0.127.in-addr.arpa. 60 IN PTR mta1.out.example.net.",
		"mta1.out.example.net. 60 IN A 127.0.0.30",
		"31.0.0.127.in-addr.arpa. 60 IN PTR mta2.out.example.net.",
		"mta2.out.example.net. 60 IN A 127.0.0.31",
		"40.0.0.127.in-addr.arpa. 60 IN PTR trusted.example.",
		"trusted.example. 60 IN A 127.0.0.40",
		"40.0.0.127.wl.test. 60 IN A 127.0.0.2",
	}
}

func rdnsPolicy(t testing.TB, addr string, c *RDNSCheck, zones []dnsbl.Zone) *Policy {
	t.Helper()
	ch, err := dnsbl.New(dnsbl.Config{Servers: []string{addr}, Zones: zones, RDNS: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &Policy{DNS: &DNSLists{Checker: ch, Threshold: 1, AllowThreshold: -1}, RDNS: c}
}

func generic(t testing.TB, text string) *GenericNames {
	t.Helper()
	g, err := ParseGenericNames(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func decideIP(p *Policy, ip string) Verdict {
	return p.Decide(context.Background(), Client{Remote: netip.AddrPortFrom(netip.MustParseAddr(ip), 4000)})
}

func TestDecideRDNS(t *testing.T) {
	addr := testpeer.ZoneDNS(t, rdnsLines()...)
	pool := generic(t, "*-%a-%b-%c-%d.*\n")
	for _, tc := range []struct {
		name  string
		ip    string
		check RDNSCheck
		act   Action
		reply string // the reply's code and status, "" for none
		rdns  string // MXFRONT_RDNS
	}{
		{"confirmed", "127.0.0.5", RDNSCheck{Action: RDNSRefuse}, Pass, "", "confirmed mail.good.example"},
		{"unconfirmed logged", "127.0.0.6", RDNSCheck{Action: RDNSLog}, Pass, "", "unconfirmed liar.example"},
		{"unconfirmed off", "127.0.0.6", RDNSCheck{Action: RDNSOff}, Pass, "", "unconfirmed liar.example"},
		{"unconfirmed tempfail", "127.0.0.6", RDNSCheck{Action: RDNSTempfail}, Refuse, "450 4.7.25", "unconfirmed liar.example"},
		{"none refused", "127.0.0.7", RDNSCheck{Action: RDNSRefuse}, Refuse, "550 5.7.25", "none"},
		{"error passes", "127.0.0.11", RDNSCheck{Action: RDNSRefuse}, Pass, "", "error"},
		{"error tempfails", "127.0.0.11", RDNSCheck{Action: RDNSRefuse, FailTemp: true}, Refuse, "451 4.4.3", "error"},
		{"error with log only passes", "127.0.0.11", RDNSCheck{Action: RDNSLog, FailTemp: true}, Pass, "", "error"},
		{"generic refused", "127.0.0.20", RDNSCheck{Action: RDNSRefuse, Generic: pool, GenericAction: RDNSRefuse}, Refuse, "550 5.7.1", "confirmed dsl-127-0-0-20.pool.example"},
		{"generic tempfail", "127.0.0.20", RDNSCheck{Generic: pool, GenericAction: RDNSTempfail}, Refuse, "450 4.7.1", "confirmed dsl-127-0-0-20.pool.example"},
		{"generic not matching", "127.0.0.5", RDNSCheck{Generic: pool, GenericAction: RDNSRefuse}, Pass, "", "confirmed mail.good.example"},
		{"stronger action wins", "127.0.0.6", RDNSCheck{Action: RDNSRefuse, Generic: generic(t, "liar.*"), GenericAction: RDNSTempfail}, Refuse, "550 5.7.25", "unconfirmed liar.example"},
		{"allow-listed never refused", "127.0.0.40", RDNSCheck{Action: RDNSRefuse, Generic: generic(t, "trusted.*"), GenericAction: RDNSRefuse}, Trusted, "", "confirmed trusted.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.check
			p := rdnsPolicy(t, addr, &c, zonesOf(t, nil, []string{"wl.test"}))
			v := decideIP(p, tc.ip)
			got := ""
			if v.Action == Refuse {
				got = strings.Join(strings.Fields(v.Reply.String())[:2], " ")
				if v.By != ByRDNS {
					t.Errorf("refused by %v", v.By)
				}
			}
			if v.Action != tc.act || got != tc.reply {
				t.Fatalf("%v %q; want %v %q (%s)", v.Action, got, tc.act, tc.reply, v.Reason())
			}
			var rdns string
			for _, e := range v.Exports() {
				if e.Name == "RDNS" {
					rdns = e.Value
				}
			}
			if rdns != tc.rdns {
				t.Errorf("MXFRONT_RDNS %q; want %q", rdns, tc.rdns)
			}
		})
	}
}

// --observe: an rDNS refusal is observed, the client passes.
func TestDecideRDNSObserved(t *testing.T) {
	p := rdnsPolicy(t, testpeer.ZoneDNS(t, rdnsLines()...), &RDNSCheck{Action: RDNSRefuse}, nil)
	p.Observe = true
	v := decideIP(p, "127.0.0.7")
	if v.Action != Pass || v.Observed == nil || v.Observed.By != ByRDNS || v.Observed.Reply.Code != 550 {
		t.Fatalf("%+v", v)
	}
}

// --rdns-check greylist: greylisted on first contact even on the skip list
// or the DNS allow list; once its network passed, the allow-listed client
// is trusted again.
func TestRDNSGreylist(t *testing.T) {
	addr := testpeer.ZoneDNS(t, rdnsLines()...)
	f := newGreyFixture(t, list(t, "127.0.0.0/8"), nil)
	p := rdnsPolicy(t, addr, &RDNSCheck{Action: RDNSGreylist}, zonesOf(t, nil, []string{"wl.test"}))
	f.p.DNS, f.p.RDNS = p.DNS, p.RDNS

	// A confirmed client on the skip list: skipped, as ever.
	if v := f.decide("127.0.0.5"); v.Action != Pass || v.Greylist.State != GreylistSkipped {
		t.Fatalf("confirmed, skip list: %v %v (%s)", v.Action, v.Greylist, v.Reason())
	}
	// Unconfirmed, on the skip list: greylisted.
	if v := f.decide("127.0.0.6"); !v.Greylisted() {
		t.Fatalf("unconfirmed, skip list: %v (%s)", v.Action, v.Reason())
	}
	// A client the DNS allow list trusts, whose (confirmed) name is
	// generic, with --rdns-generic-check greylist: greylisted too.
	f.p.RDNS = &RDNSCheck{Generic: generic(t, "trusted.*"), GenericAction: RDNSGreylist}
	v := f.decide("127.0.0.40")
	if !v.Greylisted() {
		t.Fatalf("allow-listed generic: %v (%s)", v.Action, v.Reason())
	}
	f.clock.add(6 * time.Minute)
	v = f.decide("127.0.0.40")
	if v.Action != Trusted || v.Greylist.State != GreylistRetry {
		t.Fatalf("allow-listed generic, retried: %v %v (%s)", v.Action, v.Greylist, v.Reason())
	}
}

// Observed, the forced greylisting of a trusted client leaves it trusted,
// with the greylisting it would have had.
func TestRDNSGreylistObservedStaysTrusted(t *testing.T) {
	f := newGreyFixture(t, nil, nil)
	p := rdnsPolicy(t, testpeer.ZoneDNS(t, rdnsLines()...), &RDNSCheck{Generic: generic(t, "trusted.*"), GenericAction: RDNSGreylist},
		zonesOf(t, nil, []string{"wl.test"}))
	f.p.DNS, f.p.RDNS, f.p.Observe = p.DNS, p.RDNS, true
	v := f.decide("127.0.0.40")
	if v.Action != Trusted || v.Observed == nil || !v.Observed.Greylisted() {
		t.Fatalf("%v observed %+v (%s)", v.Action, v.Observed, v.Reason())
	}
	st, err := f.store.Stats(context.Background())
	if err != nil || st.Records != 0 {
		t.Fatalf("observing wrote %d records (%v)", st.Records, err)
	}
}

// --greylist-by-name: a pool's second address passes once the first one
// retried; a client without a confirmed name, or with a generic one, is
// judged by its network.
func TestGreylistByName(t *testing.T) {
	addr := testpeer.ZoneDNS(t, rdnsLines()...)
	f := newGreyFixture(t, nil, nil)
	p := rdnsPolicy(t, addr, &RDNSCheck{Generic: generic(t, "*-%i.*"), GenericAction: RDNSLog}, nil)
	f.p.DNS, f.p.RDNS = p.DNS, p.RDNS
	names, err := f.gp.WithPrefixes(32, 128)
	if err != nil {
		t.Fatal(err)
	}
	f.p.Greylist.Names = names

	v := f.decide("127.0.0.30")
	if !v.Greylisted() || v.Greylist.Name != "out.example.net" || !strings.Contains(v.Reason(), "name out.example.net") {
		t.Fatalf("first contact: %v %+v (%s)", v.Action, v.Greylist, v.Reason())
	}
	want := netip.PrefixFrom(NameKey("out.example.net"), 128)
	if v.Greylist.Network != want {
		t.Fatalf("key %v; want %v", v.Greylist.Network, want)
	}
	f.clock.add(6 * time.Minute)
	if v := f.decide("127.0.0.30"); v.Action != Pass || v.Greylist.State != GreylistRetry {
		t.Fatalf("retry: %v %v (%s)", v.Action, v.Greylist, v.Reason())
	}
	// Another address of the pool: known at once.
	if v := f.decide("127.0.0.31"); v.Action != Pass || v.Greylist.State != GreylistPassed || v.Greylist.Name != "out.example.net" {
		t.Fatalf("second address: %v %+v (%s)", v.Action, v.Greylist, v.Reason())
	}
	// Unconfirmed: by its network, 127.0.0.0/24, which nobody passed.
	if v := f.decide("127.0.0.6"); !v.Greylisted() || v.Greylist.Name != "" || v.Greylist.Network.String() != "127.0.0.0/24" {
		t.Fatalf("unconfirmed: %v %+v", v.Action, v.Greylist)
	}
	// Generic: by its network, never by pool.example.
	if v := f.decide("127.0.0.20"); v.Greylist.Name != "" || !v.GenericName || !v.Greylisted() {
		t.Fatalf("generic: %v %+v generic %v", v.Action, v.Greylist, v.GenericName)
	}
	// Forgetting a greylisted bogus client (an early talker) forgets its
	// name's record.
	v = f.decide("127.0.0.40")
	key := netip.PrefixFrom(NameKey("trusted.example"), 128)
	if !v.Greylisted() || v.Greylist.Name != "trusted.example" {
		t.Fatalf("trusted.example: %v %+v", v.Action, v.Greylist)
	}
	if r, err := f.store.Get(context.Background(), key); err != nil || r.IsZero() {
		t.Fatalf("no record at %v: %+v %v", key, r, err)
	}
	f.p.forgetGreylisted(context.Background(), netip.MustParseAddr("127.0.0.40"), v)
	if r, err := f.store.Get(context.Background(), key); err != nil || !r.IsZero() {
		t.Fatalf("record at %v after forgetting: %+v %v", key, r, err)
	}
}

func TestGenericNames(t *testing.T) {
	g := generic(t, `# dynamic pools
*-%a-%b-%c-%d.*
dyn%h.example.net
*.%d.%c.%b.%a.in-addr.*   trailing comment
*%i*.cable.example
[0-9]*.dialup.example
ppp-??.example.org
`)
	for _, tc := range []struct {
		name, ip string
		want     bool
	}{
		{"dsl-192-0-2-7.example.net", "192.0.2.7", true},
		{"DSL-192-0-2-7.Example.NET", "192.0.2.7", true},
		{"dsl-192-0-2-8.example.net", "192.0.2.7", false},
		{"dync0000207.example.net", "192.0.2.7", true},
		{"host.7.2.0.192.in-addr.example", "192.0.2.7", true},
		{"c-7-2-0-192.cable.example", "192.0.2.7", true},
		{"c-192000002007.cable.example", "192.0.2.7", true},
		{"c-192.0.2.7.cable.example", "192.0.2.7", true},
		{"c-192-0-2-9.cable.example", "192.0.2.7", false},
		{"42.dialup.example", "192.0.2.7", true},
		{"ppp-12.example.org", "192.0.2.7", true},
		{"ppp-123.example.org", "192.0.2.7", false},
		{"mail.example.net", "192.0.2.7", false},
		{"dsl-192-0-2-7.example.net", "2001:db8::7", false},
		{"42.dialup.example", "2001:db8::7", true},
		{"dsl-192-0-2-7.example.net", "::ffff:192.0.2.7", true},
	} {
		if _, got := g.Match(tc.name, netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("%s for %s: %v", tc.name, tc.ip, got)
		}
	}
	for _, bad := range []string{"%x.example", "abc%", "[a-.example"} {
		if _, err := ParseGenericNames(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestGreylistName(t *testing.T) {
	for in, want := range map[string]string{
		"mta7.out.example.net": "out.example.net",
		"Out.Example.NET":      "example.net",
		"example.net":          "example.net",
		"mx.example.co.uk":     "example.co.uk",
		"example.co.uk":        "example.co.uk",
		"mail.example.de":      "example.de",
		"mail.gmx.de":          "mail.gmx.de",
		"a.b.mail.gmx.de":      "b.mail.gmx.de",
		"localhost":            "localhost",
	} {
		if got := GreylistName(in); got != want {
			t.Errorf("GreylistName(%q) = %q; want %q", in, got, want)
		}
	}
	if NameKey("a.example") == NameKey("b.example") || !netip.MustParsePrefix("100::/64").Contains(NameKey("a.example")) {
		t.Error("NameKey")
	}
}

// TCPREMOTEHOST is the confirmed name, or unset, whatever the launcher
// set; MXFRONT_RDNS says what was found.
func TestEnvironRDNS(t *testing.T) {
	addr := testpeer.ZoneDNS(t, rdnsLines()...)
	p := rdnsPolicy(t, addr, &RDNSCheck{}, nil)
	base := []string{"PATH=/bin", "TCPREMOTEHOST=launcher.example"}
	remote := netip.MustParseAddrPort("127.0.0.5:4000")
	env := Environ(base, remote, netip.AddrPort{}, "", decideIP(p, "127.0.0.5"))
	if !slices.Contains(env, "TCPREMOTEHOST=mail.good.example") || slices.Contains(env, "TCPREMOTEHOST=launcher.example") ||
		!slices.Contains(env, "MXFRONT_RDNS=confirmed mail.good.example") {
		t.Fatalf("confirmed: %q", env)
	}
	env = Environ(base, netip.MustParseAddrPort("127.0.0.6:4000"), netip.AddrPort{}, "", decideIP(p, "127.0.0.6"))
	for _, kv := range env {
		if strings.HasPrefix(kv, "TCPREMOTEHOST=") {
			t.Fatalf("unconfirmed: %q", kv)
		}
	}
	if !slices.Contains(env, "MXFRONT_RDNS=unconfirmed liar.example") {
		t.Fatalf("unconfirmed: %q", env)
	}
	// Without --rdns, the launcher's TCPREMOTEHOST is PROGRAM's.
	env = Environ(base, remote, netip.AddrPort{}, "", Verdict{})
	if !slices.Contains(env, "TCPREMOTEHOST=launcher.example") {
		t.Fatalf("no rdns: %q", env)
	}
}

// --observe with --greylist-by-name: a generic name whose refusal is only
// observed is still judged by its network, as in a run that enforces
// (the pass that keeps the refusal keeps its GenericName).
func TestObservedGenericNotByName(t *testing.T) {
	f := newGreyFixture(t, nil, nil)
	p := rdnsPolicy(t, testpeer.ZoneDNS(t, rdnsLines()...), &RDNSCheck{Generic: generic(t, "*-%a-%b-%c-%d.*"), GenericAction: RDNSRefuse}, nil)
	f.p.DNS, f.p.RDNS, f.p.Observe = p.DNS, p.RDNS, true
	names, err := f.gp.WithPrefixes(32, 128)
	if err != nil {
		t.Fatal(err)
	}
	f.p.Greylist.Names = names
	v := f.decide("127.0.0.20")
	if v.Action != Pass || v.Observed == nil || v.Observed.By != ByRDNS || !v.GenericName {
		t.Fatalf("%v observed %+v generic %v (%s)", v.Action, v.Observed, v.GenericName, v.Reason())
	}
	if v.Greylist.Name != "" {
		t.Fatalf("judged by the name %q (%s)", v.Greylist.Name, v.Reason())
	}
}

// However odd the answers, one WARN line per connection says so.
func TestRDNSNotesOneLine(t *testing.T) {
	var lines []string
	for i := 0; i < 12; i++ {
		lines = append(lines, fmt.Sprintf("50.0.0.127.in-addr.arpa. 60 IN PTR h%d.many.example.", i))
	}
	p := rdnsPolicy(t, testpeer.ZoneDNS(t, lines...), &RDNSCheck{}, nil)
	var log bytes.Buffer
	p.Log = logline.WriterLogger(&log)
	v := decideIP(p, "127.0.0.50")
	if v.Action != Pass {
		t.Fatalf("%v", v.Action)
	}
	if n := strings.Count(log.String(), "odd answer"); n != 1 || !strings.Contains(log.String(), "12 PTR records: kept 8") {
		t.Fatalf("%d lines:\n%s", n, log.String())
	}
}
