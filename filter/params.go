package filter

import (
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// mediaValue is a Content-Type or Content-Disposition field read the way
// mail readers read it, not the way mime.ParseMediaType does: that one
// gives up on the whole field for one duplicate parameter or one character
// RFC 2045 does not allow, and drops RFC 2231 values in any charset but
// us-ascii and utf-8. An attachment check that gives up where the reader
// does not is one an executable can walk around.
type mediaValue struct {
	Type    string  // lower-case, "" when absent
	Params  []param // in order; one name may come several times
	Problem string  // the first thing the reader had to guess at
}

// param is one parameter: its lower-case name without RFC 2231 section
// marks, and its value with the sections joined and decoded.
type param struct{ Name, Value string }

// all returns every value of the named parameter.
func (m mediaValue) all(name string) []string {
	var out []string
	for _, p := range m.Params {
		if p.Name == name {
			out = append(out, p.Value)
		}
	}
	return out
}

// first returns the first value of the named parameter ("" when absent).
func (m mediaValue) first(name string) string {
	for _, p := range m.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// section is one RFC 2231 piece of a parameter ("name*1*=...").
type section struct {
	n        int
	extended bool
	raw      string
}

// parseMediaValue reads "type/sub; a=b; c*=utf-8”d" with RFC 2045
// comments anywhere between tokens, quoted or unquoted values (an unquoted
// value runs to the next ";", as bulk mailers write boundaries holding
// "=", "/" or "@"), and RFC 2231 continuations and charsets.
func parseMediaValue(v string) mediaValue {
	var m mediaValue
	note := func(p string) {
		if m.Problem == "" {
			m.Problem = p
		}
	}
	head, rest := splitParam(v)
	if indexOutsideComments(head, '=') >= 0 {
		// No media type, a parameter first: read it as one.
		note("parameter where the type should be")
		rest, head = v, ""
	}
	m.Type = strings.ToLower(strings.TrimSpace(stripComments(head)))
	type group struct {
		name     string
		sections []section
		seen     map[int]bool
	}
	var groups []*group
	open := map[string]*group{}
	for rest != "" {
		var item string
		item, rest = splitParam(rest)
		item = strings.TrimSpace(item)
		if strings.TrimSpace(stripComments(item)) == "" {
			continue
		}
		eq := indexOutsideComments(item, '=')
		if eq < 0 {
			note("parameter without a value")
			continue
		}
		attr := asciiLower(strings.TrimSpace(stripComments(item[:eq])))
		if i := lastNonAttr(attr); i >= 0 {
			// Junk before the name ("\x91filename="): the name is the
			// run of name characters before "=".
			note("junk before a parameter name")
			attr = attr[i+1:]
		}
		val, ok := paramValue(item[eq+1:])
		if !ok {
			note("unterminated quoted parameter value")
		}
		name, sec, isSection := splitSection(attr)
		if !isSection {
			m.Params = append(m.Params, param{Name: name, Value: val})
			continue
		}
		g := open[name]
		if g == nil || g.seen[sec.n] {
			g = &group{name: name, seen: map[int]bool{}}
			open[name] = g
			groups = append(groups, g)
		}
		g.seen[sec.n] = true
		sec.raw = val
		g.sections = append(g.sections, sec)
	}
	for _, g := range groups {
		val, problem := joinSections(g.sections)
		if problem != "" {
			note(problem)
		}
		m.Params = append(m.Params, param{Name: g.name, Value: val})
	}
	return m
}

// lastNonAttr is the index of the last byte of s that cannot be in a
// parameter name, or -1.
func lastNonAttr(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !(c == '*' || c == '-' || c == '_' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z') {
			return i
		}
	}
	return -1
}

// splitParam returns the text before the first ";" that is outside quotes
// and comments, and the text after it.
func splitParam(s string) (string, string) {
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && (quoted || depth > 0):
			i++
		case quoted:
			quoted = c != '"'
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == '"' && depth == 0:
			quoted = true
		case c == ';' && depth == 0:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func indexOutsideComments(s string, want byte) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == want && depth == 0:
			return i
		}
	}
	return -1
}

// stripComments removes RFC 2045 comments (nested parentheses) outside
// quoted strings.
func stripComments(s string) string {
	if !strings.Contains(s, "(") {
		return s
	}
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case depth > 0:
			switch c {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
			}
			continue
		case quoted:
			if c == '\\' && i+1 < len(s) {
				b.WriteByte(c)
				i++
				c = s[i]
			} else if c == '"' {
				quoted = false
			}
		case c == '"':
			quoted = true
		case c == '(':
			depth++
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// paramValue reads a quoted string (its escapes undone) or an unquoted
// value with its comments removed; false when a quote is never closed (the
// rest is the value, as readers take it).
func paramValue(s string) (string, bool) {
	s = strings.TrimLeft(stripLeadingComments(s), " \t")
	if !strings.HasPrefix(s, `"`) {
		return strings.TrimSpace(stripComments(s)), true
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), true
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), false
}

func stripLeadingComments(s string) string {
	for {
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, "(") {
			return s
		}
		depth := 0
		i := 0
		for ; i < len(s); i++ {
			if s[i] == '\\' {
				i++
				continue
			}
			if s[i] == '(' {
				depth++
			} else if s[i] == ')' {
				if depth--; depth == 0 {
					break
				}
			}
		}
		if i >= len(s) {
			return ""
		}
		s = s[i+1:]
	}
}

// splitSection reads an RFC 2231 attribute: "name*" (one extended value),
// "name*N" or "name*N*" (a section); false for a plain name.
func splitSection(attr string) (string, section, bool) {
	i := strings.IndexByte(attr, '*')
	if i < 0 {
		return attr, section{}, false
	}
	name, rest := attr[:i], attr[i+1:]
	if rest == "" {
		return name, section{n: 0, extended: true}, true
	}
	ext := strings.HasSuffix(rest, "*")
	n, err := strconv.Atoi(strings.TrimSuffix(rest, "*"))
	if err != nil || n < 0 {
		// Not RFC 2231 after all: keep it under its whole name.
		return attr, section{}, false
	}
	return name, section{n: n, extended: ext}, true
}

// joinSections puts RFC 2231 sections in order, undoes the percent
// escapes of the extended ones and decodes the charset named by the first.
func joinSections(secs []section) (string, string) {
	sort.SliceStable(secs, func(i, j int) bool { return secs[i].n < secs[j].n })
	problem := ""
	charset := ""
	var raw []byte
	for i, s := range secs {
		v := s.raw
		if s.extended {
			if i == 0 {
				// charset'language'value; a section without the two
				// quotes is taken whole (some mailers leave them out).
				if cs, rest, ok := strings.Cut(v, "'"); ok {
					if _, val, ok := strings.Cut(rest, "'"); ok {
						charset, v = strings.ToLower(strings.TrimSpace(cs)), val
					}
				}
			}
			b, ok := percentDecode(v)
			if !ok && problem == "" {
				problem = "bad percent escape in an RFC 2231 value"
			}
			raw = append(raw, b...)
		} else {
			raw = append(raw, v...)
		}
	}
	return decodeCharset(charset, raw), problem
}

func percentDecode(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	ok := true
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if b, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				out = append(out, byte(b))
				i += 2
				continue
			}
		}
		if s[i] == '%' {
			ok = false
		}
		out = append(out, s[i])
	}
	return out, ok
}

// decodeCharset turns bytes in a named charset into text for judging. The
// charsets mail uses for file names are ASCII-compatible (iso-8859-*,
// koi8-r, windows-125x, gb2312, shift_jis, ...): their bytes are kept as
// they are, so that ".exe" is ".exe" whatever the charset is called. UTF-16
// is not ASCII-compatible and is decoded.
func decodeCharset(charset string, b []byte) string {
	var order func([]byte) uint16
	switch strings.ReplaceAll(charset, "_", "-") {
	case "utf-16", "utf-16be", "ucs-2", "unicodefffe":
		order = func(p []byte) uint16 { return uint16(p[0])<<8 | uint16(p[1]) }
		if charset != "utf-16be" && len(b) >= 2 && b[0] == 0xff && b[1] == 0xfe {
			order = func(p []byte) uint16 { return uint16(p[1])<<8 | uint16(p[0]) }
		}
	case "utf-16le", "ucs-2le", "unicode":
		order = func(p []byte) uint16 { return uint16(p[1])<<8 | uint16(p[0]) }
	default:
		return string(b)
	}
	var u []uint16
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, order(b[i:i+2]))
	}
	if len(u) > 0 && u[0] == 0xfeff {
		u = u[1:]
	}
	return string(utf16.Decode(u))
}
