package frontend

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/mxfront/mxfront/dnsbl"
)

// RDNSAction is what the reverse-DNS checks do with a client they judge.
// The stronger action wins when both checks judge one client.
type RDNSAction uint8

const (
	RDNSOff      RDNSAction = iota // nothing
	RDNSLog                        // a reason on the client's line; it passes
	RDNSGreylist                   // greylisted on first contact, even when a skip rule or a DNS allow list would pass it
	RDNSTempfail                   // 450
	RDNSRefuse                     // 550
)

var rdnsActions = [...]string{"off", "log", "greylist", "tempfail", "refuse"}

func (a RDNSAction) String() string {
	if int(a) < len(rdnsActions) {
		return rdnsActions[a]
	}
	return "unknown"
}

// ParseRDNSAction reads --rdns-check's and --rdns-generic-check's values.
func ParseRDNSAction(s string) (RDNSAction, error) {
	for i, n := range rdnsActions {
		if s == n {
			return RDNSAction(i), nil
		}
	}
	return 0, fmt.Errorf("%q is not one of off, log, greylist, tempfail, refuse", s)
}

// RDNSCheck is step 3b of the checks: the client's reverse DNS, asked in
// the DNS lists' exchange (the Checker's RDNS). The zero RDNSCheck only
// reports (MXFRONT_RDNS, TCPREMOTEHOST).
type RDNSCheck struct {
	// Action is for a client without a forward-confirmed name: no PTR,
	// or PTR names none of which resolves back to it (--rdns-check).
	Action RDNSAction
	// Generic holds the patterns of dynamic-pool names
	// (--rdns-generic-file), GenericAction what a match gets.
	Generic       *GenericNames
	GenericAction RDNSAction
	// FailTemp defers (451 4.4.3) a client whose reverse DNS could not be
	// asked when an action stronger than log could apply to it (--dns-fail
	// tempfail). Otherwise such a client passes: unsure means accept.
	FailTemp bool
}

// acts reports whether some action stronger than log is configured.
func (c *RDNSCheck) acts() bool {
	return c.Action >= RDNSGreylist || c.Generic != nil && c.GenericAction >= RDNSGreylist
}

// rdns applies the reverse-DNS checks to v (whose DNS result holds the
// lookups); true means v is final (refused). A client the checks want
// greylisted sets *force.
func (p *Policy) rdns(ip netip.Addr, v *Verdict, force *bool) bool {
	c := p.RDNS
	if c == nil || v.DNS == nil || v.DNS.RDNS == nil {
		return false
	}
	r := v.DNS.RDNS
	if len(r.Notes) > 0 {
		// One line per connection, however odd the answers.
		p.Log.Warn("reverse DNS: odd answer", "ip", ip.String(), "query", r.Query, "notes", strings.Join(r.Notes, "; "))
	}
	if r.State == dnsbl.RDNSError {
		if r.Err != nil && r.Err.Cause == dnsbl.Exhausted {
			nv := tooBusy("rDNS: could not be asked: " + r.Err.Detail)
			nv.DNS = v.DNS
			*v = nv
			return true
		}
		if c.FailTemp && c.acts() {
			nv := p.refuse(ByRDNS, Reply{451, Status{4, 4, 3}, "Temporary DNS lookup failure, try again later"},
				"rDNS: "+rdnsErrText(r)+"; --dns-fail tempfail")
			nv.DNS, nv.Details, nv.Observed = v.DNS, v.Details, v.Observed
			*v = nv
			return true
		}
		if c.acts() {
			v.Reasons = append(v.Reasons, "rDNS: "+rdnsErrText(r)+"; passed (--dns-fail pass)")
		}
		return false
	}
	action, reply, reason := RDNSOff, Reply{}, ""
	if r.State != dnsbl.RDNSConfirmed && c.Action > RDNSOff {
		action, reply, reason = c.Action, unconfirmedReply(ip, r), "rDNS: "+unconfirmedText(ip, r)
	}
	if c.Generic != nil && r.Name != "" {
		if pat, ok := c.Generic.Match(r.Name, ip); ok {
			v.GenericName = true
			if c.GenericAction > action {
				action, reply = c.GenericAction, Reply{550, StatusPolicy,
					fmt.Sprintf("Client host rejected: %s looks like a dynamic address; send through your provider's mail server", r.Name)}
				reason = fmt.Sprintf("rDNS: %s matches the generic pattern %q", r.Name, pat)
			}
		}
	}
	switch action {
	case RDNSOff:
		return false
	case RDNSLog:
		v.Reasons = append(v.Reasons, reason+" (logged: --rdns-check log)")
		return false
	case RDNSGreylist:
		v.Reasons = append(v.Reasons, reason+": greylisted on first contact")
		*force = true
		return false
	case RDNSTempfail:
		// 450, as Postfix gives it, not Temp's 451.
		reply.Code, reply.Status.Class = reply.Code-100, 4
	}
	nv := p.refuse(ByRDNS, reply, reason)
	nv.DNS, nv.Details, nv.Observed, nv.GenericName = v.DNS, v.Details, v.Observed, v.GenericName
	*v = nv
	return true
}

// unconfirmedReply is RFC 7372's 5.7.25, as Postfix gives it.
func unconfirmedReply(ip netip.Addr, r *dnsbl.RDNS) Reply {
	if r.State == dnsbl.RDNSNone {
		return Reply{550, Status{5, 7, 25}, fmt.Sprintf("Client host rejected: cannot find your reverse hostname, [%s]", ip)}
	}
	return Reply{550, Status{5, 7, 25}, fmt.Sprintf("Client host rejected: reverse hostname %s does not resolve to [%s]", r.Name, ip)}
}

func unconfirmedText(ip netip.Addr, r *dnsbl.RDNS) string {
	if r.State == dnsbl.RDNSNone {
		return "no PTR record for " + ip.String()
	}
	return "PTR " + r.Name + " does not resolve to " + ip.String()
}

func rdnsErrText(r *dnsbl.RDNS) string {
	if r.Err == nil {
		return "reverse DNS could not be asked"
	}
	return "reverse DNS could not be asked: " + r.Err.Query + ": " + r.Err.Detail
}

// rdnsDetails are `mxfront check`'s lines for the reverse DNS: the PTR
// question and its names, each forward question and what it held.
func rdnsDetails(r *dnsbl.RDNS) []string {
	ptr := "none"
	switch {
	case r.State == dnsbl.RDNSError && len(r.PTRNames) == 0 && r.Err != nil:
		ptr = "error: " + r.Err.Detail
	case len(r.PTRNames) > 0:
		ptr = strings.Join(r.PTRNames, " ")
		if r.PTRCount > len(r.PTRNames) {
			ptr += fmt.Sprintf(" (%d records; %d kept)", r.PTRCount, len(r.PTRNames))
		}
	}
	if r.Cached {
		ptr += " (cached)"
	}
	out := []string{"rdns: PTR " + r.Query + ": " + ptr}
	for _, f := range r.Forward {
		ans := "none"
		switch {
		case f.Err != nil:
			ans = "error: " + f.Err.Detail
		case len(f.Addrs) > 0:
			ans = joinAddrs(f.Addrs)
		}
		if f.Cached {
			ans += " (cached)"
		}
		match := "does not hold the client"
		if f.Match {
			match = "holds the client: confirmed"
		}
		out = append(out, "rdns: forward "+f.Name+": "+ans+"; "+match)
	}
	for _, n := range r.Notes {
		out = append(out, "rdns: note: "+n)
	}
	return append(out, "rdns: "+r.String())
}

// GenericNames are the patterns of dynamic-pool host names
// (--rdns-generic-file): shell globs (*, ?, [...]) matched against the
// whole lower-cased name, in which %a %b %c %d stand for the client's
// IPv4 octets in decimal, %h for its address as 8 hex digits, and %i for
// its address in any of the forms dynamic pools use (a-b-c-d, a.b.c.d,
// d-c-b-a, d.c.b.a, aaabbbcccddd zero-padded, and the 8 hex digits).
// %% is a percent sign. A pattern with an address placeholder never
// matches an IPv6 client.
type GenericNames struct {
	pats []string
}

// ParseGenericNames reads patterns, one a line; blank lines and lines
// starting with # are skipped, as is text after a blank.
func ParseGenericNames(r io.Reader) (*GenericNames, error) {
	g := &GenericNames{}
	s := bufio.NewScanner(r)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		pat := strings.ToLower(strings.Fields(line)[0])
		if err := checkGeneric(pat); err != nil {
			return nil, fmt.Errorf("line %d: %q: %v", n, pat, err)
		}
		g.pats = append(g.pats, pat)
	}
	return g, s.Err()
}

func checkGeneric(pat string) error {
	for i := 0; i < len(pat); i++ {
		if pat[i] != '%' {
			continue
		}
		if i+1 >= len(pat) || !strings.ContainsRune("abcdhi%", rune(pat[i+1])) {
			return fmt.Errorf("%% is followed by %%a, %%b, %%c, %%d, %%h, %%i or %%%%")
		}
		i++
	}
	if _, err := path.Match(strings.ReplaceAll(pat, "%", "x"), ""); err != nil {
		return err
	}
	return nil
}

// Len is the number of patterns.
func (g *GenericNames) Len() int {
	if g == nil {
		return 0
	}
	return len(g.pats)
}

// Match reports whether name (a host name) matches a pattern for the
// client ip, and which pattern.
func (g *GenericNames) Match(name string, ip netip.Addr) (string, bool) {
	if g == nil {
		return "", false
	}
	name = strings.ToLower(name)
	ip = ip.Unmap()
	for _, p := range g.pats {
		if !strings.Contains(p, "%") {
			if ok, _ := path.Match(p, name); ok {
				return p, true
			}
			continue
		}
		if !ip.Is4() && strings.ContainsAny(strings.ReplaceAll(p, "%%", ""), "%") {
			continue
		}
		for _, form := range addressForms(ip, strings.Contains(p, "%i")) {
			if ok, _ := path.Match(expandGeneric(p, ip, form), name); ok {
				return p, true
			}
		}
	}
	return "", false
}

// addressForms are the texts %i stands for (one empty one without %i).
func addressForms(ip netip.Addr, withI bool) []string {
	if !withI || !ip.Is4() {
		return []string{""}
	}
	b := ip.As4()
	d := func(i int) string { return strconv.Itoa(int(b[i])) }
	return []string{
		d(0) + "-" + d(1) + "-" + d(2) + "-" + d(3),
		d(0) + "." + d(1) + "." + d(2) + "." + d(3),
		d(3) + "-" + d(2) + "-" + d(1) + "-" + d(0),
		d(3) + "." + d(2) + "." + d(1) + "." + d(0),
		fmt.Sprintf("%03d%03d%03d%03d", b[0], b[1], b[2], b[3]),
		fmt.Sprintf("%02x%02x%02x%02x", b[0], b[1], b[2], b[3]),
	}
}

func expandGeneric(p string, ip netip.Addr, form string) string {
	var b strings.Builder
	var o [4]byte
	if ip.Is4() {
		o = ip.As4()
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+1 >= len(p) {
			b.WriteByte(p[i])
			continue
		}
		i++
		switch c := p[i]; c {
		case 'a', 'b', 'c', 'd':
			b.WriteString(strconv.Itoa(int(o[c-'a'])))
		case 'h':
			fmt.Fprintf(&b, "%02x%02x%02x%02x", o[0], o[1], o[2], o[3])
		case 'i':
			b.WriteString(form)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// GreylistName is the name a forward-confirmed client is greylisted by
// with --greylist-by-name: its parent domain (mta7.out.example.net →
// out.example.net), so that a pool of senders retrying from several
// addresses is one sender, as Haraka's hostid makes it. The parent must
// keep two labels, and three under a country code's short second level
// (mx.example.co.uk → example.co.uk, never co.uk); a name too short for
// that is used whole.
func GreylistName(host string) string {
	host = strings.ToLower(host)
	labels := strings.Split(host, ".")
	keep := 2
	if n := len(labels); n >= 2 && len(labels[n-1]) == 2 && len(labels[n-2]) <= 3 {
		keep = 3
	}
	if len(labels)-1 < keep {
		return host
	}
	return strings.Join(labels[1:], ".")
}

// NameKey is where a name's greylist record is kept: an address of
// 100::/64 (RFC 6666's discard prefix, which no client has; the relay's
// triplets are kept there too, from a hash of other input) made of the
// first 64 bits of a SHA-256 of "name", a NUL and the name; recorded as a
// /128.
func NameKey(name string) netip.Addr {
	h := sha256.Sum256([]byte("name\x00" + strings.ToLower(name)))
	var a [16]byte
	a[0] = 0x01
	copy(a[8:], h[:8])
	return netip.AddrFrom16(a)
}
