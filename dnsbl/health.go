package dnsbl

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// Status is a zone's health as its RFC 5782 test points show it.
type Status int

const (
	// OK: 127.0.0.2 is listed and 127.0.0.1 is not.
	OK Status = iota
	// Dead: the test point 127.0.0.2 times out, fails (SERVFAIL, network)
	// or is not listed (NXDOMAIN): the zone is gone or unreachable.
	Dead
	// Refusing: the zone answers with an error code (127.255.255.x) or
	// REFUSED: it will not serve this resolver.
	Refusing
	// AnsweringAll: 127.0.0.1 is listed too: the zone lists everyone and
	// would refuse every client.
	AnsweringAll
	// Unchecked: a test point could not be asked for lack of our own
	// resources (fds, buffers): says nothing of the zone, whose state is
	// left as it was.
	Unchecked
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Dead:
		return "dead"
	case Refusing:
		return "refusing"
	case Unchecked:
		return "unchecked (out of our own resources)"
	}
	return "answering everything"
}

// Health is the state of one zone name.
type Health struct {
	Zone   string
	Status Status
	Detail string // what the test points answered, for the operator
	Hint   string // what the operator can do about a zone not OK
	// IPv6 reports whether the IPv6 test point ::FFFF:7F00:2, asked in
	// nibble form, is listed: the zone answers IPv6 queries. Servers such
	// as rbldnsd answer this IPv4-mapped point from their IPv4 data, so it
	// does not prove the zone holds IPv6 data. Informational: it does not
	// change Status.
	IPv6 bool
}

// probe is what one test point answered.
type probe struct {
	addrs []netip.Addr
	err   *Error
}

func (p probe) String() string {
	switch {
	case p.err != nil:
		return p.err.Detail
	case len(p.addrs) == 0:
		return "not listed"
	}
	s := make([]string, len(p.addrs))
	for i, a := range p.addrs {
		s[i] = a.String()
	}
	return "listed (" + strings.Join(s, " ") + ")"
}

// Health asks every configured zone name about the RFC 5782 test points,
// all in parallel within one deadline, bypassing the cache. Entries' filters
// play no part: a test point counts as listed on any valid answer.
func (c *Checker) Health(ctx context.Context) []Health {
	k := c.begin(ctx)
	defer k.x.close()
	// RFC 5782's test points: 127.0.0.2 is listed, 127.0.0.1 is not, and
	// ::ffff:127.0.0.2 asks the zone in IPv6 form. (Made here, not as
	// package variables: the package then needs no init code, which every
	// chain-mode process would run.)
	points := []netip.Addr{
		netip.AddrFrom4([4]byte{127, 0, 0, 2}),
		netip.AddrFrom4([4]byte{127, 0, 0, 1}),
		netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 0x7f, 15: 2}),
	}
	probes := make([][3]probe, len(c.names))
	for i, name := range c.names {
		for j, ip := range points {
			k.x.ask(reverseName(ip, name)+".", typeA, i*len(points)+j)
		}
	}
	for q := k.x.next(); q != nil; q = k.x.next() {
		i, j := q.tag/len(points), q.tag%len(points)
		name := c.names[i]
		p := &probes[i][j]
		if q.err == nil {
			p.addrs, _ = addrsOf(&q.ans)
		}
		p.err = c.zoneError(name, reverseName(points[j], name), p.addrs, q.err, k.budget)
	}
	out := make([]Health, len(c.names))
	for i, name := range c.names {
		out[i] = health(name, probes[i][0], probes[i][1], probes[i][2])
	}
	return out
}

// health judges a zone by its test points 127.0.0.2 (p2), 127.0.0.1 (p1)
// and ::FFFF:7F00:2 (p6).
func health(zone string, p2, p1, p6 probe) Health {
	h := Health{Zone: zone, IPv6: p6.err == nil && len(p6.addrs) > 0}
	h.Detail = fmt.Sprintf("127.0.0.2 %v; 127.0.0.1 %v; ::FFFF:7F00:2 %v", p2, p1, p6)
	refusing := func(p probe) bool {
		return p.err != nil && (p.err.Cause == ErrorCode || p.err.Cause == Refused)
	}
	exhausted := func(p probe) bool { return p.err != nil && p.err.Cause == Exhausted }
	switch {
	case exhausted(p2) || exhausted(p1):
		h.Status = Unchecked
	case refusing(p2) || refusing(p1):
		h.Status = Refusing
	case len(p1.addrs) > 0:
		// Any answer for 127.0.0.1, even one outside 127/8 (an expired
		// zone's wildcard), means the zone answers everyone.
		h.Status = AnsweringAll
	case p2.err != nil || len(p2.addrs) == 0:
		h.Status = Dead
	default:
		h.Status = OK
	}
	h.Hint = healthHint(h, p2, p1)
	return h
}

// Reason is the text of an Aside for a zone that failed its health
// check: the status and what the test points answered.
func (h Health) Reason() string { return h.Status.String() + ": " + h.Detail }
