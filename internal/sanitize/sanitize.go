// Package sanitize makes text from the network, or from files, safe to put
// in a reply line, a log field or an environment variable.
package sanitize

import "strings"

// Bounds for text that is about to become a reply line, a log field or an
// environment variable.
const (
	MaxReason = 200 // reply and reason text
	MaxField  = 256 // HELO, addresses
)

// Text returns s with every byte outside printable ASCII replaced by '?',
// cut to at most max bytes. Nothing that passed through it can break a
// reply line (no CR or LF), a log line or an environment variable.
func Text(s string, max int) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			clean = false
			break
		}
	}
	if clean && len(s) <= max {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b.WriteByte(c)
	}
	return b.String()
}
