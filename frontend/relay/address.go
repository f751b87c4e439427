package relay

import (
	"net/netip"
	"strings"
)

// Paths and addresses as RFC 5321 section 4.1.2 writes them, read as a
// relay must: strictly enough to refuse what no honest client sends, and
// leniently where honest clients differ (a space after the colon, an
// obsolete source route, 8-bit octets under SMTPUTF8).

// parsePath reads "FROM:<path> [params]" or "TO:<path> [params]" and
// returns the path without its brackets (and without a source route).
func parsePath(arg, keyword string) (path, params string, ok bool) {
	if len(arg) < len(keyword) || !strings.EqualFold(arg[:len(keyword)], keyword) {
		return "", "", false
	}
	rest := strings.TrimLeft(arg[len(keyword):], " ")
	if !strings.HasPrefix(rest, "<") {
		return "", "", false
	}
	end := closing(rest)
	if end < 0 {
		return "", "", false
	}
	path, params = rest[1:end], rest[end+1:]
	if params != "" && params[0] != ' ' {
		return "", "", false
	}
	if strings.HasPrefix(path, "@") {
		// <@relay.example:user@example.org>: the route is ignored (RFC
		// 5321 section 4.1.1.3 says so too).
		colon := strings.IndexByte(path, ':')
		if colon < 0 {
			return "", "", false
		}
		path = path[colon+1:]
	}
	return path, strings.TrimSpace(params), true
}

// closing finds the '>' that closes the path in s ("<...>"), stepping
// over a quoted local part, which may hold one.
func closing(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case c == '>' && !quoted:
			return i
		}
	}
	return -1
}

// mailbox checks "local-part@domain" (RFC 5321 4.1.2) and returns the
// domain; why says what is wrong ("" when nothing is). A domain is a host
// name or an address literal.
func mailbox(addr string) (domain string, why string) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "", "has no domain"
	}
	local, domain := addr[:at], addr[at+1:]
	if why := localPart(local); why != "" {
		return domain, why
	}
	if strings.HasPrefix(domain, "[") {
		if !literal(domain) {
			return domain, "has a malformed address literal"
		}
		return domain, ""
	}
	if !hostName(domain) {
		return domain, "has a malformed domain"
	}
	return domain, ""
}

func localPart(s string) string {
	switch {
	case s == "":
		return "has an empty local part"
	case len(s) > 64 && !strings.HasPrefix(s, "\""):
		// RFC 5321 4.5.3.1.1 says 64; honest senders exceed it (VERP,
		// SRS), so only the absurd is refused.
		if len(s) > 256 {
			return "has a local part longer than 256 octets"
		}
	}
	if s[0] == '"' {
		if len(s) < 2 || s[len(s)-1] != '"' {
			return "has a malformed quoted local part"
		}
		for i := 1; i < len(s)-1; i++ {
			c := s[i]
			if c == '\\' {
				i++
				continue
			}
			if c == '"' || c < 0x20 && c != '\t' || c == 0x7f {
				return "has a malformed quoted local part"
			}
		}
		return ""
	}
	if s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return "has a malformed local part"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !atext(c) && c != '.' {
			return "has a malformed local part"
		}
	}
	return ""
}

// atext is RFC 5322's atext, and any 8-bit octet (RFC 6531's UTF-8).
func atext(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 || c >= 0x80
}

// hostName checks a domain: labels of letters, digits, hyphens (and
// underscores, and 8-bit octets of an IDN's U-labels), none empty or
// longer than 63 octets, none starting or ending with a hyphen.
func hostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 255 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c >= 0x80) {
				return false
			}
		}
	}
	return true
}

// literal checks "[192.0.2.1]" and "[IPv6:2001:db8::1]".
func literal(s string) bool {
	inner, ok := strings.CutSuffix(strings.TrimPrefix(s, "["), "]")
	if !ok {
		return false
	}
	if len(inner) > 5 && strings.EqualFold(inner[:5], "IPv6:") {
		a, err := netip.ParseAddr(inner[5:])
		return err == nil && a.Is6() && a.Zone() == ""
	}
	a, err := netip.ParseAddr(inner)
	return err == nil && a.Is4()
}

// ascii reports whether s is 7-bit: only such domains are asked of DNS
// (an IDN's U-labels would need their A-labels).
func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
