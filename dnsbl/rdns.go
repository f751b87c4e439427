package dnsbl

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Reverse DNS: the client's PTR names and whether one of them resolves
// back to the client's address (forward-confirmed, as ucspi-tcp's -p and
// Postfix's reject_unknown_client_hostname see it), asked in the same
// exchange as the lists and within the same deadline: the PTR question
// goes out with the lists' questions, and the forward questions as soon
// as the PTR answer is in.

const typePTR = 12

// Bounds on what a hostile answer can make us keep and ask.
const (
	// MaxPTR is how many PTR names of one answer are kept.
	MaxPTR = 8
	// MaxForward is how many of them are asked forward (A or AAAA).
	MaxForward = 3
	// maxHost is the longest host name in text (RFC 1035: 255 octets on
	// the wire, 253 characters without the final dot).
	maxHost = 253
	// maxCachedAddrs bounds the forward answers serve's cache keeps: the
	// name's owner chooses how many records it has (thousands fit in a
	// TCP answer), and a cache entry must stay small. A larger answer is
	// used, whole, for the client at hand, and asked again next time.
	maxCachedAddrs = 64
)

// ptrRecords are the PTR records of an answer.
type ptrRecords struct {
	names []string // at most MaxPTR, as nameText gives them (final dot kept)
	count int      // all of them
}

// ptrRecord takes a PTR record of the answer section: of class IN, for the
// name asked (or the one a CNAME points to: RFC 2317's classless
// delegation), of the type asked; its data one name that fills it.
func (r *records) ptrRecord(msg []byte, h rr, qtype uint16, owner int) error {
	switch {
	case h.class != classINET:
		return fmt.Errorf("PTR record of class %d, not IN", h.class)
	case !sameName(msg, h.owner, owner):
		return fmt.Errorf("PTR record for %s, not for %s", nameText(msg, h.owner), nameText(msg, owner))
	case h.rrtype != qtype:
		return fmt.Errorf("PTR record in the answer to a question of type %d", qtype)
	}
	end, err := nameEnd(msg[:h.end], h.start)
	if err != nil {
		return fmt.Errorf("PTR record: %w", err)
	}
	if end != h.end {
		return fmt.Errorf("PTR record: %d octets after the name", h.end-end)
	}
	if r.ptr == nil {
		r.ptr = &ptrRecords{}
	}
	r.ptr.count++
	if len(r.ptr.names) < MaxPTR {
		r.ptr.names = append(r.ptr.names, nameText(msg, h.start))
	}
	return nil
}

// RDNSState is what reverse DNS says of a client.
type RDNSState uint8

const (
	// RDNSNone: no PTR record (NXDOMAIN, or an answer without one).
	RDNSNone RDNSState = iota
	// RDNSConfirmed: a PTR name whose A (or AAAA) records hold the client's
	// address.
	RDNSConfirmed
	// RDNSUnconfirmed: PTR names, none of which resolves back to the
	// client (or none of which is a host name).
	RDNSUnconfirmed
	// RDNSError: DNS could not tell (a timeout, SERVFAIL, an answer that
	// cannot be read), for the PTR or for a forward question that might
	// have confirmed the name. Never "no name".
	RDNSError
)

func (s RDNSState) String() string {
	switch s {
	case RDNSConfirmed:
		return "confirmed"
	case RDNSUnconfirmed:
		return "unconfirmed"
	case RDNSError:
		return "error"
	}
	return "none"
}

// Forward is one forward question about a PTR name.
type Forward struct {
	Name   string       // the host name asked
	Addrs  []netip.Addr // its A (IPv4 client) or AAAA (IPv6 client) records, at most MaxPTR (the client first if there)
	Match  bool         // they hold the client's address
	Cached bool         // the answer came from the cache
	Err    *Error       // non-nil: it could not be asked
}

// RDNS is what reverse DNS said of one client.
type RDNS struct {
	State RDNSState
	// Name is the confirmed name; for an unconfirmed client the first
	// PTR name (escaped as PTRNames are), so the log can show it. Empty
	// for none and for an error of the PTR question.
	Name string
	// Query is the PTR question's name (7.2.0.192.in-addr.arpa).
	Query string
	// PTRNames are the PTR answer's names (at most MaxPTR), lower-cased,
	// without the final dot; an octet other than a letter, digit, '-',
	// '_' or '.' is written \DDD, so they are safe to log.
	PTRNames []string
	// PTRCount is how many PTR records the answer held.
	PTRCount int
	// Forward are the forward questions asked (at most MaxForward, of
	// the PTR names that are host names).
	Forward []Forward
	// Notes say what was odd in the answers and left out (a name that is
	// not a host name, records beyond the bounds), for the log.
	Notes    []string
	Cached   bool          // the PTR answer came from the cache
	Duration time.Duration // from the start of the Check to the last answer
	Err      *Error        // State RDNSError: what failed
}

// String is MXFRONT_RDNS's value: "confirmed NAME", "unconfirmed NAME",
// "none" or "error".
func (r *RDNS) String() string {
	if r == nil {
		return ""
	}
	if (r.State == RDNSConfirmed || r.State == RDNSUnconfirmed) && r.Name != "" {
		return r.State.String() + " " + r.Name
	}
	return r.State.String()
}

// Host is the forward-confirmed name, for TCPREMOTEHOST: only letters,
// digits, '-' and '.'; "" unless confirmed.
func (r *RDNS) Host() string {
	if r == nil || r.State != RDNSConfirmed {
		return ""
	}
	return r.Name
}

// ReverseName is the PTR question's name for ip: "7.2.0.192.in-addr.arpa",
// or the ip6.arpa nibble form.
func ReverseName(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is4() {
		return QueryName(ip, "in-addr.arpa")
	}
	return QueryName(ip, "ip6.arpa")
}

// IsHostName reports whether s is a host name as TCPREMOTEHOST may carry
// it: dot-separated labels of 1 to 63 letters, digits and hyphens, not
// starting or ending with a hyphen, at most 253 characters, no final dot.
func IsHostName(s string) bool {
	if s == "" || len(s) > maxHost {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > maxLabel || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// rdnsLookup is one Check's reverse-DNS questions. Its tags follow the
// zones': tag0 is the PTR question, tag0+1+j the forward question j.
type rdnsLookup struct {
	ip      netip.Addr
	tag0    int
	qtype   uint16 // of the forward questions: A or AAAA
	out     RDNS
	ptrDone bool
	ptrErr  *Error
}

// askRDNS starts the reverse lookups of ip in k's exchange.
func (c *Checker) askRDNS(k checking, ip netip.Addr) *rdnsLookup {
	l := &rdnsLookup{ip: ip, tag0: len(c.names), qtype: typeA}
	if ip.Is6() {
		l.qtype = typeAAAA
	}
	l.out.Query = ReverseName(ip)
	if l.out.Query == "" {
		l.ptrDone = true
		l.ptrErr = &Error{Zone: "rdns", Query: "(none)", Cause: Broken, Detail: "invalid client address"}
		return l
	}
	if e, ok := c.cache.get(cacheKey{l.out.Query, typePTR}); ok {
		l.out.Cached = true
		l.gotPTR(c, k, e.names, e.count)
		return l
	}
	k.x.ask(l.out.Query+".", typePTR, l.tag0)
	return l
}

// got takes the answer to one of l's questions.
func (l *rdnsLookup) got(c *Checker, k checking, q *question) {
	if q.tag == l.tag0 {
		var names []string
		count := 0
		if q.err != nil {
			l.ptrDone = true
			l.ptrErr = c.zoneError("rdns", l.out.Query, nil, q.err, k.budget)
			l.out.Duration = time.Since(k.start)
			return
		}
		ttl := negativeTTL(&q.ans)
		if p := q.ans.ptr; p != nil {
			names, count, ttl = p.names, p.count, q.ans.ttl
		}
		if textLen(names) <= maxCachedPTRText {
			c.cache.put(cacheKey{l.out.Query, typePTR}, cacheEntry{names: names, count: count}, ttl)
		}
		l.gotPTR(c, k, names, count)
		return
	}
	j := q.tag - l.tag0 - 1
	if j < 0 || j >= len(l.out.Forward) {
		return
	}
	f := &l.out.Forward[j]
	if q.err != nil {
		f.Err = c.zoneError("rdns", f.Name, nil, q.err, k.budget)
	} else {
		addrs, ttl := forwardAddrs(&q.ans, l.qtype)
		if len(addrs) <= maxCachedAddrs {
			c.cache.put(cacheKey{f.Name, l.qtype}, cacheEntry{addrs: addrs}, ttl)
		}
		l.gotForward(f, addrs)
	}
	l.out.Duration = time.Since(k.start)
}

// maxCachedPTRText bounds the names' text of a cached PTR answer: the
// owner of a reverse zone picks the names (8 escaped names fill ~8 KB),
// and 50,000 such entries would be 400 MB. A larger answer is used, not
// kept.
const maxCachedPTRText = 1024

func textLen(names []string) int {
	n := 0
	for _, s := range names {
		n += len(s)
	}
	return n
}

// forwardAddrs returns the A or AAAA records of an answer and how long it
// may be kept (as addrsOf).
func forwardAddrs(r *records, qtype uint16) ([]netip.Addr, uint32) {
	if qtype == typeA {
		return addrsOf(r)
	}
	if r.mail == nil || len(r.mail.addrs) == 0 {
		return nil, negativeTTL(r)
	}
	return r.mail.addrs, r.ttl
}

// gotPTR takes the PTR names and asks the first host names forward.
func (l *rdnsLookup) gotPTR(c *Checker, k checking, names []string, count int) {
	l.ptrDone = true
	l.out.PTRCount = count
	l.out.Duration = time.Since(k.start)
	if count > len(names) {
		l.out.Notes = append(l.out.Notes, fmt.Sprintf("%d PTR records: kept %d", count, len(names)))
	}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if slices.Contains(l.out.PTRNames, n) {
			continue
		}
		l.out.PTRNames = append(l.out.PTRNames, n)
		switch {
		case !IsHostName(n):
			l.out.Notes = append(l.out.Notes, "PTR name "+n+" is not a host name: not asked")
			continue
		case len(l.out.Forward) == MaxForward:
			l.out.Notes = append(l.out.Notes, "PTR name "+n+" not asked: "+fmt.Sprint(MaxForward)+" names are")
			continue
		}
		l.out.Forward = append(l.out.Forward, Forward{Name: n})
		j := len(l.out.Forward) - 1
		if e, ok := c.cache.get(cacheKey{n, l.qtype}); ok {
			l.out.Forward[j].Cached = true
			l.gotForward(&l.out.Forward[j], e.addrs)
			continue
		}
		k.x.ask(n+".", l.qtype, l.tag0+1+j)
	}
}

// gotForward judges a forward answer by all its records (a pool's name
// may have many, the client's among the last), and keeps MaxPTR of them
// to show, the client's first when it is there.
func (l *rdnsLookup) gotForward(f *Forward, addrs []netip.Addr) {
	f.Match = slices.Contains(addrs, l.ip)
	if len(addrs) > MaxPTR {
		if f.Match {
			addrs = append([]netip.Addr{l.ip}, slices.DeleteFunc(slices.Clone(addrs), func(a netip.Addr) bool { return a == l.ip })...)
		}
		addrs = addrs[:MaxPTR]
	}
	f.Addrs = slices.Clone(addrs)
}

// result judges the answers, once the exchange is over.
func (l *rdnsLookup) result() *RDNS {
	r := l.out
	switch {
	case l.ptrErr != nil:
		r.State, r.Err = RDNSError, l.ptrErr
		return &r
	case len(r.PTRNames) == 0:
		r.State = RDNSNone
		return &r
	}
	for _, f := range r.Forward {
		if f.Err == nil && f.Match {
			r.State, r.Name = RDNSConfirmed, f.Name
			return &r
		}
	}
	r.Name = r.PTRNames[0]
	for _, f := range r.Forward {
		if f.Err != nil {
			// It might have confirmed the name: unsure.
			r.State, r.Err = RDNSError, f.Err
			return &r
		}
	}
	r.State = RDNSUnconfirmed
	return &r
}
