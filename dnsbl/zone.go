package dnsbl

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind says whether a listing counts against a client or for it.
type Kind int

const (
	// Block is a DNS block list (--dnsbl): a listing adds the weight.
	Block Kind = iota
	// Allow is a DNS allow list (--dnswl): a listing subtracts the weight.
	Allow
)

func (k Kind) String() string {
	if k == Allow {
		return "dnswl"
	}
	return "dnsbl"
}

// MaxWeight bounds a weight so that no sum of weights can overflow.
const MaxWeight = 1_000_000

// A Zone is one configured list entry, ZONE[=FILTER][*WEIGHT] as in
// Postfix's postscreen_dnsbl_sites. The same zone name may be configured
// several times with different filters and weights: it is asked once, and
// each entry whose filter matches counts its weight once.
type Zone struct {
	Name   string // DNS zone, lower case, without the final dot
	Kind   Kind   // Block or Allow
	Filter Filter // which answers count; the zero Filter takes every valid answer
	Weight int    // as written after "*", 1 when absent
}

// ParseZone parses ZONE[=FILTER][*WEIGHT] as Postfix does: the text after
// the first "*" is the weight (an integer, may be negative), the text after
// the first "=" before it is the filter (see Filter). The zone name must be
// a valid host name; one final dot is allowed and dropped.
func ParseZone(spec string, kind Kind) (Zone, error) {
	z := Zone{Kind: kind, Weight: 1}
	rest := spec
	if i := strings.IndexByte(rest, '*'); i >= 0 {
		w, err := strconv.Atoi(rest[i+1:])
		if err != nil || w > MaxWeight || w < -MaxWeight {
			return Zone{}, fmt.Errorf("dnsbl: bad weight %q in %q: need an integer between %d and %d",
				rest[i+1:], spec, -MaxWeight, MaxWeight)
		}
		z.Weight, rest = w, rest[:i]
	}
	if i := strings.IndexByte(rest, '='); i >= 0 {
		f, err := ParseFilter(rest[i+1:])
		if err != nil {
			return Zone{}, fmt.Errorf("%v in %q", err, spec)
		}
		z.Filter, rest = f, rest[:i]
	}
	name, err := zoneName(rest)
	if err != nil {
		return Zone{}, fmt.Errorf("dnsbl: bad zone name %q in %q: %v", rest, spec, err)
	}
	z.Name = name
	return z, nil
}

// Points is what a listing adds to the score: the weight for a Block zone,
// minus its magnitude for an Allow zone (so --dnswl z*3 and --dnswl z*-3
// both count -3). A Block zone with a negative weight allows, as in Postfix.
func (z Zone) Points() int {
	if z.Kind == Allow && z.Weight > 0 {
		return -z.Weight
	}
	return z.Weight
}

// String returns the entry in ZONE[=FILTER][*WEIGHT] form.
func (z Zone) String() string {
	s := z.Name
	if !z.Filter.IsZero() {
		s += "=" + z.Filter.String()
	}
	if z.Weight != 1 {
		s += "*" + strconv.Itoa(z.Weight)
	}
	return s
}

// maxZoneName leaves room for the 64 characters of an IPv6 query prefix
// within the 253 characters of a domain name.
const maxZoneName = 253 - 64

// zoneName checks a host name the way Postfix's valid_hostname does: labels
// of letters, digits, "-" and "_", 1..63 long, not starting or ending with
// "-", and not all numeric (that would be an address, not a zone).
func zoneName(s string) (string, error) {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", fmt.Errorf("empty")
	}
	if len(s) > maxZoneName {
		return "", fmt.Errorf("longer than %d characters", maxZoneName)
	}
	numeric := true
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return "", fmt.Errorf("empty label")
		}
		if len(label) > 63 {
			return "", fmt.Errorf("label longer than 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("label starts or ends with \"-\"")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
				numeric = false
			default:
				return "", fmt.Errorf("bad character %q", c)
			}
		}
	}
	if numeric {
		return "", fmt.Errorf("all numeric")
	}
	return strings.ToLower(s), nil
}

// ParseReply parses a reply text setting ZONE=TEXT (--dnsbl-reply). TEXT
// may hold %IP% and %ZONE%, expanded when the reply is made.
func ParseReply(spec string) (zone, text string, err error) {
	name, text, ok := strings.Cut(spec, "=")
	if !ok || strings.TrimSpace(text) == "" {
		return "", "", fmt.Errorf("dnsbl: bad reply %q: need ZONE=TEXT", spec)
	}
	if zone, err = zoneName(name); err != nil {
		return "", "", fmt.Errorf("dnsbl: bad zone name %q in reply %q: %v", name, spec, err)
	}
	return zone, text, nil
}
