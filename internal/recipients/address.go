package recipients

import "strings"

// Normal returns the address as the sources store it: lower case, without
// a trailing dot on the domain. Local parts are case-sensitive in theory
// (RFC 5321 section 2.4) and never in practice: qmail's validrcptto.cdb
// convention lower-cases them too.
func Normal(addr string) string {
	addr = strings.ToLower(strings.TrimSpace(addr))
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		return addr[:at] + "@" + strings.TrimSuffix(addr[at+1:], ".")
	}
	return addr
}

// Domain returns the domain of a normal address ("" without one).
func Domain(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		return addr[at+1:]
	}
	return ""
}
