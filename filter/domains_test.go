package filter

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// zoneEntry is how the test DNS server answers for one name.
type zoneEntry struct {
	rcode       int  // dns.RcodeSuccess unless set
	mx, a, aaaa bool // which records the name has
	silent      bool // never answer: the client times out
	truncUDP    bool // over UDP, answer truncated and empty (the records come over TCP)
}

// dnsServer is a DNS server on 127.0.0.1:PORT (UDP and TCP) answering from
// a fixed table; names not in it are NXDOMAIN. Tests never ask the
// resolver of /etc/resolv.conf.
type dnsServer struct {
	Addr string
	mu   sync.Mutex
	asks []string // "udp MX name." for each question received
}

func startDNS(t *testing.T, zone map[string]zoneEntry) *dnsServer {
	t.Helper()
	s := &dnsServer{}
	pc, ln := testpeer.ListenUDPTCP(t)
	s.Addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		q := r.Question[0]
		network := w.LocalAddr().Network()
		s.mu.Lock()
		s.asks = append(s.asks, network+" "+dns.TypeToString[q.Qtype]+" "+q.Name)
		s.mu.Unlock()
		e, ok := zone[strings.ToLower(q.Name)]
		m := new(dns.Msg)
		m.SetReply(r)
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case e.silent:
			return
		case e.rcode != dns.RcodeSuccess:
			m.Rcode = e.rcode
		case e.truncUDP && network == "udp":
			m.Truncated = true
		default:
			rr := func(s string) {
				r, err := dns.NewRR(s)
				if err != nil {
					panic(err)
				}
				m.Answer = append(m.Answer, r)
			}
			switch {
			case q.Qtype == dns.TypeMX && e.mx:
				rr(q.Name + " 60 IN MX 10 mx." + q.Name)
			case q.Qtype == dns.TypeA && e.a:
				rr(q.Name + " 60 IN A 192.0.2.1")
			case q.Qtype == dns.TypeAAAA && e.aaaa:
				rr(q.Name + " 60 IN AAAA 2001:db8::1")
			}
		}
		w.WriteMsg(m)
	})
	testpeer.ServeDNS(t, &dns.Server{PacketConn: pc, Handler: h})
	testpeer.ServeDNS(t, &dns.Server{Listener: ln, Handler: h})
	return s
}

func (s *dnsServer) questions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asks...)
}

var testZone = map[string]zoneEntry{
	"mx.test.":        {mx: true},
	"a-only.test.":    {a: true},
	"aaaa-only.test.": {aaaa: true},
	"nodata.test.":    {},
	"servfail.test.":  {rcode: dns.RcodeServerFailure},
	"refused.test.":   {rcode: dns.RcodeRefused},
	"silent.test.":    {silent: true},
	"big.test.":       {mx: true, truncUDP: true},
}

// TestDomainExists: MX or A or AAAA exists; NXDOMAIN and three empty
// answers do not; a SERVFAIL, a REFUSED or a timeout is an error (unsure);
// a truncated UDP answer is asked again over TCP.
func TestDomainExists(t *testing.T) {
	srv := startDNS(t, testZone)
	for _, tc := range []struct {
		domain  string
		exists  bool
		wantErr string
	}{
		{"mx.test", true, ""},
		{"MX.Test", true, ""},
		{"a-only.test", true, ""},
		{"aaaa-only.test", true, ""},
		{"nxdomain.test", false, ""},
		{"nodata.test", false, ""},
		{"servfail.test", true, "SERVFAIL"},
		{"refused.test", true, "REFUSED"},
		{"silent.test", true, "timeout"},
		{"big.test", true, ""},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			ok, err := DomainExists(context.Background(), srv.Addr, tc.domain, 300*time.Millisecond)
			if ok != tc.exists {
				t.Errorf("exists %v, want %v (err %v)", ok, tc.exists, err)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one saying %s", err, tc.wantErr)
			case err != nil && !strings.Contains(err.Error(), srv.Addr) || err != nil && !strings.Contains(err.Error(), tc.domain):
				t.Errorf("error %q does not say which server and domain", err)
			}
		})
	}
	var tcp []string
	for _, q := range srv.questions() {
		if strings.HasPrefix(q, "tcp ") {
			tcp = append(tcp, q)
		}
	}
	if len(tcp) != 1 || tcp[0] != "tcp MX big.test." {
		t.Errorf("questions over TCP: %q, want only big.test's MX after the truncated UDP answer", tcp)
	}
}

func domainsMessage(from string) string {
	return "From: Someone <someone@" + from + ">\nReply-To: other@mx.test\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nSubject: x\n\nbody\n"
}

// TestHeaderDomainsExist: the domains check through Judge, its verdict and
// its part of the log line; unsure (SERVFAIL, timeout) accepts, and the log
// line says so at WARN.
func TestHeaderDomainsExist(t *testing.T) {
	srv := startDNS(t, testZone)
	for _, tc := range []struct {
		from   string
		reply  string
		result string // the domains check's result in the log line
		warn   bool
	}{
		{"mx.test", "250 2.0.0 message accepted", "domains=pass/", false},
		{"a-only.test", "250 2.0.0 message accepted", "domains=pass/", false},
		{"nxdomain.test", "554 5.1.8 domain in the message header does not exist: nxdomain.test", "domains=found(domain in the message header does not exist: nxdomain.test)->reject/", true},
		{"nodata.test", "554 5.1.8 domain in the message header does not exist: nodata.test", "domains=found(", true},
		{"servfail.test", "250 2.0.0 message accepted", "domains=unsure(dns " + srv.Addr + ": servfail.test MX: SERVFAIL)->accept/", true},
		{"silent.test", "250 2.0.0 message accepted", "domains=unsure(dns " + srv.Addr + ": silent.test MX: ", true},
	} {
		t.Run(tc.from, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.HeaderDomainsExist = true
			cfg.DNSServer = srv.Addr
			cfg.DNSTimeout = 300 * time.Millisecond
			m := &Message{Spool: spool(t, domainsMessage(tc.from)), Env: Envelope{Sender: "someone@" + tc.from, Recipients: []string{"b@example.test"}}}
			rep := cfg.Judge(context.Background(), m)
			if rep.Verdict.Reply() != tc.reply {
				t.Errorf("reply %q, want %q", rep.Verdict.Reply(), tc.reply)
			}
			var log bytes.Buffer
			LogLine(slog.New(slog.NewTextHandler(&log, nil)), "check", m, rep, time.Millisecond)
			line := log.String()
			if strings.Count(line, "\n") != 1 || !strings.Contains(line, tc.result) {
				t.Errorf("log line lacks %q:\n%s", tc.result, line)
			}
			if got := strings.Contains(line, "level=WARN"); got != tc.warn {
				t.Errorf("log level WARN %v, want %v:\n%s", got, tc.warn, line)
			}
		})
	}
	// The check is off by default: no question is asked.
	before := len(srv.questions())
	cfg := DefaultConfig()
	cfg.DNSServer = srv.Addr
	rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, domainsMessage("nxdomain.test"))})
	if rep.Verdict.Action != Accept || len(srv.questions()) != before {
		t.Errorf("without --header-domains-exist: %q, %d questions", rep.Verdict.Reply(), len(srv.questions())-before)
	}
}

// TestAddressDomains: the domains asked about come from From, Sender and
// Reply-To, each once, lower-case, without address literals.
func TestAddressDomains(t *testing.T) {
	st, err := Analyze(strings.NewReader("From: A <a@One.test>, b@two.test\nSender: s@one.test\nReply-To: r@[192.0.2.1], group: g@three.test;\nTo: t@four.test\nCc: c@five.test\n\n"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(addressDomains(st.Header, "From", "Sender", "Reply-To"), " ")
	if got != "one.test two.test three.test" {
		t.Errorf("domains %q", got)
	}
}
