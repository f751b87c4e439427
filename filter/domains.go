package filter

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DomainExists asks server (HOST:PORT) whether domain has an MX, A or AAAA
// record. It answers false only on a definite NXDOMAIN or on three empty
// answers; any failure is an error, and the caller accepts (unsure means
// accept).
func DomainExists(ctx context.Context, server, domain string, timeout time.Duration) (bool, error) {
	for _, t := range []uint16{dns.TypeMX, dns.TypeA, dns.TypeAAAA} {
		r, err := query(ctx, server, domain, t, timeout)
		if err != nil {
			return true, fmt.Errorf("dns %s: %s %s: %w", server, domain, dns.TypeToString[t], err)
		}
		switch r.Rcode {
		case dns.RcodeNameError:
			return false, nil
		case dns.RcodeSuccess:
			if len(r.Answer) > 0 {
				return true, nil
			}
		default:
			return true, fmt.Errorf("dns %s: %s %s: %s", server, domain, dns.TypeToString[t], dns.RcodeToString[r.Rcode])
		}
	}
	return false, nil
}

// query asks one question over UDP, and again over TCP when the answer was
// truncated: a truncated answer may hold no records at all, and reading it
// as "no such record" would refuse mail for a domain that has them.
func query(ctx context.Context, server, domain string, qtype uint16, timeout time.Duration) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(domain), qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)
	c := &dns.Client{Timeout: timeout, UDPSize: 1232}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err != nil || !r.Truncated {
		return r, err
	}
	c.Net = "tcp"
	r, _, err = c.ExchangeContext(ctx, m, server)
	if err == nil && r.Truncated {
		return nil, fmt.Errorf("answer truncated over TCP too")
	}
	return r, err
}

// DefaultDNSServer is the first nameserver in /etc/resolv.conf, for when
// --dns-server is not given.
func DefaultDNSServer() string {
	cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(cfg.Servers) == 0 {
		return "127.0.0.1:53"
	}
	return net.JoinHostPort(cfg.Servers[0], cfg.Port)
}

// addressDomains returns the domains of the addresses in the named header
// fields, each once, lower-case (address literals left out).
func addressDomains(h Header, fields ...string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range headerAddresses(h, fields...) {
		if i := strings.LastIndexByte(a, '@'); i >= 0 {
			d := strings.ToLower(strings.TrimSuffix(a[i+1:], "."))
			if !seen[d] && !strings.HasPrefix(d, "[") {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
}
