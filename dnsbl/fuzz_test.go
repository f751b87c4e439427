package dnsbl

import (
	"net/netip"
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
		fields := splitFields(alt)
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

// splitFields splits at the dots outside brackets that are not part of "..".
func splitFields(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
		case '.':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
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
// and the text is safe for an SMTP reply.
func FuzzReply(f *testing.F) {
	for _, m := range seedReplies() {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(data); err != nil {
			return
		}
		addrs, _ := addrsOf(m)
		if cause, _ := checkAnswers(addrs); cause == 0 {
			for _, a := range addrs {
				b := a.As4()
				if !a.Is4() || b[0] != 127 || b[1] == 255 && b[2] == 255 {
					t.Fatalf("answer %v accepted", a)
				}
			}
		}
		txt, _ := txtOf(m)
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
