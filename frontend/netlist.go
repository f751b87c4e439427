package frontend

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/mxfront/mxfront/internal/sanitize"
)

// NetList is a set of networks, each with an optional reason, read from
// --allow/--deny flags and files. A lookup finds the most specific entry
// holding an address; an exclusion ("!NET", as in rbldnsd's ip4set) wins
// over a wider entry.
type NetList struct {
	entries []netEntry // sorted by first address, then by size (widest first)
}

type netEntry struct {
	first, last netip.Addr // inclusive range, both in the same family
	bits        int        // size of the range as a prefix length (ranges: the tightest prefix)
	exclude     bool
	reason      string
	file        string // where it was read: a file, or "--deny"
	line        int    // the file's line; 0 for a flag
}

// source is where e was read, for the log: "file:line" or "--deny". It is
// put together only for the entry a lookup finds: a chain-mode process
// reads the whole file at every start.
func (e *netEntry) source() string {
	if e.line == 0 {
		return e.file
	}
	return e.file + ":" + strconv.Itoa(e.line)
}

// Listing is the entry of a NetList that holds an address.
type Listing struct {
	Net    string // the network as written in the source
	Reason string // the text after the network, if any
	Source string // where it was read: "--deny", "/etc/mxfront/deny:12"
}

// Len reports how many entries the list holds.
func (l *NetList) Len() int {
	if l == nil {
		return 0
	}
	return len(l.entries)
}

// Lookup returns the most specific entry holding ip; ok is false when none
// does or when the most specific one is an exclusion.
func (l *NetList) Lookup(ip netip.Addr) (Listing, bool) {
	if l == nil || len(l.entries) == 0 || !ip.IsValid() {
		return Listing{}, false
	}
	ip = ip.Unmap().WithZone("")
	var best *netEntry
	// Entries start in order; anything starting after ip cannot hold it.
	n := sort.Search(len(l.entries), func(i int) bool { return l.entries[i].first.Compare(ip) > 0 })
	for i := n - 1; i >= 0; i-- {
		e := &l.entries[i]
		if e.first.BitLen() != ip.BitLen() || e.last.Compare(ip) < 0 {
			continue
		}
		if best == nil || e.bits > best.bits || (e.bits == best.bits && e.exclude) {
			best = e
		}
	}
	if best == nil || best.exclude {
		return Listing{}, false
	}
	return Listing{Net: rangeString(best.first, best.last), Reason: best.reason, Source: best.source()}, true
}

// Add parses one entry (NET, as on the command line) and adds it.
func (l *NetList) Add(spec, reason, source string) error {
	e, err := parseNet(spec)
	if err != nil {
		return fmt.Errorf("%s: %v", source, err)
	}
	e.reason = sanitize.Text(reason, sanitize.MaxReason)
	e.file = source
	l.entries = append(l.entries, e)
	l.sort()
	return nil
}

// ReadFile adds every entry of an allow/deny file: one "NET [reason text]"
// a line, '#' comments and blank lines ignored. NET is an IP, a CIDR, a
// range "A-B", an rbldnsd ip4set-style abbreviation ("10.1" is 10.1.0.0/16)
// or any of these after '!' (an exception). rbldnsd's ':' value and '$'
// directive lines are skipped, so an ip4set file can be shared.
func (l *NetList) ReadFile(path string) error {
	f, err := openList(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return l.read(f, path)
}

func (l *NetList) read(r io.Reader, name string) error {
	err := readList(r, name, func(line int, spec, reason string) error {
		if spec[0] == '$' || spec[0] == ':' && !strings.HasPrefix(spec, "::") {
			return nil // rbldnsd's directives and default value
		}
		if strings.HasPrefix(reason, ":") {
			// rbldnsd's ":127.0.0.2:text" value: keep the text.
			_, reason, _ = strings.Cut(reason[1:], ":")
		}
		e, err := parseNet(spec)
		if err != nil {
			return err
		}
		e.reason = sanitize.Text(strings.TrimSpace(reason), sanitize.MaxReason)
		e.file, e.line = name, line
		l.entries = append(l.entries, e)
		return nil
	})
	l.sort()
	return err
}

// readList reads a list file of mxfront's format (allow/deny lists, HELO
// patterns): one entry a line, the first field then optional reason text;
// '#' starts a comment; blank lines are skipped. fn gets each entry with
// its line number; its error is reported at that line.
func readList(r io.Reader, name string, fn func(line int, first, rest string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		first, rest := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			first, rest = line[:i], strings.TrimSpace(line[i+1:])
		}
		if err := fn(n, first, rest); err != nil {
			return fmt.Errorf("%s:%d: %v", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	return nil
}

func (l *NetList) sort() {
	slices.SortStableFunc(l.entries, func(a, b netEntry) int {
		if c := a.first.Compare(b.first); c != 0 {
			return c
		}
		return a.bits - b.bits
	})
}

func parseNet(s string) (netEntry, error) {
	var e netEntry
	if strings.HasPrefix(s, "!") {
		e.exclude = true
		s = s[1:]
	}
	switch {
	case s == "":
		return e, fmt.Errorf("empty network")
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return e, fmt.Errorf("bad network %q: want an IP, CIDR or range", s)
		}
		p = p.Masked()
		if p.Addr().Is4In6() {
			return e, fmt.Errorf("bad network %q: write IPv4 networks as IPv4", s)
		}
		e.first, e.bits = p.Addr(), p.Bits()
		e.last = lastAddr(p)
	case strings.Contains(s, "-"):
		a, b, _ := strings.Cut(s, "-")
		first, err1 := parseAddr(a)
		last, err2 := parseAddr(b)
		if err1 != nil || err2 != nil || first.BitLen() != last.BitLen() || last.Less(first) {
			return e, fmt.Errorf("bad range %q", s)
		}
		e.first, e.last = first, last
		e.bits = commonBits(first, last)
	default:
		if ip, err := parseAddr(s); err == nil {
			e.first, e.last, e.bits = ip, ip, ip.BitLen()
			break
		}
		// rbldnsd ip4set abbreviation: "10", "10.1", "10.1.2".
		parts := strings.Split(s, ".")
		if len(parts) > 3 || strings.Contains(s, ":") {
			return e, fmt.Errorf("bad network %q: want an IP, CIDR or range", s)
		}
		full := s + strings.Repeat(".0", 4-len(parts))
		ip, err := netip.ParseAddr(full)
		if err != nil {
			return e, fmt.Errorf("bad network %q: want an IP, CIDR or range", s)
		}
		p := netip.PrefixFrom(ip, 8*len(parts))
		e.first, e.last, e.bits = ip, lastAddr(p), p.Bits()
	}
	return e, nil
}

func parseAddr(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return ip, err
	}
	return ip.Unmap().WithZone(""), nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func commonBits(a, b netip.Addr) int {
	x, y := a.AsSlice(), b.AsSlice()
	for i := range x {
		if d := x[i] ^ y[i]; d != 0 {
			n := 0
			for d&0x80 == 0 {
				d <<= 1
				n++
			}
			return i*8 + n
		}
	}
	return len(x) * 8
}

func rangeString(first, last netip.Addr) string {
	if first == last {
		return first.String()
	}
	bits := commonBits(first, last)
	if p := netip.PrefixFrom(first, bits); p.Masked().Addr() == first && lastAddr(p) == last {
		return p.String()
	}
	return first.String() + "-" + last.String()
}

// openList opens a list file for reading. Not os.Open: that registers the
// file with Go's network poller, and the first registration sets up epoll
// in a chain-mode process that has no other use for it. A regular file
// never blocks, so a plain blocking descriptor is what os.NewFile gets.
func openList(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
