package dnsbl

import (
	"bytes"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// The seed corpora are in testdata/fuzz/Fuzz*; these add the basics.

func FuzzParseZone(f *testing.F) {
	for _, s := range []string{"zen.spamhaus.org", "zen.spamhaus.org=127.0.0.[2..11]*3", "swl.example*-4",
		"bl.example=127.0.0.2;127.0.0.3", "bl.example=[127.0.[0..255].[2;4;10]]*+2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		for _, kind := range []Kind{Block, Allow} {
			z, err := ParseZone(spec, kind)
			if err != nil {
				if !strings.HasPrefix(err.Error(), "dnsbl: ") {
					t.Fatalf("error %q", err)
				}
				continue
			}
			if z.Name == "" || z.Name != strings.ToLower(z.Name) || strings.HasSuffix(z.Name, ".") {
				t.Fatalf("%q: name %q", spec, z.Name)
			}
			if z.Weight > MaxWeight || z.Weight < -MaxWeight {
				t.Fatalf("%q: weight %d", spec, z.Weight)
			}
			if kind == Allow && z.Points() > 0 {
				t.Fatalf("%q: an allow zone scores %d", spec, z.Points())
			}
			// A zone that parses makes a query name for any address.
			if q := QueryName(netip.MustParseAddr("2001:db8::1"), z.Name); len(q) > 253 {
				t.Fatalf("%q: query name of %d characters", spec, len(q))
			}
			z2, err := ParseZone(z.String(), kind)
			if err != nil || z2.String() != z.String() || z2.Points() != z.Points() {
				t.Fatalf("%q: String() %q reparses as %q, %v", spec, z.String(), z2.String(), err)
			}
		}
	})
}

// FuzzFilterMatch checks the filter against a second, naive reading of the
// same grammar.
func FuzzFilterMatch(f *testing.F) {
	f.Add("127.0.0.[2..11]", byte(127), byte(0), byte(0), byte(2))
	f.Add("127.0.[0..255].[2;4;10]", byte(127), byte(0), byte(9), byte(4))
	f.Add("127.0.0.2;127.0.0.3", byte(127), byte(0), byte(0), byte(3))
	f.Add("[127.0.0.[2;3]]", byte(127), byte(0), byte(0), byte(4))
	f.Fuzz(func(t *testing.T, pat string, a, b, c, d byte) {
		addr := netip.AddrFrom4([4]byte{a, b, c, d})
		flt, err := ParseFilter(pat)
		want, ok := naiveMatch(pat, [4]byte{a, b, c, d})
		if (err == nil) != ok {
			t.Fatalf("%q: ParseFilter error %v, naive parse ok %v", pat, err, ok)
		}
		if err != nil {
			return
		}
		if got := flt.Match(addr); got != want {
			t.Fatalf("%q on %v: Match %v, naive %v", pat, addr, got, want)
		}
		if flt.Match(netip.IPv6Loopback()) {
			t.Fatalf("%q matches an IPv6 address", pat)
		}
	})
}

// naiveMatch parses and matches in one go, by splitting strings.
func naiveMatch(pat string, ip [4]byte) (match, ok bool) {
	if pat == "" {
		return false, false
	}
	for _, alt := range splitTop(pat) {
		if strings.HasPrefix(alt, "[") && closingBracket(alt) == len(alt)-1 {
			alt = alt[1 : len(alt)-1]
		}
		fields := splitOutside(alt, '.')
		if len(fields) != 4 {
			return false, false
		}
		all := true
		for i, field := range fields {
			m, ok := naiveField(field, ip[i])
			if !ok {
				return false, false
			}
			all = all && m
		}
		match = match || all
	}
	return match, true
}

func naiveField(field string, v byte) (match, ok bool) {
	if n, ok := naiveNumber(field); ok {
		return n == int(v), true
	}
	if len(field) < 3 || field[0] != '[' || field[len(field)-1] != ']' {
		return false, false
	}
	for _, member := range strings.Split(field[1:len(field)-1], ";") {
		lo, hi, isRange := strings.Cut(member, "..")
		l, ok1 := naiveNumber(lo)
		h, ok2 := l, true
		if isRange {
			h, ok2 = naiveNumber(hi)
		}
		if !ok1 || !ok2 || h < l {
			return false, false
		}
		match = match || int(v) >= l && int(v) <= h
	}
	return match, true
}

func naiveNumber(s string) (int, bool) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return 0, true
	}
	if len(s) > 3 {
		return 0, false
	}
	n, _ := strconv.Atoi(s)
	return n, n <= 255
}

// FuzzReply feeds arbitrary DNS messages to the answer reading: whatever
// comes back, an accepted answer is in 127.0.0.0/8 and not an error code,
// the text is safe for an SMTP reply, and an error (which is logged, names
// from the message in it) is printable ASCII of bounded length.
func FuzzReply(f *testing.F) {
	addSeedReplies(f, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		var r reply
		if err := unpack(data, &r); err != nil {
			checkSafeError(t, err)
			return
		}
		if err := mismatch(&question{name: "2.0.0.127.bl.test.", qtype: typeA}, &r); err != nil {
			checkSafeError(t, err)
		}
		addrs, _ := addrsOf(&r.records)
		if cause, _ := checkAnswers(addrs); cause == 0 {
			for _, a := range addrs {
				b := a.As4()
				if !a.Is4() || b[0] != 127 || b[1] == 255 && b[2] == 255 {
					t.Fatalf("answer %v accepted", a)
				}
			}
		}
		txt, _ := txtOf(&r.records)
		checkSafeText(t, txt)
	})
}

func FuzzSanitize(f *testing.F) {
	f.Add("Listed\r\n250 OK\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		checkSafeText(t, sanitize(s))
		checkSafeText(t, expand(s, netip.MustParseAddr("2001:db8::1"), "bl.test"))
	})
}

// checkSafeError fails t unless err's text is printable ASCII, at most
// about four times the longest name escaped.
func checkSafeError(t *testing.T, err error) {
	t.Helper()
	s := err.Error()
	if len(s) > 2500 {
		t.Fatalf("an error of %d bytes: %.100q...", len(s), s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			t.Fatalf("byte %#x in the error %q", s[i], s)
		}
	}
}

func checkSafeText(t *testing.T, s string) {
	t.Helper()
	if len(s) > MaxText {
		t.Fatalf("%d bytes of text", len(s))
	}
	if s != strings.TrimSpace(s) || strings.Contains(s, "  ") {
		t.Fatalf("unfolded blanks in %q", s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			t.Fatalf("byte %#x in %q", s[i], s)
		}
	}
}

func seedReplies() []*dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion("2.0.0.127.bl.test.", dns.TypeA)
	reply := func(rrs ...string) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, s := range rrs {
			rr, err := dns.NewRR(s)
			if err != nil {
				panic(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		return m
	}
	nx := reply()
	nx.Rcode = dns.RcodeNameError
	soa, _ := dns.NewRR("bl.test. 60 IN SOA ns.bl.test. hostmaster.bl.test. 1 3600 600 86400 30")
	nx.Ns = append(nx.Ns, soa)
	return []*dns.Msg{
		reply("2.0.0.127.bl.test. 300 IN A 127.0.0.2"),
		reply("2.0.0.127.bl.test. 300 IN A 127.0.0.2", "2.0.0.127.bl.test. 300 IN A 127.255.255.254"),
		reply("2.0.0.127.bl.test. 300 IN A 192.0.2.1"),
		reply("2.0.0.127.bl.test. 300 IN CNAME x.bl.test.", "x.bl.test. 30 IN A 127.0.0.4"),
		reply(`2.0.0.127.bl.test. 300 IN TXT "Listed\013\010250 OK" "\000\255"`),
		nx,
	}
}

// FuzzUnpack holds unpack against miekg/dns's Unpack: unpack never panics,
// and when both read a message they agree on the header, the question and
// what dnsbl takes from the records, as the miekg/dns based code took it
// (oldAddrsOf, oldTxtOf). unpack is the stricter (see wire.go), so they may
// differ only in what they refuse; and in a truncated message's records,
// which unpack does not read: their facts, and the extended RCODE bits of
// an OPT record (the resolver asks again over TCP whatever the RCODE).
func FuzzUnpack(f *testing.F) {
	addSeedReplies(f, true)
	for _, b := range seedPTRReplies(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r reply
		err := unpack(data, &r)
		m := new(dns.Msg)
		if err != nil || m.Unpack(data) != nil {
			return
		}
		rcode := m.Rcode
		if r.truncated {
			rcode &= 0xf
		}
		if r.id != m.Id || r.response != m.Response || r.truncated != m.Truncated || r.rcode != rcode {
			t.Fatalf("header: ID %d QR %v TC %v rcode %d; miekg/dns: %d %v %v %d",
				r.id, r.response, r.truncated, r.rcode, m.Id, m.Response, m.Truncated, m.Rcode)
		}
		if len(m.Question) != 1 || m.Question[0].Qtype != r.qtype {
			t.Fatalf("question type %d; miekg/dns: %v", r.qtype, m.Question)
		}
		// miekg/dns's name is in presentation format, with escapes.
		name := m.Question[0].Name
		wire := make([]byte, 256)
		n, err := dns.PackDomainName(name, wire, 0, nil, false)
		if err != nil || !bytes.Equal(wire[:n], r.qname) {
			t.Fatalf("question name %q; miekg/dns: %q (%v)", r.qname, name, err)
		}
		if !strings.Contains(name, `\`) && (!nameIs(r.qname, name) || !nameIs(r.qname, strings.ToUpper(name))) {
			t.Fatalf("question name %q is not %q", r.qname, name)
		}
		if r.truncated {
			return
		}
		addrs, ttl := addrsOf(&r.records)
		oldAddrs, oldTTL := oldAddrsOf(m)
		if !slices.Equal(addrs, oldAddrs) || ttl != oldTTL {
			t.Fatalf("A %v TTL %d; miekg/dns: %v %d", addrs, ttl, oldAddrs, oldTTL)
		}
		txt, ttl := txtOf(&r.records)
		oldTXT, oldTTL := oldTxtOf(m)
		if txt != oldTXT || ttl != oldTTL {
			t.Fatalf("TXT %q TTL %d; miekg/dns: %q %d", txt, ttl, oldTXT, oldTTL)
		}
		if neg, old := negativeTTL(&r.records), oldNegativeTTL(m); neg != old {
			t.Fatalf("negative TTL %d; miekg/dns: %d", neg, old)
		}
		// AAAA records (the forward questions of IPv6 clients).
		var v6, oldV6 []netip.Addr
		if r.mail != nil {
			v6 = r.mail.addrs
		}
		for _, rr := range m.Answer {
			if a, ok := rr.(*dns.AAAA); ok {
				if ip, ok := netip.AddrFromSlice(a.AAAA.To16()); ok && len(a.AAAA) == 16 {
					oldV6 = append(oldV6, ip)
				}
			}
		}
		if !slices.Equal(v6, oldV6) {
			t.Fatalf("AAAA %v; miekg/dns: %v", v6, oldV6)
		}
		// PTR names (rdns.go): the same count, and the same names where
		// miekg/dns's presentation needs no escape.
		var names []string
		count := 0
		if r.ptr != nil {
			names, count = r.ptr.names, r.ptr.count
		}
		var old []string
		for _, rr := range m.Answer {
			if p, ok := rr.(*dns.PTR); ok {
				old = append(old, p.Ptr)
			}
		}
		if count != len(old) || len(names) != min(count, MaxPTR) {
			t.Fatalf("PTR: %d records, %d names kept; miekg/dns: %d", count, len(names), len(old))
		}
		for i, n := range names {
			if strings.Trim(old[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" && n != old[i] {
				t.Fatalf("PTR name %d: %q; miekg/dns: %q", i, n, old[i])
			}
		}
	})
}

// seedPTRReplies are answers to a PTR question: a name, several, a
// classless delegation's CNAME, NXDOMAIN, compressed and not.
func seedPTRReplies(f *testing.F) [][]byte {
	q := new(dns.Msg)
	q.SetQuestion("5.2.0.192.in-addr.arpa.", dns.TypePTR)
	var out [][]byte
	for _, rrs := range [][]string{
		{"5.2.0.192.in-addr.arpa. 300 IN PTR mail.example.com."},
		{"5.2.0.192.in-addr.arpa. 300 IN PTR a.example.", "5.2.0.192.in-addr.arpa. 60 IN PTR b.example."},
		{"5.2.0.192.in-addr.arpa. 300 IN CNAME 5.0-25.2.0.192.in-addr.arpa.", "5.0-25.2.0.192.in-addr.arpa. 300 IN PTR mx.example.net."},
		{`5.2.0.192.in-addr.arpa. 300 IN PTR bad\007name.example.`},
		{},
	} {
		for _, compress := range []bool{false, true} {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Compress = compress
			for _, s := range rrs {
				rr, err := dns.NewRR(s)
				if err != nil {
					f.Fatal(err)
				}
				m.Answer = append(m.Answer, rr)
			}
			if len(rrs) == 0 {
				m.Rcode = dns.RcodeNameError
			}
			b, err := m.Pack()
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, b)
		}
	}
	// A forward question of an IPv6 client.
	q6 := new(dns.Msg)
	q6.SetQuestion("mail.example.com.", dns.TypeAAAA)
	m := new(dns.Msg)
	m.SetReply(q6)
	for _, s := range []string{"mail.example.com. 300 IN AAAA 2001:db8::5", "mail.example.com. 60 IN AAAA ::ffff:192.0.2.5"} {
		rr, err := dns.NewRR(s)
		if err != nil {
			f.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	b, err := m.Pack()
	if err != nil {
		f.Fatal(err)
	}
	return append(out, b)
}

// oldAddrsOf, oldNegativeTTL and oldTxtOf are the reading of the answer
// as the miekg/dns based resolver did it.
func oldAddrsOf(m *dns.Msg) ([]netip.Addr, uint32) {
	var addrs []netip.Addr
	ttl, any := uint32(0), false
	for _, rr := range m.Answer {
		if !any || rr.Header().Ttl < ttl {
			ttl = rr.Header().Ttl
		}
		any = true
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				addrs = append(addrs, ip)
			}
		}
	}
	if len(addrs) == 0 {
		return nil, oldNegativeTTL(m)
	}
	return addrs, ttl
}

func oldNegativeTTL(m *dns.Msg) uint32 {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(soa.Hdr.Ttl, soa.Minttl)
		}
	}
	return 0
}

func oldTxtOf(m *dns.Msg) (string, uint32) {
	var b []byte
	ttl, any := uint32(0), false
	for _, rr := range m.Answer {
		t, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		if !any || t.Hdr.Ttl < ttl {
			ttl = t.Hdr.Ttl
		}
		if any {
			b = append(b, ' ')
		}
		any = true
		for _, s := range t.Txt {
			b = append(b, unescapeTXT(s)...)
			if len(b) > 4*MaxText {
				break
			}
		}
	}
	if !any {
		ttl = oldNegativeTTL(m)
	}
	return sanitize(string(b)), ttl
}

// unescapeTXT undoes miekg/dns's presentation escapes (\" \\ \DDD).
func unescapeTXT(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 >= len(s) {
			b = append(b, s[i])
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			b = append(b, byte(v))
			i += 3
			continue
		}
		b = append(b, s[i+1])
		i++
	}
	return b
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// FuzzQuery holds appendQuery against miekg/dns's packing: the same bytes
// whenever appendQuery packs, and an error only where miekg/dns errs too,
// but for the empty name and escapes, which appendQuery refuses, and names
// longer than 255 octets on the wire (RFC 1035 section 2.3.4), which
// miekg/dns packs without a word (found by this target: 0faf1b50b4511713).
func FuzzQuery(f *testing.F) {
	f.Add("2.0.0.127.bl.test.", uint16(typeA), true)
	f.Add("b.1.0.0.2.Zen.Example.", uint16(typeTXT), false)
	f.Add(strings.Repeat("a", 63)+".", uint16(typeA), true)
	f.Fuzz(func(t *testing.T, name string, qtype uint16, edns bool) {
		got, err := appendQuery(make([]byte, 0, maxQuery), 0x1234, name, qtype, edns)
		want, merr := miekgQuery(t, 0x1234, name, qtype, edns)
		switch {
		case err == nil && merr != nil:
			t.Fatalf("%q packed; miekg/dns: %v", name, merr)
		case err == nil && !bytes.Equal(got, want):
			t.Fatalf("%q:\n got %x\nwant %x", name, got, want)
		case err == nil && len(got) > maxQuery:
			t.Fatalf("%q: %d octets", name, len(got))
		case err != nil && merr == nil && name != "" && !strings.Contains(name, `\`) && len(name)+1 <= maxName:
			t.Fatalf("%q: %v; miekg/dns packs it", name, err)
		}
	})
}

// addSeedReplies adds seedReplies, packed (with name compression or
// without), to f's corpus.
func addSeedReplies(f *testing.F, compress bool) {
	for _, m := range seedReplies() {
		m.Compress = compress
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}
