package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Mail domains: whether a sender's domain can receive mail (RFC 5321
// section 5.1: its MX records, else its A or AAAA records as an implicit
// MX; RFC 7505: a null MX says it never does), asked with the same
// resolver code as the lists, without a DNS library.

const (
	typeMX   = 15
	typeAAAA = 28
)

// mailRecords are the MX and AAAA records of an answer.
type mailRecords struct {
	mx    []MX
	addrs []netip.Addr
}

// MX is one MX record.
type MX struct {
	Preference uint16
	Host       string // "." for a null MX
}

// mailRecord takes an MX or AAAA record of the answer section (of class
// IN, for the name asked or the one a CNAME points to, of the type asked);
// other types are skipped, as the lists' answers skip them.
func (r *records) mailRecord(msg []byte, h rr, qtype uint16, owner int) error {
	if h.rrtype == typePTR {
		if qtype != typePTR {
			return nil // skipped, as other types are in the lists' answers
		}
		return r.ptrRecord(msg, h, qtype, owner)
	}
	if h.rrtype != typeMX && h.rrtype != typeAAAA {
		return nil
	}
	what := map[uint16]string{typeMX: "MX", typeAAAA: "AAAA"}[h.rrtype]
	switch {
	case h.class != classINET:
		return fmt.Errorf("%s record of class %d, not IN", what, h.class)
	case !sameName(msg, h.owner, owner):
		return fmt.Errorf("%s record for %s, not for %s", what, nameText(msg, h.owner), nameText(msg, owner))
	case h.rrtype != qtype:
		return fmt.Errorf("%s record in the answer to a question of type %d", what, qtype)
	}
	if r.mail == nil {
		r.mail = &mailRecords{}
	}
	data := msg[h.start:h.end]
	if h.rrtype == typeAAAA {
		if len(data) != 16 {
			return fmt.Errorf("an AAAA record of %d octets", len(data))
		}
		r.mail.addrs = append(r.mail.addrs, netip.AddrFrom16([16]byte(data)))
		return nil
	}
	if len(data) < 3 {
		return fmt.Errorf("an MX record of %d octets", len(data))
	}
	end, err := nameEnd(msg[:h.end], h.start+2)
	if err != nil {
		return fmt.Errorf("MX record: %w", err)
	}
	if end != h.end {
		return fmt.Errorf("MX record: %d octets after the name", h.end-end)
	}
	if len(r.mail.mx) < maxMX {
		r.mail.mx = append(r.mail.mx, MX{Preference: u16(data), Host: nameText(msg, h.start+2)})
	}
	return nil
}

// maxMX bounds the MX records kept of an answer.
const maxMX = 32

// MailDomain is what DNS says of a domain as a mail domain.
type MailDomain struct {
	Domain string
	// NXDomain: the domain does not exist (the MX question's NXDOMAIN).
	NXDomain bool
	// NullMX: its only MX is "0 ." (RFC 7505): it accepts no mail.
	NullMX bool
	// Exists: it has an MX that is not null, or (without MX records) an
	// A or AAAA record.
	Exists bool
	MX     []MX
	// Err is set when DNS could not tell (a timeout, SERVFAIL, an answer
	// that cannot be read): the caller is unsure, and passes.
	Err *Error
}

// Resolver asks about mail domains. It is safe for concurrent use.
type Resolver struct {
	res     *resolver
	timeout time.Duration
}

// NewResolver returns a Resolver asking servers (IP:PORT) within timeout
// (DefaultTimeout when 0); poller as in Config.
func NewResolver(servers []string, timeout time.Duration, poller bool) (*Resolver, error) {
	if len(servers) == 0 {
		return nil, errors.New("dnsbl: no DNS server")
	}
	for _, s := range servers {
		if err := checkServer(s); err != nil {
			return nil, err
		}
	}
	if timeout < 0 {
		return nil, errors.New("dnsbl: negative timeout")
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return &Resolver{res: newResolver(append([]string(nil), servers...), timeout/3, !poller), timeout: timeout}, nil
}

// MailDomain asks for the MX, A and AAAA records of domain at once, within
// the Resolver's timeout (or ctx's deadline when sooner), and judges them.
func (r *Resolver) MailDomain(ctx context.Context, domain string) MailDomain {
	domain = strings.TrimSuffix(strings.ToLower(domain), ".")
	md := MailDomain{Domain: domain}
	start := time.Now()
	deadline := start.Add(r.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	fail := func(cause Cause, detail string) MailDomain {
		md.Err = &Error{Zone: domain, Query: domain, Cause: cause, Detail: detail}
		return md
	}
	if _, err := appendName(nil, domain+"."); err != nil || domain == "" {
		return fail(Broken, "not a domain name")
	}
	x := r.res.start(ctx, deadline)
	defer x.close()
	types := [...]uint16{typeMX, typeA, typeAAAA}
	for i, t := range types {
		x.ask(domain+".", t, i)
	}
	var got [3]*question
	for q := x.next(); q != nil; q = x.next() {
		got[q.tag] = q
	}
	for _, q := range got {
		if q == nil {
			return fail(Timeout, "timeout after "+deadline.Sub(start).Round(time.Millisecond).String())
		}
	}
	mx, a, aaaa := got[0], got[1], got[2]
	if mx.err == nil {
		if m := mx.ans.mail; m != nil && len(m.mx) > 0 {
			md.MX = m.mx
			md.NullMX = true
			for _, e := range m.mx {
				if e.Host != "." {
					md.NullMX = false
				}
			}
			md.Exists = !md.NullMX
			return md
		}
		if mx.ans.nxdomain {
			md.NXDomain = true
			return md
		}
	}
	// No MX (or no answer about it): an address is an implicit MX. An
	// alias (a CNAME) whose target the answer does not show is a name
	// that exists: unsure, so it passes too.
	alias := mx.err == nil && mx.ans.answers > 0 || a.err == nil && a.ans.answers > 0 || aaaa.err == nil && aaaa.ans.answers > 0
	if alias || a.err == nil && len(a.ans.addrs) > 0 || aaaa.err == nil && aaaa.ans.mail != nil && len(aaaa.ans.mail.addrs) > 0 {
		md.Exists = true
		return md
	}
	for _, q := range got {
		if q.err != nil {
			e := (&Checker{}).zoneError(domain, q.name, nil, q.err, deadline.Sub(start))
			md.Err = e
			return md
		}
	}
	return md // neither MX nor address: no mail host
}
