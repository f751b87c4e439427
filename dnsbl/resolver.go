package dnsbl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ednsSize is the EDNS0 UDP payload we offer (the DNS flag day 2020 value).
const ednsSize = 1232

// ServersFromResolvConf returns the name servers of a resolv.conf file as
// HOST:PORT (port 53), in the file's order. This is the production default;
// tests pass their own servers.
func ServersFromResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dnsbl: %v", err)
	}
	defer f.Close()
	var servers []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		host := fields[1]
		// A link-local server carries its interface: fe80::1%eth0.
		if _, err := netip.ParseAddr(host); err != nil {
			continue
		}
		servers = append(servers, net.JoinHostPort(host, "53"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dnsbl: %s: %v", path, err)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("dnsbl: %s: no nameserver line", path)
	}
	return servers, nil
}

// checkServer accepts HOST:PORT with a numeric host.
func checkServer(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err == nil && port == "" {
		err = errors.New("missing port")
	}
	if err == nil {
		_, err = netip.ParseAddr(host)
	}
	if err != nil {
		return fmt.Errorf("dnsbl: bad DNS server %q: need IP:PORT (%v)", s, err)
	}
	return nil
}

// resolver asks the configured servers, rotating through them on failure.
type resolver struct {
	servers  []string
	try      time.Duration // one attempt's wait for an answer
	attempts int
	udp, tcp *dns.Client
}

func newResolver(servers []string, try time.Duration) *resolver {
	return &resolver{
		servers:  servers,
		try:      try,
		attempts: max(3, 2*len(servers)),
		udp:      &dns.Client{Net: "udp", UDPSize: ednsSize},
		tcp:      &dns.Client{Net: "tcp"},
	}
}

// ask puts one question until a server answers NOERROR or NXDOMAIN, the
// attempts are spent or ctx ends. Each attempt goes to the next server.
// When no server answered usefully, the error says why, a DNS error code
// being more telling than a timeout.
func (r *resolver) ask(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	var lastRcode, lastErr error
	for i := 0; i < r.attempts && ctx.Err() == nil; i++ {
		m, err := r.exchange(ctx, r.servers[i%len(r.servers)], name, qtype)
		switch {
		case err != nil:
			lastErr = err
		case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
			return m, nil
		default:
			lastRcode = rcodeError{m.Rcode}
		}
		if err != nil && ctx.Err() == nil && !isTimeout(err) {
			// A refused connection fails at once: do not spin through
			// the attempts faster than a server could answer.
			pause(ctx, r.try/10)
		}
	}
	switch {
	case lastRcode != nil:
		return nil, lastRcode
	case ctx.Err() != nil || lastErr == nil || isTimeout(lastErr):
		return nil, errTimeout
	}
	return nil, lastErr
}

// exchange makes one attempt with one server: UDP with EDNS0, TCP when the
// answer is truncated, and once more without EDNS0 if the server does not
// understand it.
func (r *resolver) exchange(ctx context.Context, server, name string, qtype uint16) (*dns.Msg, error) {
	actx, cancel := context.WithTimeout(ctx, r.try)
	defer cancel()
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(ednsSize, false)
	m, _, err := r.udp.ExchangeContext(actx, q, server)
	if m != nil && m.Truncated {
		m, _, err = r.tcp.ExchangeContext(actx, q, server)
	}
	if err == nil && m.Rcode == dns.RcodeFormatError && actx.Err() == nil {
		q.Extra = nil
		m, _, err = r.udp.ExchangeContext(actx, q, server)
		if m != nil && m.Truncated {
			m, _, err = r.tcp.ExchangeContext(actx, q, server)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, name) || m.Question[0].Qtype != qtype {
		return nil, errors.New("answer to another question")
	}
	return m, nil
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

var errTimeout = errors.New("timeout")

type rcodeError struct{ rcode int }

func (e rcodeError) Error() string { return dns.RcodeToString[e.rcode] }
