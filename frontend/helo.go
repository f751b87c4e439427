package frontend

import (
	"fmt"
	"io"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/mxfront/mxfront/internal/sanitize"
)

// HELOMode is what the refusal dialogue does with a bogus HELO/EHLO name.
type HELOMode uint8

const (
	HELOOff    HELOMode = iota // not checked
	HELOLog                    // checked and logged (helo_bogus=...)
	HELORefuse                 // checked; a bogus name makes the refusal permanent
)

// ParseHELOMode reads --helo-check's value.
func ParseHELOMode(s string) (HELOMode, error) {
	switch s {
	case "off":
		return HELOOff, nil
	case "log":
		return HELOLog, nil
	case "refuse":
		return HELORefuse, nil
	}
	return HELOOff, fmt.Errorf("bad --helo-check %q: want off, log or refuse", sanitize.Text(s, 32))
}

func (m HELOMode) String() string {
	return [...]string{"off", "log", "refuse"}[min(int(m), 2)]
}

// HELOCheck judges the name a client gives in HELO/EHLO. mxfront sees it
// only in the refusal dialogue: a passed client's HELO goes to PROGRAM.
type HELOCheck struct {
	Mode HELOMode
	Deny *HELOPatterns // --helo-deny-file; nil: none
}

// Bogus returns why name is a bogus HELO/EHLO name for a connection whose
// local (our) address is local and whose server calls itself hostname, or
// "" if it is acceptable. The rules, in order: an address literal
// ([192.0.2.1], [IPv6:2001:db8::1]) is fine unless it is our own address
// or malformed; a bare IP without brackets, localhost, our own host name,
// a syntactically invalid name, a name without a dot, and a name matching
// a --helo-deny-file pattern are bogus. Unsure means fine: underscores and
// a trailing dot, common in honest clients, are tolerated.
func (h HELOCheck) Bogus(name, hostname string, local netip.AddrPort) string {
	why, _ := h.Judge(name, hostname, local)
	return why
}

// Judge is Bogus, with also the reason as the client may read it: a
// --helo-deny-file match shows its reason text, never the file. The
// refusal dialogue and the relay both judge HELO names with it.
func (h HELOCheck) Judge(name, hostname string, local netip.AddrPort) (why, public string) {
	if h.Mode == HELOOff {
		return "", ""
	}
	if p, ok := h.Deny.Match(strings.ToLower(strings.TrimSuffix(name, "."))); ok && badDomain(name) == "" {
		why, public = "matches "+p.Pattern+" ("+p.Source+")", "is on our list of bogus names"
		if p.Reason != "" {
			why += ": " + p.Reason
			public += ": " + p.Reason
		}
	}
	if w := h.rules(name, hostname, local); w != "" {
		return w, w
	}
	return why, public
}

func (h HELOCheck) rules(name, hostname string, local netip.AddrPort) string {
	lower := strings.ToLower(strings.TrimSuffix(name, "."))
	if strings.HasPrefix(name, "[") {
		return bogusLiteral(name, local)
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		if local.IsValid() && ip.Unmap() == local.Addr().Unmap() {
			return "is our own address, without brackets"
		}
		return "is a bare IP address (address literals are written [192.0.2.1])"
	}
	switch {
	case lower == "localhost" || lower == "localhost.localdomain" || strings.HasSuffix(lower, ".localhost"):
		return "is localhost"
	case hostname != "" && lower == strings.ToLower(strings.TrimSuffix(hostname, ".")):
		return "is our own host name"
	}
	if why := badDomain(name); why != "" {
		return why
	}
	if !strings.Contains(lower, ".") {
		return "has no dot"
	}
	return ""
}

// bogusLiteral judges an address literal: well formed and not ours.
func bogusLiteral(name string, local netip.AddrPort) string {
	inner, ok := strings.CutSuffix(name[1:], "]")
	if !ok {
		return "is a malformed address literal"
	}
	if v6, ok := cutPrefixFold(inner, "IPv6:"); ok {
		ip, err := netip.ParseAddr(v6)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return "is a malformed address literal"
		}
		inner = ip.String()
	}
	ip, err := netip.ParseAddr(inner)
	if err != nil || ip.Zone() != "" || (ip.Is6() && !strings.HasPrefix(strings.ToLower(name), "[ipv6:")) {
		return "is a malformed address literal"
	}
	if local.IsValid() && ip.Unmap() == local.Addr().Unmap() {
		return "is our own address"
	}
	return ""
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// badDomain checks RFC 5321's Domain syntax (letters, digits and hyphens in
// labels of 1 to 63 characters that neither start nor end with a hyphen;
// 255 characters in all), tolerating underscores and one trailing dot.
func badDomain(name string) string {
	s := strings.TrimSuffix(name, ".")
	if s == "" || len(s) > 255 {
		return "is not a valid host name"
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "is not a valid host name"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "is not a valid host name"
			}
		}
	}
	return ""
}

// HELOPatterns are the patterns of --helo-deny-file. Each line holds a
// shell-style pattern, then optionally a reason after white space; '#'
// starts a comment. A pattern matches the whole name, case-insensitively:
// '*' matches any run of characters (dots included), '?' one character,
// '[a-z0-9]' one of a class ('[!...]' negates). For example:
//
//	*.dynamic.example.net      dynamic pool
//	*[0-9]-[0-9]*-[0-9]*.*     looks like an address in a name
//	mail.example.com           not you: that is a customer's name
type HELOPatterns struct {
	pats []HELOPattern
}

// HELOPattern is one line of a --helo-deny-file.
type HELOPattern struct {
	Pattern string // lower case
	Reason  string
	Source  string // "file:line"
}

// ReadFile adds the patterns of the file at name.
func (h *HELOPatterns) ReadFile(name string) error {
	f, err := openList(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return h.read(f, name)
}

func (h *HELOPatterns) read(r io.Reader, name string) error {
	return readList(r, name, func(line int, pat, reason string) error {
		pat = strings.ToLower(pat)
		if _, err := path.Match(pat, ""); err != nil || strings.Contains(pat, "/") {
			return fmt.Errorf("bad pattern %q", sanitize.Text(pat, 64))
		}
		h.pats = append(h.pats, HELOPattern{Pattern: pat, Reason: sanitize.Text(reason, sanitize.MaxReason), Source: name + ":" + strconv.Itoa(line)})
		return nil
	})
}

// Len reports how many patterns h holds.
func (h *HELOPatterns) Len() int {
	if h == nil {
		return 0
	}
	return len(h.pats)
}

// Match returns the first pattern matching the lower-case name.
func (h *HELOPatterns) Match(name string) (HELOPattern, bool) {
	if h == nil {
		return HELOPattern{}, false
	}
	for _, p := range h.pats {
		// Patterns were checked when read; names hold no '/'.
		if ok, _ := path.Match(p.Pattern, name); ok {
			return p, true
		}
	}
	return HELOPattern{}, false
}

// heloRefusal is the verdict once a client showed a bogus HELO name and
// --helo-check is refuse: permanent, whatever the verdict was (a
// greylisted client gets 5xx now, and its record is forgotten).
func heloRefusal(v Verdict, name, why, public string) Verdict {
	name = sanitize.Text(name, sanitize.MaxField)
	reasons := append(append([]string(nil), v.Reasons...), "bogus HELO "+name+": it "+why)
	return Verdict{Action: Refuse, By: ByHELO, DNS: v.DNS, Greylist: v.Greylist, Reasons: reasons,
		Reply: Reply{554, StatusPolicy, sanitize.Text("HELO/EHLO name "+name+" rejected: it "+public, sanitize.MaxReason)}}
}
