package dnsbl

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// miekgQuery packs the query the way the resolver did with miekg/dns.
func miekgQuery(t *testing.T, id uint16, name string, qtype uint16, edns bool) ([]byte, error) {
	t.Helper()
	m := new(dns.Msg)
	m.Id, m.RecursionDesired = id, true
	m.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: dns.ClassINET}}
	if edns {
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(ednsSize)
		m.Extra = append(m.Extra, opt)
	}
	return m.PackBuffer(make([]byte, 512))
}

func TestAppendQuery(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	// 3 labels of 63, one of 61: 4*64 - 2 + 1 = 255 octets on the wire.
	longest := strings.Repeat(label63+".", 3) + strings.Repeat("b", 61) + "."
	tests := []struct {
		name string
		ok   bool
	}{
		{"2.0.0.127.bl.test.", true},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.Zen.Example.", true},
		{".", true},
		{"x.", true},
		{label63 + ".bl.test.", true},
		{longest, true},
		{"a" + longest, false},                   // 256 octets, a label of 64
		{longest[:len(longest)-1] + "b.", false}, // 256 octets, labels of 63 at most
		{strings.Repeat("a", 64) + ".", false},   // label of 64
		{"2.0.0.127.bl.test", false},             // not fully qualified
		{"", false},
		{"a..b.", false},
		{".a.", false},
		{"..", false},
	}
	for _, tt := range tests {
		for _, qtype := range []uint16{typeA, typeTXT} {
			for _, edns := range []bool{false, true} {
				got, err := appendQuery(nil, 0xbeef, tt.name, qtype, edns)
				if (err == nil) != tt.ok {
					t.Errorf("%q: error %v, want ok %v", tt.name, err, tt.ok)
					continue
				}
				want, merr := miekgQuery(t, 0xbeef, tt.name, qtype, edns)
				// miekg/dns packs "" as ".", and names of more than
				// 255 octets.
				if (merr == nil) != tt.ok && tt.name != "" && len(tt.name)+1 <= maxName {
					t.Fatalf("%q: miekg/dns: error %v, want ok %v", tt.name, merr, tt.ok)
				}
				if err == nil && !bytes.Equal(got, want) {
					t.Errorf("%q type %d edns %v:\n got %x\nwant %x", tt.name, qtype, edns, got, want)
				}
			}
		}
	}
	// miekg/dns reads escapes; we refuse them rather than send another name.
	if _, err := appendQuery(nil, 1, `a\.b.test.`, typeA, true); err == nil {
		t.Error("escape accepted")
	}
}

func TestAppendQueryAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, maxQuery)
	name := "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example."
	if n := testing.AllocsPerRun(100, func() {
		if _, err := appendQuery(buf, 7, name, typeTXT, true); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per query", n)
	}
}

func TestRcodeName(t *testing.T) {
	for rc := 0; rc < 1<<12; rc++ {
		want := dns.RcodeToString[rc]
		if want == "" {
			want = "RCODE" + strconv.Itoa(rc)
		}
		if got := rcodeName(rc); got != want {
			t.Errorf("rcode %d: %q, want %q", rc, got, want)
		}
	}
	if got := (rcodeError{rcodeNotImplemented}).Error(); got != "NOTIMP" {
		t.Errorf("NOTIMP reads %q", got)
	}
}

// Hand-built messages.

func wireName(labels ...string) []byte {
	var b []byte
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func be16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }

func header(id, flags, qd, an, ns, ar uint16) []byte {
	return slices.Concat(be16(id), be16(flags), be16(qd), be16(an), be16(ns), be16(ar))
}

func questionOf(name []byte, qtype uint16) []byte {
	return slices.Concat(name, be16(qtype), be16(classINET))
}

func record(owner []byte, rrtype uint16, ttl uint32, data []byte) []byte {
	return slices.Concat(owner, be16(rrtype), be16(classINET), be16(uint16(ttl>>16)), be16(uint16(ttl)),
		be16(uint16(len(data))), data)
}

func soaData(minimum uint32) []byte {
	return slices.Concat(wireName("ns", "test"), wireName("hostmaster", "test"),
		[]byte{0, 0, 0, 1, 0, 0, 0x0e, 0x10, 0, 0, 2, 0x58, 0, 1, 0x51, 0x80},
		be16(uint16(minimum>>16)), be16(uint16(minimum)))
}

// qname is 2.0.0.127.bl.test. at offset 12 of every hand-built message.
var qname = wireName("2", "0", "0", "127", "bl", "test")

const (
	flagsAnswer = flagQR | flagRD | 0x80 // QR RD RA
	ptrQName    = 0xc0                   // with 12: a pointer to qname
	blTest      = 12 + 2 + 2 + 2 + 4     // where bl.test. is in qname
	firstRR     = 12 + 19 + 4            // where the first record starts
	// where its data starts, when its owner is a pointer
	firstData = firstRR + 2 + 10
)

// miekgReply builds a response with miekg/dns from records in presentation
// format; compress packs it with name compression.
func miekgReply(t *testing.T, qtype uint16, rcode int, compress bool, answer, authority []string) []byte {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion("2.0.0.127.bl.test.", qtype)
	q.Id = 0x1234
	m := new(dns.Msg)
	m.SetReply(q)
	m.Rcode, m.Compress = rcode, compress
	for _, s := range answer {
		m.Answer = append(m.Answer, mustRR(t, s))
	}
	for _, s := range authority {
		m.Ns = append(m.Ns, mustRR(t, s))
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestUnpack(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	soa := "bl.test. 600 IN SOA ns.bl.test. hostmaster.bl.test. 1 3600 600 86400 30"
	type want struct {
		rcode, answers, txts int
		truncated            bool
		addrs                []netip.Addr
		ttl, txtTTL          uint32
		txt                  string
		soaTTL, soaMinimum   uint32
		negative             uint32 // addrsOf's TTL without an address
		qtype                uint16
	}
	tests := []struct {
		name string
		msg  []byte
		want want
	}{
		{"A", miekgReply(t, typeA, 0, false, []string{
			"2.0.0.127.bl.test. 300 IN A 127.0.0.2", "2.0.0.127.bl.test. 200 IN A 127.0.0.4"}, nil),
			want{answers: 2, addrs: []netip.Addr{a("127.0.0.2"), a("127.0.0.4")}, ttl: 200}},
		{"A compressed", miekgReply(t, typeA, 0, true, []string{
			"2.0.0.127.bl.test. 300 IN A 127.0.0.2", "2.0.0.127.bl.test. 400 IN A 127.0.0.3"}, []string{soa}),
			want{answers: 2, addrs: []netip.Addr{a("127.0.0.2"), a("127.0.0.3")}, ttl: 300,
				soaTTL: 600, soaMinimum: 30}},
		// The smallest TTL of the answer counts, CNAME included; an A
		// record belongs to the name a CNAME before it points to.
		{"CNAME then A", miekgReply(t, typeA, 0, true, []string{
			"2.0.0.127.bl.test. 30 IN CNAME x.bl.test.", "x.bl.test. 300 IN A 127.0.0.4"}, nil),
			want{answers: 2, addrs: []netip.Addr{a("127.0.0.4")}, ttl: 30}},
		{"CNAME chain, uncompressed", miekgReply(t, typeA, 0, false, []string{
			"2.0.0.127.bl.test. 30 IN CNAME x.bl.test.", "X.BL.test. 40 IN CNAME y.other.test.",
			"y.other.test. 300 IN A 127.0.0.5"}, nil),
			want{answers: 3, addrs: []netip.Addr{a("127.0.0.5")}, ttl: 30}},
		// A DNAME is not read; the CNAME it makes is.
		{"DNAME", miekgReply(t, typeA, 0, true, []string{
			"bl.test. 300 IN DNAME other.test.", "2.0.0.127.bl.test. 0 IN CNAME 2.0.0.127.other.test.",
			"2.0.0.127.other.test. 300 IN A 127.0.0.2"}, nil),
			want{answers: 3, addrs: []netip.Addr{a("127.0.0.2")}, ttl: 0}},
		{"owner in another case", miekgReply(t, typeA, 0, false, []string{"2.0.0.127.BL.TEST. 300 IN A 127.0.0.2"}, nil),
			want{answers: 1, addrs: []netip.Addr{a("127.0.0.2")}, ttl: 300}},
		{"TXT", miekgReply(t, typeTXT, 0, true, []string{
			`2.0.0.127.bl.test. 300 IN TXT "Listed" " at" ""  " \"x\"\\ \000\255"`,
			`2.0.0.127.bl.test. 100 IN TXT "second"`}, nil),
			want{qtype: typeTXT, answers: 2, txts: 2, ttl: 100, txtTTL: 100,
				txt: "Listed at \"x\"\\ \x00\xff second"}},
		{"NXDOMAIN with SOA", miekgReply(t, typeA, dns.RcodeNameError, true, nil, []string{soa}),
			want{rcode: rcodeNameError, soaTTL: 600, soaMinimum: 30, negative: 30}},
		{"NXDOMAIN, SOA TTL smaller", miekgReply(t, typeA, dns.RcodeNameError, false, nil,
			[]string{strings.Replace(soa, " 600 IN", " 20 IN", 1)}),
			want{rcode: rcodeNameError, soaTTL: 20, soaMinimum: 30, negative: 20}},
		{"first SOA counts", miekgReply(t, typeA, dns.RcodeNameError, true, nil,
			[]string{soa, "test. 5 IN SOA a. b. 1 2 3 4 5"}),
			want{rcode: rcodeNameError, soaTTL: 600, soaMinimum: 30, negative: 30}},
		{"SERVFAIL", miekgReply(t, typeA, dns.RcodeServerFailure, false, nil, nil),
			want{rcode: rcodeServerFailure}},
		{"SOA name pointing into another SOA", slices.Concat(header(1, flagsAnswer|3, 1, 0, 2, 0), questionOf(qname, typeA),
			record([]byte{ptrQName, blTest}, typeSOA, 60, soaData(10)),
			// Both names: the first SOA's MNAME, ns.test.
			record([]byte{ptrQName, blTest}, typeSOA, 5, slices.Concat([]byte{ptrQName, firstData},
				[]byte{ptrQName, firstData}, make([]byte, 20))),
		), want{rcode: rcodeNameError, soaTTL: 60, soaMinimum: 10, negative: 10}},
		{"trailing garbage ignored", slices.Concat(header(1, flagsAnswer, 1, 1, 0, 0), questionOf(qname, typeA),
			record([]byte{ptrQName, 12}, typeA, 9, []byte{127, 0, 0, 2}), []byte("garbage")),
			want{answers: 1, addrs: []netip.Addr{a("127.0.0.2")}, ttl: 9}},
		{"other types skipped", slices.Concat(header(1, flagsAnswer, 1, 2, 1, 1), questionOf(qname, typeA),
			record([]byte{ptrQName, 12}, 99, 50, []byte{0xc0, 0xff, 0xff}), // not read: not a name
			record([]byte{ptrQName, 12}, typeA, 60, []byte{127, 0, 0, 3}),
			record([]byte{0}, dns.TypeNS, 1, []byte{0xc0, 0xff}),
			record([]byte{0}, dns.TypeAAAA, 1, []byte{1})),
			want{answers: 2, addrs: []netip.Addr{a("127.0.0.3")}, ttl: 50}},
		{"extended RCODE", slices.Concat(header(1, flagsAnswer|1, 1, 0, 0, 2), questionOf(qname, typeA),
			record([]byte{0}, typeOPT, 0x07000000, nil), // overridden by the last
			record([]byte{0}, typeOPT, 0x01008000, []byte{0, 10, 0, 0})),
			want{rcode: 17}},
		// A truncated answer is cut anywhere: its records are not read.
		{"truncated", slices.Concat(header(1, flagsAnswer|flagTC, 1, 3, 0, 0), questionOf(qname, typeA),
			record([]byte{ptrQName, 12}, typeA, 9, []byte{127, 0, 0, 2})[:7]),
			want{truncated: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r reply
			if err := unpack(tt.msg, &r); err != nil {
				t.Fatal(err)
			}
			w := tt.want
			if w.qtype == 0 {
				w.qtype = typeA
			}
			if !r.response || r.rcode != w.rcode || r.truncated != w.truncated || r.qtype != w.qtype ||
				!nameIs(r.qname, "2.0.0.127.BL.test.") {
				t.Errorf("QR %v rcode %d TC %v question %q/%d", r.response, r.rcode, r.truncated, r.qname, r.qtype)
			}
			got := r.records
			if got.answers != w.answers || !slices.Equal(got.addrs, w.addrs) || got.ttl != w.ttl ||
				got.txts != w.txts || got.txtTTL != w.txtTTL || string(got.txt) != w.txt ||
				got.soaTTL != w.soaTTL || got.soaMinimum != w.soaMinimum {
				t.Errorf("records %+v (txt %q)\nwant %+v", got, got.txt, w)
			}
			if len(w.addrs) == 0 {
				if _, ttl := addrsOf(&r.records); ttl != uint32(w.negative) {
					t.Errorf("negative TTL %d, want %d", ttl, w.negative)
				}
			}
		})
	}
}

func TestUnpackMalformed(t *testing.T) {
	q := questionOf(qname, typeA)
	hdr := func(an, ns, ar uint16) []byte { return header(1, flagsAnswer, 1, an, ns, ar) }
	aRR := record([]byte{ptrQName, 12}, typeA, 9, []byte{127, 0, 0, 2})
	label64 := append([]byte{64}, strings.Repeat("a", 64)...)
	// 4 labels of 63 and the root: 257 octets.
	long := wireName(strings.Repeat("a", 63), strings.Repeat("b", 63), strings.Repeat("c", 63), strings.Repeat("d", 63))
	// In an unread record's data, a name of 64+19 octets, then one of
	// three labels of 63 and a pointer to the first: 192+83 octets.
	second := firstData + 64 + 2
	deep := slices.Concat(hdr(2, 0, 0), q,
		record([]byte{ptrQName, 12}, 99, 1, slices.Concat(
			[]byte{63}, []byte(strings.Repeat("x", 63)), []byte{ptrQName, 12},
			[]byte{63}, []byte(strings.Repeat("y", 63)), []byte{63}, []byte(strings.Repeat("z", 63)),
			[]byte{63}, []byte(strings.Repeat("w", 63)), []byte{ptrQName, firstData})),
		record([]byte{0xc0 | byte(second>>8), byte(second)}, typeA, 1, []byte{127, 0, 0, 2}))
	// n pointers in a chain in an unread record's data, each to the one
	// before, the first to qname; then a record whose owner points to the
	// last: n+1 pointers to follow.
	chain := func(n int) []byte {
		data := []byte{ptrQName, 12}
		for i := 1; i < n; i++ {
			p := firstData + 2*(i-1)
			data = append(data, 0xc0|byte(p>>8), byte(p))
		}
		last := firstData + 2*(n-1)
		return slices.Concat(hdr(2, 0, 0), q, record([]byte{ptrQName, 12}, 99, 1, data),
			record([]byte{0xc0 | byte(last>>8), byte(last)}, typeA, 1, []byte{127, 0, 0, 2}))
	}
	if err := unpack(chain(maxPointers-1), new(reply)); err != nil {
		t.Fatalf("a name through %d pointers: %v", maxPointers, err)
	}
	tests := []struct {
		name, err string
		msg       []byte
	}{
		{"empty", "shorter than a header", nil},
		{"short header", "shorter than a header", header(1, flagsAnswer, 1, 0, 0, 0)[:11]},
		{"header only", "past the end", header(1, flagsAnswer, 1, 0, 0, 0)},
		{"no question", "0 questions", slices.Concat(header(1, flagsAnswer, 0, 0, 0, 0), q)},
		{"two questions", "2 questions", slices.Concat(header(1, flagsAnswer, 2, 0, 0, 0), q, q)},
		{"question cut in its name", "label past the end", slices.Concat(hdr(0, 0, 0), q[:5])},
		{"question cut in its type", "question cut short", slices.Concat(hdr(0, 0, 0), q[:len(qname)+1])},
		{"question cut in its class", "question cut short", slices.Concat(hdr(0, 0, 0), q[:len(q)-1])},
		{"question name a pointer", "pointer to offset 12", slices.Concat(hdr(0, 0, 0), []byte{ptrQName, 12, 0, 1, 0, 1})},
		{"label of 64", "label type 0x40", slices.Concat(hdr(0, 0, 0), label64, []byte{0, 0, 1, 0, 1})},
		{"label type 0x80", "label type 0x80", slices.Concat(hdr(0, 0, 0), []byte{0x81, 'a', 0, 0, 1, 0, 1})},
		{"name of 257", "longer than 255", slices.Concat(hdr(0, 0, 0), long, []byte{0, 1, 0, 1})},
		{"name of 257 through pointers", "longer than 255", deep},
		{"too many pointers", "more than 127 pointers", chain(maxPointers)},
		{"pointer loop", "pointer to offset 35", slices.Concat(hdr(1, 0, 0), q, []byte{0xc0, firstRR}, aRR[2:])},
		{"pointer forward", "not back into the records", slices.Concat(hdr(1, 0, 0), q, []byte{0xc0, 60}, aRR[2:])},
		{"pointer out of range", "not back into the records", slices.Concat(hdr(1, 0, 0), q, []byte{0xff, 0xff}, aRR[2:])},
		{"pointer into the header", "pointer to offset 4", slices.Concat(hdr(1, 0, 0), q, []byte{0xc0, 4}, aRR[2:])},
		{"pointer cut", "pointer past the end", slices.Concat(hdr(1, 0, 0), q, []byte{0xc0})},
		{"fewer answers than counted", "record 2: name at offset 51: past the end", slices.Concat(hdr(2, 0, 0), q, aRR)},
		{"fewer additional than counted", "record 2", slices.Concat(hdr(1, 0, 1), q, aRR)},
		{"record header cut", "header cut short", slices.Concat(hdr(1, 0, 0), q, aRR[:11])},
		{"data past the end", "1 octets of data past the end", slices.Concat(hdr(1, 0, 0), q, aRR[:len(aRR)-1])},
		{"A of 5", "A record of 5 octets", slices.Concat(hdr(1, 0, 0), q, record([]byte{0}, typeA, 1, []byte{127, 0, 0, 2, 0}))},
		{"A of 3", "A record of 3 octets", slices.Concat(hdr(1, 0, 0), q, record([]byte{0}, typeA, 1, []byte{127, 0, 0}))},
		{"A without data", "A record of 0 octets", slices.Concat(hdr(1, 0, 0), q, record([]byte{0}, typeA, 1, nil))},
		{"TXT without data", "TXT record without a string", slices.Concat(hdr(1, 0, 0), q, record([]byte{0}, typeTXT, 1, nil))},
		{"TXT string too long", "TXT string of 5 octets in 4", slices.Concat(hdr(1, 0, 0), q, record([]byte{0}, typeTXT, 1, []byte{5, 'a', 'b', 'c', 'd'}))},
		{"TXT second string too long", "TXT string of 2 octets in 1", slices.Concat(hdr(1, 0, 0), q, record([]byte{0}, typeTXT, 1, []byte{1, 'a', 2, 'b'}))},
		{"SOA without data", "SOA record", slices.Concat(hdr(0, 1, 0), q, record([]byte{0}, typeSOA, 1, nil))},
		{"SOA cut short", "19 octets after the names", slices.Concat(hdr(0, 1, 0), q, record([]byte{0}, typeSOA, 1, soaData(1)[:len(soaData(1))-1]))},
		{"SOA too long", "21 octets after the names", slices.Concat(hdr(0, 1, 0), q, record([]byte{0}, typeSOA, 1, append(soaData(1), 0)))},
		// The names must end within the data, though the message goes on.
		{"SOA names past its data", "SOA record: name at offset", slices.Concat(hdr(0, 1, 1), q,
			record([]byte{0}, typeSOA, 1, wireName("ns", "test")[:4]), record([]byte{0}, 99, 1, make([]byte, 30)))},
		{"SOA name pointing forward", "not back", slices.Concat(hdr(0, 1, 0), q, record([]byte{0}, typeSOA, 1,
			slices.Concat([]byte{0xc0, 50}, []byte{0}, make([]byte, 20))))},
		// The records read must answer the question.
		{"A for another name", "record 1: A record for x.bl.test., not for 2.0.0.127.bl.test.",
			miekgReply(t, typeA, 0, true, []string{"x.bl.test. 300 IN A 127.0.0.2"}, nil)},
		{"A for another name after a good one", "record 2: A record for 3.0.0.127.bl.test.",
			miekgReply(t, typeA, 0, true, []string{"2.0.0.127.bl.test. 300 IN A 127.0.0.2", "3.0.0.127.bl.test. 300 IN A 127.0.0.3"}, nil)},
		{"A of class CH", "A record of class 3, not IN",
			miekgReply(t, typeA, 0, true, []string{"2.0.0.127.bl.test. 300 CH A 127.0.0.2"}, nil)},
		{"TXT of class NONE", "TXT record of class 254, not IN",
			miekgReply(t, typeTXT, 0, true, []string{`2.0.0.127.bl.test. 300 NONE TXT "x"`}, nil)},
		{"TXT for an A question", "TXT record in the answer to a question of type 1",
			miekgReply(t, typeA, 0, true, []string{`2.0.0.127.bl.test. 300 IN TXT "127.0.0.2"`}, nil)},
		{"A for a TXT question", "A record in the answer to a question of type 16",
			miekgReply(t, typeTXT, 0, true, []string{"2.0.0.127.bl.test. 300 IN A 127.0.0.2"}, nil)},
		{"CNAME of another name", "CNAME record for x.bl.test., not for 2.0.0.127.bl.test.",
			miekgReply(t, typeA, 0, true, []string{"x.bl.test. 300 IN CNAME 2.0.0.127.bl.test.", "2.0.0.127.bl.test. 300 IN A 127.0.0.2"}, nil)},
		{"A before its CNAME", "A record for x.bl.test., not for 2.0.0.127.bl.test.",
			miekgReply(t, typeA, 0, true, []string{"x.bl.test. 300 IN A 127.0.0.2", "2.0.0.127.bl.test. 300 IN CNAME x.bl.test."}, nil)},
		{"A of the name asked after a CNAME", "A record for 2.0.0.127.bl.test., not for x.bl.test.",
			miekgReply(t, typeA, 0, true, []string{"2.0.0.127.bl.test. 300 IN CNAME x.bl.test.", "2.0.0.127.bl.test. 300 IN A 127.0.0.2"}, nil)},
		{"CNAME data past its name", "CNAME record: 1 octets after the name", slices.Concat(hdr(1, 0, 0), q,
			record([]byte{ptrQName, 12}, typeCNAME, 1, append(wireName("x"), 0)))},
		{"CNAME name past its data", "CNAME record: name at offset", slices.Concat(hdr(1, 0, 1), q,
			record([]byte{ptrQName, 12}, typeCNAME, 1, wireName("x")[:2]), record([]byte{0}, 99, 1, make([]byte, 10)))},
		{"CNAME pointing forward", "CNAME record: name at offset", slices.Concat(hdr(1, 0, 0), q,
			record([]byte{ptrQName, 12}, typeCNAME, 1, []byte{0xc0, 90}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r reply
			err := unpack(tt.msg, &r)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want one with %q", err, tt.err)
			}
		})
	}
}

func TestUnpackAllocations(t *testing.T) {
	nx := miekgReply(t, typeA, dns.RcodeNameError, true, nil,
		[]string{"bl.test. 600 IN SOA ns.bl.test. hostmaster.bl.test. 1 3600 600 86400 30"})
	listed := miekgReply(t, typeA, 0, true, []string{"2.0.0.127.bl.test. 300 IN A 127.0.0.2"}, nil)
	for _, tt := range []struct {
		name string
		msg  []byte
		max  float64
	}{{"NXDOMAIN", nx, 0}, {"listed", listed, 1}} {
		var r reply
		if n := testing.AllocsPerRun(100, func() { _ = unpack(tt.msg, &r) }); n > tt.max {
			t.Errorf("%s: %v allocations", tt.name, n)
		}
	}
}

func TestNameText(t *testing.T) {
	msg := slices.Concat(header(1, flagsAnswer, 1, 0, 0, 0), questionOf(qname, typeA),
		wireName("a.b", "C-d_e", "x y\x00\xff"), []byte{1, 'z', ptrQName, 12}, []byte{0})
	for _, tt := range []struct {
		off  int
		want string
	}{
		{12, "2.0.0.127.bl.test."},
		{blTest, "bl.test."},
		{firstRR, `a\046b.C-d_e.x\032y\000\255.`},
		{firstRR + 17, "z.2.0.0.127.bl.test."},
		{firstRR + 21, "."},
	} {
		if got := nameText(msg, tt.off); got != tt.want {
			t.Errorf("nameText at %d = %q, want %q", tt.off, got, tt.want)
		}
	}
}

func TestSameName(t *testing.T) {
	// bl.test. and BL.TEST., and z.<pointer to qname> and Z.2.0.0.127.bl.test.
	msg := slices.Concat(header(1, flagsAnswer, 1, 0, 0, 0), questionOf(qname, typeA),
		wireName("BL", "TEST"), []byte{1, 'z', ptrQName, 12}, wireName("Z", "2", "0", "0", "127", "bl", "test"),
		[]byte{ptrQName, firstRR + 9}, wireName("bl", "tesu"))
	upper, z, zWhole, ptr, tesu := firstRR, firstRR+9, firstRR+13, firstRR+34, firstRR+36
	for _, tt := range []struct {
		a, b int
		want bool
	}{
		{12, 12, true},
		{blTest, upper, true},
		{z, zWhole, true},
		{ptr, z, true},
		{ptr, zWhole, true},
		{12, z, false},
		{blTest, tesu, false},
		{upper, 12, false},
	} {
		if got := sameName(msg, tt.a, tt.b); got != tt.want {
			t.Errorf("sameName(%s, %s) = %v", nameText(msg, tt.a), nameText(msg, tt.b), got)
		}
		if got := sameName(msg, tt.b, tt.a); got != tt.want {
			t.Errorf("sameName(%s, %s) = %v", nameText(msg, tt.b), nameText(msg, tt.a), got)
		}
	}
}

func TestNameIs(t *testing.T) {
	tests := []struct {
		wire []byte
		name string
		want bool
	}{
		{qname, "2.0.0.127.bl.test.", true},
		{qname, "2.0.0.127.BL.Test.", true},
		{wireName("2", "0", "0", "127", "BL", "TEST"), "2.0.0.127.bl.test.", true},
		{qname, "2.0.0.127.bl.test", false},
		{qname, "2.0.0.127.bl.tesu.", false},
		{qname, "2.0.0.127.bl.test.x.", false},
		{qname, "0.0.127.bl.test.", false},
		{qname, ".", false},
		{[]byte{0}, ".", true},
		{[]byte{0}, "a.", false},
		{wireName("2.0", "0", "127", "bl", "test"), "2.0.0.127.bl.test.", false},
		{wireName("a@"), "a`.", false}, // '@'+32 is '`': no folding outside A-Z
		{qname[:len(qname)-1], "2.0.0.127.bl.test.", false},
		{append(slices.Clone(qname), 0), "2.0.0.127.bl.test.", false},
		{[]byte{9, 'a'}, "a.", false},
	}
	for _, tt := range tests {
		if got := nameIs(tt.wire, tt.name); got != tt.want {
			t.Errorf("nameIs(%q, %q) = %v", tt.wire, tt.name, got)
		}
	}
}

// tcpServer answers one TCP query on loopback with what answer makes of it.
func tcpServer(t *testing.T, answer func(query []byte) []byte) netip.AddrPort {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 1024)
		n, _ := c.Read(b)
		if n < 2 || n != 2+int(u16(b)) {
			return
		}
		_, _ = c.Write(answer(b[2:n]))
	}()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

func TestAskTCP(t *testing.T) {
	frame := func(m []byte) []byte { return append(be16(uint16(len(m))), m...) }
	answer := func(query []byte, id uint16) []byte {
		return slices.Concat(be16(id), be16(flagsAnswer), header(0, 0, 1, 1, 0, 0)[4:], query[12:12+len(qname)+4],
			record([]byte{ptrQName, 12}, typeA, 9, []byte{127, 0, 0, 2}))
	}
	// Every error but the network's is a *badAnswer: an answer that came
	// and cannot be used.
	tests := []struct {
		name   string
		answer func(q []byte) []byte
		err    string
	}{
		{"good", func(q []byte) []byte { return frame(answer(q, u16(q))) }, ""},
		{"another ID", func(q []byte) []byte { return frame(answer(q, u16(q)+1)) }, "an answer with another ID"},
		{"another name", func(q []byte) []byte {
			a := answer(q, u16(q))
			a[12+1] = '3'
			return frame(a)
		}, "an answer to another question: 3.0.0.127.bl.test. type 1 class 1"},
		{"another class", func(q []byte) []byte {
			a := answer(q, u16(q))
			a[12+len(qname)+3] = 3 // CH
			return frame(a)
		}, "an answer to another question: 2.0.0.127.bl.test. type 1 class 3"},
		{"a query", func(q []byte) []byte {
			a := answer(q, u16(q))
			a[2] &^= flagQR >> 8
			return frame(a)
		}, "a query, not an answer"},
		{"another opcode", func(q []byte) []byte {
			a := answer(q, u16(q))
			a[2] |= 2 << 3 // STATUS
			return frame(a)
		}, "OPCODE 2"},
		{"truncated again", func(q []byte) []byte {
			a := answer(q, u16(q))
			a[2] |= flagTC >> 8
			return frame(a)
		}, "answer truncated (TC) over TCP too"},
		{"cut short", func(q []byte) []byte { return frame(answer(q, u16(q)))[:30] }, "closed after 28 of the answer's 51 octets"},
		{"malformed", func(q []byte) []byte { return frame(answer(q, u16(q))[:40]) }, "DNS message"},
		{"no answer", func(q []byte) []byte { return nil }, "closed without an answer"},
		{"half a length", func(q []byte) []byte { return []byte{0} }, "closed without an answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &question{name: "2.0.0.127.bl.test.", qtype: typeA, id: 0x4242}
			query, err := appendQuery(make([]byte, 2, 2+maxQuery), q.id, q.name, q.qtype, true)
			if err != nil {
				t.Fatal(err)
			}
			query[0], query[1] = byte((len(query)-2)>>8), byte(len(query)-2)
			server := tcpServer(t, tt.answer)
			r, err := askTCP(server, query, time.Now().Add(2*time.Second), q)
			_, bad := err.(*badAnswer)
			switch {
			case tt.err == "" && err != nil:
				t.Fatal(err)
			case tt.err == "" && !slices.Equal(r.addrs, []netip.Addr{netip.MustParseAddr("127.0.0.2")}):
				t.Errorf("addrs %v", r.addrs)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || !bad):
				t.Errorf("error %#v, want a *badAnswer with %q", err, tt.err)
			}
		})
	}
	// Nothing listening: refused at once; a silent server: the deadline.
	dead := netip.MustParseAddrPort(deadServer(t))
	if _, err := askTCP(dead, []byte{0, 1, 0}, time.Now().Add(2*time.Second), new(question)); !isRefused(err) {
		t.Errorf("dead server: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	silent := l.Addr().(*net.TCPAddr).AddrPort()
	if _, err := askTCP(silent, []byte{0, 1, 0}, start.Add(200*time.Millisecond), new(question)); !isTimeout(err) {
		t.Errorf("silent server: %v", err)
	} else if d := time.Since(start); d > 30*time.Second { // a hang guard: the server never answers
		t.Errorf("silent server: timeout after %v", d)
	}
}

// Past maxTXT octets only the first string of each record is kept, as the
// miekg/dns based code did; that matters only when blanks fold away.
func TestTXTBounded(t *testing.T) {
	blanks := `"` + strings.Repeat(" ", 255) + `" `
	msg := miekgReply(t, typeTXT, 0, false, []string{
		"2.0.0.127.bl.test. 300 IN TXT " + strings.Repeat(blanks, 3) + `"` + strings.Repeat("A", 100) + `" "BBB"`,
		`2.0.0.127.bl.test. 300 IN TXT "C" "D"`,
	}, nil)
	var r reply
	if err := unpack(msg, &r); err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("A", 100) + " C"
	if txt, _ := txtOf(&r.records); txt != want {
		t.Errorf("TXT %q, want %q", txt, want)
	}
	m := new(dns.Msg)
	if err := m.Unpack(msg); err != nil {
		t.Fatal(err)
	}
	if old, _ := oldTxtOf(m); old != want {
		t.Errorf("miekg/dns based: %q, want %q", old, want)
	}
}
