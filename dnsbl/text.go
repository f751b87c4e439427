package dnsbl

import (
	"net/netip"
	"strconv"
	"strings"
)

// MaxText bounds a reply text taken from DNS, in bytes.
const MaxText = 200

// genericText is the reply of a block listing that publishes no TXT record.
const genericText = "client [%IP%] blocked using %ZONE%"

// sanitize makes text from the network safe for an SMTP reply and a log
// line: printable ASCII only (white space becomes a blank, anything else
// "?"), runs of blanks folded, at most MaxText bytes. It can never yield a
// CR or LF.
func sanitize(s string) string {
	b := make([]byte, 0, min(len(s), MaxText))
	blank := true // drops leading blanks
	for i := 0; i < len(s) && len(b) < MaxText; i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f':
			if !blank {
				b = append(b, ' ')
			}
			blank = true
			continue
		case c < 0x20 || c > 0x7e:
			c = '?'
		}
		b = append(b, c)
		blank = false
	}
	return strings.TrimRight(string(b), " ")
}

// expand fills %IP% and %ZONE% into a reply template and sanitises it.
func expand(template string, ip netip.Addr, zone string) string {
	r := strings.NewReplacer("%IP%", ip.String(), "%ZONE%", zone)
	return sanitize(r.Replace(template))
}

// QueryName returns the name asked of zone about ip (RFC 5782): the octets
// of an IPv4 address reversed (2.0.0.127.zone), the nibbles of an IPv6
// address reversed. An IPv4-mapped IPv6 address is asked as IPv4. The name
// has no final dot; it is empty for an invalid address.
func QueryName(ip netip.Addr, zone string) string {
	return reverseName(ip.Unmap(), zone)
}

// reverseName is QueryName without unmapping, for the IPv6 test point
// ::FFFF:7F00:2, which RFC 5782 asks in nibble form.
func reverseName(ip netip.Addr, zone string) string {
	if !ip.IsValid() {
		return ""
	}
	b := make([]byte, 0, 64+len(zone))
	if ip.Is4() {
		a := ip.As4()
		for i := 3; i >= 0; i-- {
			b = strconv.AppendUint(b, uint64(a[i]), 10)
			b = append(b, '.')
		}
	} else {
		const hex = "0123456789abcdef"
		a := ip.As16()
		for i := 15; i >= 0; i-- {
			b = append(b, hex[a[i]&0xf], '.', hex[a[i]>>4], '.')
		}
	}
	return string(append(b, zone...))
}
