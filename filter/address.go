package filter

import (
	"errors"
	"strings"
)

// The address check reads From, Sender, Reply-To, To and Cc as mail readers
// do: RFC 5322 with its obsolete syntax (section 4.4: routes, empty list
// items, comments and blanks around "@" and "."), and the shapes mail
// programs write that readers accept all the same: a display name that is
// an address or holds an unquoted comma, local parts with consecutive or
// trailing dots (old Japanese mobile carriers hand them out), domain
// literals. It refuses what no reader can parse: an unclosed quote,
// comment, bracket or angle, an address without a local part or domain,
// two "@", text after an angle address.

// addrTok is one token of an address field: an atom ('a'), a quoted
// string ('q'), a domain literal ('l') or a special character (itself).
type addrTok struct {
	kind byte
	text string
}

var errAddress = errors.New("unparsable address")

func tokenizeAddresses(s string) ([]addrTok, error) {
	var toks []addrTok
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '(':
			depth := 0
			for ; i < len(s); i++ {
				if s[i] == '\\' {
					i++
				} else if s[i] == '(' {
					depth++
				} else if s[i] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			if i >= len(s) {
				return nil, errAddress // unclosed comment
			}
			i++
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, errAddress // unclosed quote
			}
			toks = append(toks, addrTok{'q', s[i+1 : j]})
			i = j + 1
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, errAddress
			}
			toks = append(toks, addrTok{'l', s[i : i+j+1]})
			i += j + 1
		case strings.IndexByte("<>@,;:.)]", c) >= 0:
			toks = append(toks, addrTok{c, string(c)})
			i++
		default:
			j := i
			for j < len(s) && strings.IndexByte(" \t\r\n()\"[]<>@,;:.", s[j]) < 0 {
				j++
			}
			toks = append(toks, addrTok{'a', s[i:j]})
			i = j
		}
	}
	return toks, nil
}

type addrList struct {
	toks  []addrTok
	i     int
	addrs []string // the addr-specs found, local@domain
	items int      // mailboxes and groups
}

func (p *addrList) peek() byte {
	if p.i < len(p.toks) {
		return p.toks[p.i].kind
	}
	return 0
}

// parseAddressList returns the addresses of an address-list field (and
// how many mailboxes and groups it holds), or an error when no reader
// could make sense of it.
func parseAddressList(v string) ([]string, int, error) {
	toks, err := tokenizeAddresses(v)
	if err != nil {
		return nil, 0, err
	}
	p := &addrList{toks: toks}
	if err := p.list(false); err != nil {
		return nil, 0, err
	}
	if p.i != len(p.toks) {
		return nil, 0, errAddress
	}
	return p.addrs, p.items, nil
}

// list reads elements separated by commas; in a group it stops at ";".
// A bare phrase (no "@", no angle) is a display name cut by an unquoted
// comma, and must be followed by a name and angle address.
func (p *addrList) list(inGroup bool) error {
	pendingPhrase := false
	for {
		kind, err := p.element(inGroup)
		if err != nil {
			return err
		}
		if pendingPhrase && kind != elemNameAddr {
			return errAddress
		}
		pendingPhrase = kind == elemPhrase
		switch p.peek() {
		case ',':
			p.i++
			continue
		case ';':
			if inGroup {
				if pendingPhrase {
					return errAddress
				}
				return nil
			}
		case 0:
			if pendingPhrase {
				return errAddress
			}
			return nil
		}
		return errAddress
	}
}

const (
	elemEmpty = iota
	elemAddrSpec
	elemNameAddr
	elemGroup
	elemPhrase
)

func (p *addrList) element(inGroup bool) (int, error) {
	start := p.i
	for k := p.peek(); k == 'a' || k == 'q' || k == '.' || k == '@' || k == 'l'; k = p.peek() {
		p.i++
	}
	phrase := p.toks[start:p.i]
	switch p.peek() {
	case '<':
		p.i++
		if err := p.angle(); err != nil {
			return 0, err
		}
		p.items++
		return elemNameAddr, nil
	case ':':
		if inGroup || len(phrase) == 0 {
			return 0, errAddress
		}
		p.i++
		if err := p.list(true); err != nil {
			return 0, err
		}
		if p.peek() == ';' {
			p.i++
		}
		p.items++
		return elemGroup, nil
	}
	if len(phrase) == 0 {
		return elemEmpty, nil
	}
	if !hasAt(phrase) {
		return elemPhrase, nil
	}
	addr, err := addrSpec(phrase)
	if err != nil {
		return 0, err
	}
	p.addrs = append(p.addrs, addr)
	p.items++
	return elemAddrSpec, nil
}

func hasAt(toks []addrTok) bool {
	for _, t := range toks {
		if t.kind == '@' {
			return true
		}
	}
	return false
}

// angle reads "[route] addr-spec >" after the "<".
func (p *addrList) angle() error {
	if p.peek() == '@' || p.peek() == ',' {
		// obs-route: "@a.example,@b.example:" before the address.
		for p.peek() != ':' {
			switch p.peek() {
			case '@', ',', '.', 'a', 'l':
				p.i++
			default:
				return errAddress
			}
		}
		p.i++
	}
	start := p.i
	for k := p.peek(); k != '>'; k = p.peek() {
		if k == 0 || k == '<' || k == ',' || k == ';' || k == ':' {
			return errAddress
		}
		p.i++
	}
	addr, err := addrSpec(p.toks[start:p.i])
	if err != nil {
		return err
	}
	p.i++ // ">"
	p.addrs = append(p.addrs, addr)
	return nil
}

// addrSpec checks local-part "@" domain: a local part of words and dots
// in any order (real addresses have ".." and a trailing "."), a domain of
// atoms and dots or one domain literal.
func addrSpec(toks []addrTok) (string, error) {
	at := -1
	for i, t := range toks {
		if t.kind == '@' {
			if at >= 0 {
				return "", errAddress
			}
			at = i
		}
	}
	if at < 0 {
		return "", errAddress
	}
	var local, domain strings.Builder
	words := 0
	for _, t := range toks[:at] {
		switch t.kind {
		case 'a', 'q':
			words++
		case '.':
		default:
			return "", errAddress
		}
		local.WriteString(t.text)
	}
	labels := 0
	dom := toks[at+1:]
	if len(dom) == 1 && dom[0].kind == 'l' {
		return local.String() + "@" + dom[0].text, nil
	}
	for _, t := range dom {
		switch t.kind {
		case 'a':
			labels++
		case '.':
		default:
			return "", errAddress
		}
		domain.WriteString(t.text)
	}
	if words == 0 || labels == 0 {
		return "", errAddress
	}
	return local.String() + "@" + domain.String(), nil
}
