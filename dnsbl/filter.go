package dnsbl

import (
	"fmt"
	"net/netip"
	"strings"
)

// A Filter says which answers of a list count, in Postfix postscreen's
// address pattern syntax: four fields separated by ".", each a decimal
// number 0..255 or a "[]" sequence of ";"-separated numbers and
// number..number ranges, e.g. 127.0.0.[2..11] or 127.0.[0..255].[2;4;10].
// The whole pattern may be enclosed in "[]".
//
// As an extension, several patterns may be joined with ";" outside brackets
// (127.0.0.2;127.0.0.3): an answer matches when it matches any of them.
//
// The zero Filter matches every answer (error answers never reach a filter).
type Filter struct {
	text string
	alts []pattern
}

// pattern is one four-field address pattern: a 256-bit set per octet.
type pattern [4]octetSet

type octetSet [4]uint64

func (s *octetSet) add(lo, hi int) {
	for v := lo; v <= hi; v++ {
		s[v>>6] |= 1 << (v & 63)
	}
}

func (s *octetSet) has(v byte) bool { return s[v>>6]&(1<<(v&63)) != 0 }

// ParseFilter parses a reply filter such as 127.0.0.[2..11].
func ParseFilter(text string) (Filter, error) {
	if text == "" {
		return Filter{}, fmt.Errorf("dnsbl: bad filter %q: empty address pattern", text)
	}
	f := Filter{text: text}
	for _, alt := range splitTop(text) {
		p, err := parsePattern(alt)
		if err != nil {
			return Filter{}, fmt.Errorf("dnsbl: bad filter %q: %v", text, err)
		}
		f.alts = append(f.alts, p)
	}
	return f, nil
}

// splitTop splits s at the ";" that are outside brackets.
func splitTop(s string) []string { return splitOutside(s, ';') }

// splitOutside splits s at each sep outside brackets.
func splitOutside(s string, sep byte) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
		case sep:
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// parsePattern follows Postfix's ip_match_parse: optional brackets around
// the whole pattern, then exactly four fields.
func parsePattern(s string) (pattern, error) {
	var p pattern
	if strings.HasPrefix(s, "[") {
		end := closingBracket(s)
		if end < 0 {
			return p, fmt.Errorf(`missing "]" character`)
		}
		if end == len(s)-1 {
			s = s[1:end]
		}
	}
	if s == "" {
		return p, fmt.Errorf("empty address pattern")
	}
	rest := s
	for i := 0; i < 4; i++ {
		if i > 0 {
			if !strings.HasPrefix(rest, ".") {
				return p, fmt.Errorf("need 4 fields separated by \".\" at %q", rest)
			}
			rest = rest[1:]
		}
		var err error
		if rest, err = parseField(rest, &p[i]); err != nil {
			return p, err
		}
	}
	if rest != "" {
		return p, fmt.Errorf("garbage after pattern at %q", rest)
	}
	return p, nil
}

// closingBracket returns the index of the "]" that closes the "[" at s[0],
// counting nesting as Postfix does, or -1.
func closingBracket(s string) int {
	level := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '[' {
			level++
		}
		if s[i] == ']' {
			level--
			if level == 0 {
				return i
			}
		}
	}
	return -1
}

// parseField parses a number or a [seq] into set and returns the rest.
func parseField(s string, set *octetSet) (string, error) {
	if !strings.HasPrefix(s, "[") {
		v, rest, err := parseOctet(s)
		if err != nil {
			return s, fmt.Errorf(`need decimal number 0..255 or "[" at %q`, s)
		}
		set.add(v, v)
		return rest, nil
	}
	rest := s[1:]
	for {
		lo, r, err := parseOctet(rest)
		if err != nil {
			return s, fmt.Errorf("need decimal number 0..255 at %q", rest)
		}
		hi := lo
		if strings.HasPrefix(r, "..") {
			if hi, r, err = parseOctet(r[2:]); err != nil || hi < lo {
				return s, fmt.Errorf("numeric range error at %q", rest)
			}
		}
		set.add(lo, hi)
		switch {
		case strings.HasPrefix(r, ";"):
			rest = r[1:]
		case strings.HasPrefix(r, "]"):
			return r[1:], nil
		default:
			return s, fmt.Errorf(`need ";" or "]" at %q`, r)
		}
	}
}

// parseOctet reads a run of decimal digits worth at most 255.
func parseOctet(s string) (int, string, error) {
	i, v := 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		v = v*10 + int(s[i]-'0')
		if v > 255 {
			return 0, s, fmt.Errorf("octet out of range")
		}
		i++
	}
	if i == 0 {
		return 0, s, fmt.Errorf("no number")
	}
	return v, s[i:], nil
}

// Match reports whether the answer a passes the filter. Only IPv4 answers
// can match a pattern; the zero Filter matches everything.
func (f Filter) Match(a netip.Addr) bool {
	if len(f.alts) == 0 {
		return true
	}
	a = a.Unmap()
	if !a.Is4() {
		return false
	}
	b := a.As4()
	for i := range f.alts {
		p := &f.alts[i]
		if p[0].has(b[0]) && p[1].has(b[1]) && p[2].has(b[2]) && p[3].has(b[3]) {
			return true
		}
	}
	return false
}

// IsZero reports whether f is the zero Filter, which takes every answer.
func (f Filter) IsZero() bool { return len(f.alts) == 0 }

// String returns the filter as it was written.
func (f Filter) String() string { return f.text }
