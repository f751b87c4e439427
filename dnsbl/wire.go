package dnsbl

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// The DNS wire format (RFC 1035 section 4), only as much of it as a list
// query needs: a query for one name and type, with or without an EDNS0
// OPT record, and of a response its header, its question, the A and TXT
// records of the answer section and the SOA of the authority section.
// A general DNS library would cost every fresh process (chain mode) page
// faults for code and init work that dnsbl never uses.
//
// Reading is strict where a fact is taken and lenient where miekg/dns,
// which these functions replaced and which the tests use as an oracle,
// is lenient without consequence:
//   - every counted record must be there and well formed (miekg/dns stops
//     quietly where a message ends early); bytes after the counted
//     records are ignored, as miekg/dns ignores them;
//   - an A record holds exactly 4 octets, a TXT record one or more
//     strings, a SOA record its two names and five numbers (miekg/dns
//     also accepts empty data, and a SOA cut short);
//   - a compression pointer points backwards, past the header and before
//     the part of the name that holds it (miekg/dns follows up to 126
//     pointers anywhere);
//   - the data of other records is skipped by its length, not checked
//     (miekg/dns checks the types it knows);
//   - an A, TXT or CNAME record of the answer section must be of class IN
//     and belong to the name asked, or to the name a CNAME before it
//     points to, and an A or TXT record must be of the type asked
//     (miekg/dns does not look); other types there (DNAME, RRSIG) are
//     skipped;
//   - a truncated response's records are not read at all, so its RCODE
//     lacks an OPT record's extended bits: nothing but its question is
//     used before it is asked again over TCP.

// Types, class and answer codes (RCODE) used.
const (
	typeA     = 1
	typeCNAME = 5
	typeSOA   = 6
	typeTXT   = 16
	typeOPT   = 41
	classINET = 1

	rcodeSuccess        = 0
	rcodeFormatError    = 1
	rcodeServerFailure  = 2
	rcodeNameError      = 3
	rcodeNotImplemented = 4
	rcodeRefused        = 5
)

const (
	headerLen   = 12
	maxName     = 255 // octets on the wire (RFC 1035 section 2.3.4)
	maxLabel    = 63
	maxPointers = 127 // as many as a name has labels, at most
	// maxQuery is the longest query packed: header, name, type and
	// class, OPT record.
	maxQuery = headerLen + maxName + 4 + 11

	flagQR = 1 << 15
	opcode = 0xf << 11 // the flags' OPCODE bits; 0 is QUERY
	flagTC = 1 << 9
	flagRD = 1 << 8
)

// maxTXT bounds the TXT bytes kept of an answer: plenty for sanitize to
// make MaxText of them.
const maxTXT = 4 * MaxText

// rcodeNames are the answer codes' names as miekg/dns and dig print them.
var rcodeNames = [...]string{
	0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
	6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI",
	16: "BADSIG", 17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG",
	22: "BADTRUNC", 23: "BADCOOKIE",
}

// rcodeName names an answer code: "SERVFAIL", or "RCODE15" for one without
// a name.
func rcodeName(rcode int) string {
	if rcode >= 0 && rcode < len(rcodeNames) && rcodeNames[rcode] != "" {
		return rcodeNames[rcode]
	}
	return "RCODE" + strconv.Itoa(rcode)
}

// appendQuery appends to b a query with id for name (fully qualified,
// dotted: "2.0.0.127.bl.example.") and qtype, class IN, recursion desired;
// with edns, an OPT record offers ednsSize octets of UDP payload (RFC 6891).
// It allocates nothing when b has room for maxQuery more octets.
func appendQuery(b []byte, id uint16, name string, qtype uint16, edns bool) ([]byte, error) {
	var arcount byte
	if edns {
		arcount = 1
	}
	b = append(b, byte(id>>8), byte(id), flagRD>>8, 0, 0, 1, 0, 0, 0, 0, 0, arcount)
	b, err := appendName(b, name)
	if err != nil {
		return b, err
	}
	b = append(b, byte(qtype>>8), byte(qtype), 0, classINET)
	if edns {
		// Root owner, type OPT, class: the payload size; TTL 0: no
		// extended code, version 0, no DO bit; no options.
		b = append(b, 0, 0, typeOPT, ednsSize>>8, ednsSize&0xff, 0, 0, 0, 0, 0, 0)
	}
	return b, nil
}

// appendName appends a fully qualified dotted name in wire format. No
// escapes: the names asked are reversed addresses and host names.
func appendName(b []byte, name string) ([]byte, error) {
	if name == "." {
		return append(b, 0), nil
	}
	switch {
	case len(name) == 0 || name[len(name)-1] != '.':
		return b, fmt.Errorf("query name %q: not fully qualified", name)
	case len(name)+1 > maxName:
		return b, fmt.Errorf("query name %q: longer than %d octets", name, maxName)
	}
	start := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '\\':
			return b, fmt.Errorf("query name %q: escapes are not supported", name)
		case c != '.':
			continue
		case i == start || i-start > maxLabel:
			return b, fmt.Errorf("query name %q: a label of %d octets", name, i-start)
		}
		b = append(b, byte(i-start))
		b = append(b, name[start:i]...)
		start = i + 1
	}
	return append(b, 0), nil
}

// reply is what dnsbl reads of a DNS response.
type reply struct {
	id        uint16
	response  bool   // QR: a response, not a query
	truncated bool   // TC: ask again over TCP
	opcode    int    // OPCODE: 0 for a response to a query
	rcode     int    // RCODE, with an OPT record's extended bits
	qname     []byte // the question's name in wire format, within the message
	qtype     uint16
	qclass    uint16
	records
}

// records is what the records of a response say, copied out of the message.
type records struct {
	answers int          // records in the answer section
	ttl     uint32       // the smallest TTL of the answer section
	addrs   []netip.Addr // the A records of the answer section
	txts    int          // the TXT records of the answer section
	txtTTL  uint32       // their smallest TTL
	// txt holds the strings of each TXT record joined, the records
	// separated by a blank; once it is longer than maxTXT, only the first
	// string of each further record is added.
	txt []byte
	// The first SOA record of the authority section (RFC 2308); zeros
	// without one.
	soaTTL, soaMinimum uint32
	soa                bool
	mail               *mailRecords // MX and AAAA records (mail.go)
	ptr                *ptrRecords  // PTR records (rdns.go)
	nxdomain           bool         // the answer code was NXDOMAIN (mail.go)
}

// rr is what dnsbl reads of a resource record's header, and where its
// owner's name and its data are.
type rr struct {
	owner      int // the name: msg[owner:]
	rrtype     uint16
	class      uint16
	ttl        uint32
	start, end int // the data: msg[start:end]
}

var errTruncatedQuestion = errors.New("DNS message: question cut short")

// unpack reads a response into r. Every length is checked against the
// message; malformed input is an error, with nothing of r to be used.
// r.qname aliases msg; the rest does not.
func unpack(msg []byte, r *reply) error {
	*r = reply{}
	if len(msg) < headerLen {
		return fmt.Errorf("DNS message of %d octets: shorter than a header", len(msg))
	}
	flags := u16(msg[2:])
	r.id, r.response, r.truncated, r.rcode = u16(msg), flags&flagQR != 0, flags&flagTC != 0, int(flags&0xf)
	r.opcode = int(flags&opcode) >> 11
	if n := u16(msg[4:]); n != 1 {
		return fmt.Errorf("DNS message with %d questions", n)
	}
	// The question's name holds no pointer: it could only point into the
	// header. So it is msg[headerLen:off] as it stands.
	off, err := nameEnd(msg, headerLen)
	if err != nil {
		return fmt.Errorf("DNS message: question: %w", err)
	}
	if len(msg)-off < 4 {
		return errTruncatedQuestion
	}
	r.qname, r.qtype, r.qclass = msg[headerLen:off], u16(msg[off:]), u16(msg[off+2:])
	off += 4
	if r.truncated {
		return nil
	}
	an, ns, ar := int(u16(msg[6:])), int(u16(msg[8:])), int(u16(msg[10:]))
	extended := 0
	owner := headerLen // the name the answer's records belong to
	for i := 0; i < an+ns+ar; i++ {
		var h rr
		if h, off, err = readRR(msg, off); err == nil {
			switch {
			case i < an:
				err = r.answer(msg, h, r.qtype, &owner)
			case i < an+ns:
				err = r.authority(msg, h)
			case h.rrtype == typeOPT:
				// The upper 8 bits of a 12-bit RCODE (RFC 6891
				// section 6.1.3); the last OPT record counts, as in
				// miekg/dns.
				extended = int(h.ttl>>24) << 4
			}
		}
		if err != nil {
			return fmt.Errorf("DNS message: record %d: %w", i+1, err)
		}
	}
	r.rcode |= extended
	return nil
}

// readRR reads the record at msg[off:] and returns the offset past it.
func readRR(msg []byte, off int) (rr, int, error) {
	owner := off
	off, err := nameEnd(msg, off)
	if err != nil {
		return rr{}, 0, err
	}
	if len(msg)-off < 10 {
		return rr{}, 0, fmt.Errorf("header cut short at offset %d", off)
	}
	h := rr{owner: owner, rrtype: u16(msg[off:]), class: u16(msg[off+2:]), ttl: u32(msg[off+4:]), start: off + 10}
	h.end = h.start + int(u16(msg[off+8:]))
	if h.end > len(msg) {
		return rr{}, 0, fmt.Errorf("type %d: %d octets of data past the end", h.rrtype, h.end-len(msg))
	}
	return h, h.end, nil
}

// answer takes a record of the answer section of a response to a question
// of type qtype. The A, TXT and CNAME records must answer the question:
// class IN, and the name asked (*owner), or the name a CNAME points to,
// which becomes *owner. Other types are skipped.
func (r *records) answer(msg []byte, h rr, qtype uint16, owner *int) error {
	if r.answers == 0 || h.ttl < r.ttl {
		r.ttl = h.ttl
	}
	r.answers++
	data := msg[h.start:h.end]
	var what string
	switch h.rrtype {
	case typeA:
		what = "A"
		if len(data) != 4 {
			return fmt.Errorf("an A record of %d octets", len(data))
		}
	case typeTXT:
		what = "TXT"
		if err := checkTXT(data); err != nil {
			return err
		}
	case typeCNAME:
		what = "CNAME"
		end, err := nameEnd(msg[:h.end], h.start)
		if err != nil {
			return fmt.Errorf("CNAME record: %w", err)
		}
		if end != h.end {
			return fmt.Errorf("CNAME record: %d octets after the name", h.end-end)
		}
	default:
		return r.mailRecord(msg, h, qtype, *owner) // mail.go: MX and AAAA
	}
	switch {
	case h.class != classINET:
		return fmt.Errorf("%s record of class %d, not IN", what, h.class)
	case !sameName(msg, h.owner, *owner):
		return fmt.Errorf("%s record for %s, not for %s", what, nameText(msg, h.owner), nameText(msg, *owner))
	case h.rrtype == typeCNAME:
		*owner = h.start
		return nil
	case h.rrtype != qtype:
		return fmt.Errorf("%s record in the answer to a question of type %d", what, qtype)
	}
	if h.rrtype == typeA {
		r.addrs = append(r.addrs, netip.AddrFrom4([4]byte(data)))
		return nil
	}
	if r.txts == 0 || h.ttl < r.txtTTL {
		r.txtTTL = h.ttl
	}
	if r.txts > 0 {
		r.txt = append(r.txt, ' ')
	}
	r.txts++
	r.txt = appendTXT(r.txt, data)
	return nil
}

// checkTXT checks that a TXT record's data is one or more strings that
// fill it.
func checkTXT(data []byte) error {
	if len(data) == 0 {
		return errors.New("TXT record without a string")
	}
	for len(data) > 0 {
		n := int(data[0])
		if 1+n > len(data) {
			return fmt.Errorf("TXT string of %d octets in %d", n, len(data)-1)
		}
		data = data[1+n:]
	}
	return nil
}

// appendTXT appends the strings of a TXT record's data, checked by
// checkTXT, to dst: the first string, and the others while dst is no longer
// than maxTXT.
func appendTXT(dst, data []byte) []byte {
	for first := true; len(data) > 0 && (first || len(dst) <= maxTXT); first = false {
		n := int(data[0])
		dst = append(dst, data[1:1+n]...)
		data = data[1+n:]
	}
	return dst
}

// authority takes a record of the authority section: a SOA is read (its
// names may point anywhere before), other types are skipped.
func (r *records) authority(msg []byte, h rr) error {
	if h.rrtype != typeSOA {
		return nil
	}
	// The names must end within the record's data, as its numbers do.
	data := msg[:h.end]
	off, err := nameEnd(data, h.start) // MNAME
	if err == nil {
		off, err = nameEnd(data, off) // RNAME
	}
	if err != nil {
		return fmt.Errorf("SOA record: %w", err)
	}
	if h.end-off != 20 {
		return fmt.Errorf("SOA record: %d octets after the names, not 20", h.end-off)
	}
	if !r.soa {
		// SERIAL, REFRESH, RETRY, EXPIRE, then MINIMUM.
		r.soa, r.soaTTL, r.soaMinimum = true, h.ttl, u32(data[off+16:])
	}
	return nil
}

// nameEnd checks the name at msg[off:] and returns the offset past it in
// the record: past its first compression pointer, if any. A pointer must
// point past the header and before the part of the name that holds it:
// no name can loop, and a name that holds no pointer reads as it stands.
func nameEnd(msg []byte, off int) (int, error) {
	at := off     // for errors
	end := -1     // past the first pointer
	start := off  // where the labels being read begin
	octets := 0   // the name's length on the wire, uncompressed
	pointers := 0 // followed
	for {
		if off >= len(msg) {
			return 0, fmt.Errorf("name at offset %d: past the end", at)
		}
		c := int(msg[off])
		switch c & 0xc0 {
		case 0x00:
			if octets += 1 + c; octets > maxName {
				return 0, fmt.Errorf("name at offset %d: longer than %d octets", at, maxName)
			}
			if c == 0 {
				if end < 0 {
					end = off + 1
				}
				return end, nil
			}
			if off+1+c > len(msg) {
				return 0, fmt.Errorf("name at offset %d: label past the end", at)
			}
			off += 1 + c
		case 0xc0:
			if off+1 >= len(msg) {
				return 0, fmt.Errorf("name at offset %d: pointer past the end", at)
			}
			to := (c&0x3f)<<8 | int(msg[off+1])
			if end < 0 {
				end = off + 2
			}
			if to < headerLen || to >= start {
				return 0, fmt.Errorf("name at offset %d: pointer to offset %d, not back into the records", at, to)
			}
			if pointers++; pointers > maxPointers {
				return 0, fmt.Errorf("name at offset %d: more than %d pointers", at, maxPointers)
			}
			off, start = to, to
		default:
			// 0x40 (extended label, RFC 6891 section 5) and 0x80:
			// never used.
			return 0, fmt.Errorf("name at offset %d: label type %#x", at, c&0xc0)
		}
	}
}

// nameIs reports whether wire, a name in wire format without pointers, is
// the dotted fully qualified name, ignoring ASCII case (RFC 4343). A label
// that holds a dot matches no label of a dotted name.
func nameIs(wire []byte, name string) bool {
	if name == "." {
		return len(wire) == 1 && wire[0] == 0
	}
	for len(wire) > 0 {
		n := int(wire[0])
		wire = wire[1:]
		if n == 0 {
			return len(wire) == 0 && name == ""
		}
		if n > len(wire) || n >= len(name) || name[n] != '.' {
			return false
		}
		for i, c := range wire[:n] {
			if c == '.' || lower(c) != lower(name[i]) {
				return false
			}
		}
		wire, name = wire[n:], name[n+1:]
	}
	return false
}

// sameName reports whether the names at msg[a:] and msg[b:], both checked
// by nameEnd, are the same, ignoring ASCII case. Their pointers point
// backwards (nameEnd sees to it), so the walk ends.
func sameName(msg []byte, a, b int) bool {
	for {
		a, b = labels(msg, a), labels(msg, b)
		if a == b {
			return true
		}
		n := int(msg[a])
		if n != int(msg[b]) {
			return false
		}
		if n == 0 {
			return true
		}
		for i := 1; i <= n; i++ {
			if lower(msg[a+i]) != lower(msg[b+i]) {
				return false
			}
		}
		a, b = a+1+n, b+1+n
	}
}

// labels returns where the labels of the name at msg[off:] go on, past
// the pointers there.
func labels(msg []byte, off int) int {
	for msg[off]&0xc0 == 0xc0 {
		off = int(msg[off]&0x3f)<<8 | int(msg[off+1])
	}
	return off
}

// nameText is the name at msg[off:], checked by nameEnd, as text for an
// error: dotted, with octets other than letters, digits, '-' and '_' as
// \DDD escapes.
func nameText(msg []byte, off int) string {
	var b []byte
	for {
		off = labels(msg, off)
		n := int(msg[off])
		if n == 0 {
			break
		}
		for _, c := range msg[off+1 : off+1+n] {
			if 'a' <= lower(c) && lower(c) <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' {
				b = append(b, c)
			} else {
				b = append(b, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
			}
		}
		b = append(b, '.')
		off += 1 + n
	}
	if len(b) == 0 {
		return "."
	}
	return string(b)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func u16(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

func u32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
