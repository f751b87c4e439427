package filter_test

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// startDNS serves MX and A records for a few names on 127.0.0.1:PORT over
// UDP; every other name is NXDOMAIN, and servfail.test is SERVFAIL.
//
// A small miekg/dns server stands in for a real resolver here, the one
// place in this suite where the real peer cannot be used: rbldnsd (the
// suite's DNS server elsewhere) serves only A and TXT list entries, never
// MX, and a real recursive resolver would go to the Internet. The test
// never asks the resolver of /etc/resolv.conf.
func startDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]string{
		"example.org.":     "example.org. 60 IN MX 10 mx.example.org.",
		"a-only.test.":     "a-only.test. 60 IN A 192.0.2.1",
		"mx.example.org.":  "mx.example.org. 60 IN A 192.0.2.2",
		"servfail.test.":   "",
		"example.test.":    "example.test. 60 IN MX 10 mx.example.test.",
		"mx.example.test.": "mx.example.test. 60 IN A 192.0.2.3",
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		q := r.Question[0]
		m := new(dns.Msg)
		m.SetReply(r)
		rec, ok := records[strings.ToLower(q.Name)]
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case rec == "":
			m.Rcode = dns.RcodeServerFailure
		default:
			if rr, err := dns.NewRR(rec); err == nil && rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		w.WriteMsg(m)
	})}
	testpeer.ServeDNS(t, srv)
	return pc.LocalAddr().String()
}

// TestHeaderDomainsExist: mxfilter check --header-domains-exist asks the
// --dns-server given: a From domain with MX or only A passes, an NXDOMAIN
// one is refused (exit 20, 554 5.1.8), and a SERVFAIL passes (unsure means
// accept) with the failure in the log line at WARN.
func TestHeaderDomainsExist(t *testing.T) {
	addr := startDNS(t)
	msg := func(from string) string {
		return "From: Alice <alice@" + from + ">\nTo: bob@example.test\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nSubject: domains\n\nHello.\n"
	}
	env := []string{"MAIL_FROM=alice@example.org", "RCPT_TO=bob@example.test"}
	for _, tc := range []struct {
		from  string
		code  int
		reply string
		log   string
	}{
		{"example.org", 0, "250 2.0.0 message accepted", "domains=pass/"},
		{"a-only.test", 0, "250 2.0.0 message accepted", "domains=pass/"},
		{"no-such-domain.test", 20, "554 5.1.8 domain in the message header does not exist: no-such-domain.test", "domains=found("},
		{"servfail.test", 0, "250 2.0.0 message accepted", "domains=unsure(dns " + addr + ": servfail.test MX: SERVFAIL)->accept/"},
	} {
		out, log, code := check(t, msg(tc.from), env, "--header-domains-exist", "--dns-server", addr, "--dns-timeout", "2s")
		if code != tc.code || lastLine(out) != tc.reply {
			t.Errorf("%s: exit %d %q, want %d %q\n%s", tc.from, code, out, tc.code, tc.reply, log)
		}
		if !strings.Contains(log, tc.log) || strings.Count(log, "\n") != 1 {
			t.Errorf("%s: log line lacks %q:\n%s", tc.from, tc.log, log)
		}
		if wantWarn := tc.from == "servfail.test" || tc.code != 0; strings.Contains(log, "level=WARN") != wantWarn {
			t.Errorf("%s: log level WARN %v, want %v:\n%s", tc.from, !wantWarn, wantWarn, log)
		}
	}
}
