package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/testpeer"
	"github.com/urfave/cli/v2"
)

// The DNS list flags and rblsmtpd's letters parse alike in the fast parser
// and in the cli application.
func TestDNSFlagsFastAgrees(t *testing.T) {
	for _, args := range [][]string{
		{"-r", "bl.example", "-a", "wl.example", "-b", "-C", "-t", "30", "prog", "-r", "x"},
		{"-r", "a.example", "-r", "b.example", "-B", "-c", "-t", "0", "--", "prog"},
		{"--dnsbl", "zen.example=127.0.0.[2..11]*2", "--dnsbl", "b.example", "--dnswl", "wl.example*3", "prog"},
		{"--dnsbl-threshold", "3", "--dnswl-threshold=-2", "--dns-timeout", "1500ms", "--dns-fail", "tempfail", "prog"},
		{"--dns-server", "127.0.0.1:5353", "--dns-server=[::1]:53", "--dnsbl-reply", "a.example=Go %IP%", "prog"},
		{"-rbl", "x.example", "--antirbl=y.example", "--rbl-permanent", "--dns-fail-open=false", "prog"},
	} {
		checkFastAgrees(t, args)
		if _, argv, ok := config.ParseChain(args); !ok || len(argv) == 0 {
			t.Errorf("%q: the fast parser stepped aside", args)
		}
	}
	// getopt's bundling is not supported: the cli application answers.
	for _, args := range [][]string{{"-bC", "prog"}, {"-rbl.example", "prog"}, {"--dnsbl-threshold", "x", "prog"}, {"-t"}} {
		if _, argv, ok := config.ParseChain(args); ok && len(argv) > 0 {
			t.Errorf("%q: the fast parser took it", args)
		}
	}
}

// loadWith parses args (flags, then PROGRAM) with the fast parser and with
// the cli application, loads both configurations for mode m and checks
// that they agree on the DNS lists.
func loadWith(t *testing.T, m config.Mode, args ...string) (*config.Config, error) {
	t.Helper()
	args = append(args, "prog")
	fo, _, ok := config.ParseChain(args)
	if !ok {
		t.Fatalf("%q: fast parser stepped aside", args)
	}
	fcfg, ferr := config.Load(fo, m)
	var ccfg *config.Config
	var cerr error
	app := chainApp()
	app.Action = func(c *cli.Context) error {
		ccfg, cerr = config.Load(cliOptions{c}, m)
		return nil
	}
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	if err := app.Run(append([]string{"mxfront"}, args...)); err != nil {
		t.Fatalf("%q: cli: %v", args, err)
	}
	if (ferr == nil) != (cerr == nil) {
		t.Fatalf("%q: fast error %v, cli error %v", args, ferr, cerr)
	}
	if ferr != nil {
		return nil, ferr
	}
	f, c := fcfg.Policy.DNS, ccfg.Policy.DNS
	if (f == nil) != (c == nil) {
		t.Fatalf("%q: DNS lists fast %v cli %v", args, f, c)
	}
	if f != nil && (f.Threshold != c.Threshold || f.AllowThreshold != c.AllowThreshold || f.FailTemp != c.FailTemp ||
		f.RBLPermanent != c.RBLPermanent || len(f.RBL) != len(c.RBL) || len(f.AntiRBL) != len(c.AntiRBL) ||
		len(f.Checker.Zones()) != len(c.Checker.Zones())) {
		t.Fatalf("%q: fast %+v\ncli %+v", args, *f, *c)
	}
	if fcfg.Dialogue != ccfg.Dialogue {
		t.Fatalf("%q: dialogue fast %+v cli %+v", args, fcfg.Dialogue, ccfg.Dialogue)
	}
	return fcfg, nil
}

func TestLoadDNS(t *testing.T) {
	const srv = "--dns-server=127.0.0.1:5353"
	t.Run("no zone builds nothing", func(t *testing.T) {
		cfg, err := loadWith(t, config.Chain, "--dns-timeout", "1s", "--dns-fail", "tempfail")
		if err != nil || cfg.Policy.DNS != nil {
			t.Fatalf("DNS %v err %v", cfg.Policy.DNS, err)
		}
	})
	t.Run("defaults", func(t *testing.T) {
		cfg, err := loadWith(t, config.Chain, srv, "--dnsbl", "bl.example")
		if err != nil {
			t.Fatal(err)
		}
		d := cfg.Policy.DNS
		if d.Threshold != 1 || d.AllowThreshold != -1 || d.FailTemp || d.RBLPermanent || d.RBL != nil || d.AntiRBL != nil {
			t.Errorf("%+v", *d)
		}
		if z := d.Checker.Zones(); len(z) != 1 || z[0].Name != "bl.example" || z[0].Points() != 1 {
			t.Errorf("zones %v", z)
		}
		if cfg.Dialogue.SessionTimeout != frontend.DefaultDialogue.SessionTimeout || cfg.Dialogue.RefuseAt != frontend.AtRcpt {
			t.Errorf("dialogue changed without -t: %+v", cfg.Dialogue)
		}
	})
	t.Run("rblsmtpd's letters", func(t *testing.T) {
		cfg, err := loadWith(t, config.Chain, srv, "-r", "bl.example", "-a", "wl.example", "-b", "-C", "-t", "30")
		if err != nil {
			t.Fatal(err)
		}
		d := cfg.Policy.DNS
		if !d.RBL["bl.example"] || !d.AntiRBL["wl.example"] || !d.RBLPermanent || d.FailTemp {
			t.Errorf("%+v", *d)
		}
		if z := d.Checker.Zones(); len(z) != 2 || z[1].Points() != -1 {
			t.Errorf("zones %v", z)
		}
		if cfg.Dialogue.SessionTimeout != 30*time.Second {
			t.Errorf("-t 30: session timeout %v", cfg.Dialogue.SessionTimeout)
		}
	})
	for _, tc := range []struct {
		args      []string
		permanent bool
		failTemp  bool
	}{
		{[]string{"-r", "bl.example"}, false, false},
		{[]string{"-r", "bl.example", "-b"}, true, false},
		{[]string{"-r", "bl.example", "-b", "-B"}, false, false},
		{[]string{"-r", "bl.example", "-c"}, false, true},
		{[]string{"-r", "bl.example", "-c", "-C"}, false, false},
		{[]string{"-r", "bl.example", "--dns-fail", "tempfail"}, false, true},
		{[]string{"-r", "bl.example", "--dns-fail", "tempfail", "-C"}, false, false},
	} {
		cfg, err := loadWith(t, config.Chain, append([]string{srv}, tc.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if d := cfg.Policy.DNS; d.RBLPermanent != tc.permanent || d.FailTemp != tc.failTemp {
			t.Errorf("%q: permanent %v failTemp %v, want %v %v", tc.args, d.RBLPermanent, d.FailTemp, tc.permanent, tc.failTemp)
		}
	}
	t.Run("-t 0 refuses at the greeting", func(t *testing.T) {
		cfg, err := loadWith(t, config.Chain, "-t", "0")
		if err != nil || cfg.Dialogue.RefuseAt != frontend.AtGreeting {
			t.Fatalf("err %v dialogue %+v", err, cfg.Dialogue)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{srv, "--dnsbl", "bad zone"},
			{srv, "--dnsbl", "bl.example=300.0.0.1"},
			{srv, "--dnsbl", "bl.example*x"},
			{srv, "--dnswl", "1.2.3.4"},
			{srv, "--dnsbl", "bl.example", "--dns-fail", "maybe"},
			{"--dnsbl", "bl.example", "--dns-server", "resolver.example:53"},
			{"--dnsbl", "bl.example", "--dns-server", "127.0.0.1:99999"},
			{srv, "--dnsbl", "bl.example", "--dnsbl-reply", "other.example=text"},
			{srv, "--dnsbl", "bl.example", "--dnsbl-reply", "bl.example"},
			{"--dnsbl-reply", "bl.example=text"},
			{"-t", "30s"},
			{"-t", "-1"},
			{srv, "--dnsbl", "bl.example", "--dns-timeout", "0s"},
		} {
			_, err := loadWith(t, config.Chain, args...)
			if code, _, hint := run.Describe(err); code != run.ExitUsage || hint == "" {
				t.Errorf("%q: error %v, want a usage error with a hint", args, err)
			}
		}
	})
}

// oneAnswer is a DNS server on 127.0.0.1 that answers every A query with
// addr (TTL 300) but the test point 127.0.0.1.
func oneAnswer(t *testing.T, addr string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP(addr)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Qtype == dns.TypeA && !strings.HasPrefix(q.Question[0].Name, "1.0.0.127.") {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA,
				Class: dns.ClassINET, Ttl: 300}, A: ip})
		}
		_ = w.WriteMsg(m)
	})}
	testpeer.ServeDNS(t, srv)
	return pc.LocalAddr().String()
}

// Serve mode keeps one cache for all connections; chain and check modes
// ask every time.
func TestLoadDNSCacheByMode(t *testing.T) {
	addr := oneAnswer(t, "127.0.0.2")
	ip := netip.MustParseAddr("192.0.2.9")
	for _, tc := range []struct {
		m      config.Mode
		cached bool
	}{{config.Chain, false}, {config.Check, false}, {config.Serve, true}} {
		cfg, err := loadWith(t, tc.m, "--dns-server", addr, "--dnsbl", "bl.example")
		if err != nil {
			t.Fatal(err)
		}
		c := cfg.Policy.DNS.Checker
		c.Check(context.Background(), ip)
		if r := c.Check(context.Background(), ip); r.Zones[0].Cached != tc.cached || !r.Zones[0].Listed {
			t.Errorf("mode %d: second answer cached %v listed %v", tc.m, r.Zones[0].Cached, r.Zones[0].Listed)
		}
	}
}

// check --lists: each zone's status, exit 0 only when all are ok.
func TestCheckLists(t *testing.T) {
	good := oneAnswer(t, "127.0.0.2")
	refusing := oneAnswer(t, "127.255.255.254")
	check := func(args ...string) (string, int) {
		var out bytes.Buffer
		app := checkApp()
		app.Writer, app.ErrWriter = &out, &out
		app.ExitErrHandler = func(*cli.Context, error) {}
		err := app.RunContext(context.Background(), append([]string{"check"}, permute(args, checkFlags())...))
		code := run.Report(err, &out)
		return out.String(), code
	}
	out, code := check("--lists", "--dns-server", good, "--dnsbl", "bl.example", "--dnswl", "wl.example")
	if code != 0 || !strings.Contains(out, "bl.example: ok (") || !strings.Contains(out, "wl.example: ok (") || !strings.Contains(out, "lists: all ok") {
		t.Errorf("healthy lists: exit %d\n%s", code, out)
	}
	out, code = check("--lists", "--dns-server", refusing, "--dnsbl", "bl.example")
	if code != 1 || !strings.Contains(out, "bl.example: refusing (") || !strings.Contains(out, "lists: 1 not ok") {
		t.Errorf("refusing list: exit %d\n%s", code, out)
	}
	if out, code = check("--lists"); code != run.ExitUsage || !strings.Contains(out, "no DNS lists configured") {
		t.Errorf("no lists: exit %d\n%s", code, out)
	}
	if out, code = check("--lists", "--dns-server", good, "--dnsbl", "bl.example", "192.0.2.1"); code != run.ExitUsage {
		t.Errorf("--lists with an IP: exit %d\n%s", code, out)
	}
}
