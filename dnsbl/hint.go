package dnsbl

import "strings"

// The hints say what an operator can do about a failing zone, plainly:
// the most common trouble by far is a list that refuses the site's
// resolver because it is a public one.

// causeHint is the hint for a zone whose lookups fail by cause, detail
// being the Error's Detail (e.g. "error answer 127.255.255.254").
func causeHint(cause Cause, detail string) string {
	switch cause {
	case ErrorCode:
		return errorCodeHint(strings.TrimPrefix(detail, "error answer "))
	case Refused:
		return "the DNS server answers REFUSED: it does not serve this host, or the list does not serve it; use a local resolver that asks the list itself"
	case Timeout:
		return "no answer in time: the list's servers or the resolver cannot be reached, or are overloaded; check the resolver, the zone name and the network"
	case ServFail:
		return "the resolver answers SERVFAIL: it cannot reach the list's servers, or the zone is broken; check the zone name, and try a local resolver"
	case BadAnswer:
		return "answers outside 127.0.0.0/8: an expired zone's wildcard, or a resolver that rewrites answers (NXDOMAIN hijacking); use a local resolver, or remove the list"
	case Unreadable:
		return "the answers cannot be read: a broken server or something on the path rewriting DNS; use a local resolver"
	}
	return "see the list's documentation and the resolver's log"
}

// errorCodeHint explains an error answer (127.255.255.x) as the large
// lists use them (Spamhaus's codes; others follow them).
func errorCodeHint(code string) string {
	switch code {
	case "127.255.255.254":
		return "answers 127.255.255.254: this list refuses queries from your resolver (a public or shared one, such as 8.8.8.8 or your provider's); use a local resolver that asks the list itself (e.g. unbound on 127.0.0.1)"
	case "127.255.255.255":
		return "answers 127.255.255.255: this list says your resolver asks too much (over its free-use limit); use a local resolver of your own, or the list's paid service"
	case "127.255.255.252":
		return "answers 127.255.255.252: this list says the query is malformed: check the zone name (a typing error?)"
	}
	return "answers " + code + ": this list refuses to answer you; see its usage policy, and use a local resolver that asks the list itself"
}

// healthHint is the hint for a zone whose test points gave h (p2 and p1
// being what 127.0.0.2 and 127.0.0.1 answered).
func healthHint(h Health, p2, p1 probe) string {
	switch h.Status {
	case OK:
		return ""
	case Refusing:
		for _, p := range []probe{p2, p1} {
			if p.err != nil && (p.err.Cause == ErrorCode || p.err.Cause == Refused) {
				return causeHint(p.err.Cause, p.err.Detail)
			}
		}
	case AnsweringAll:
		return "127.0.0.1 is listed: the list answers every address (shut down, expired, or a resolver rewriting answers); it would refuse every client: remove it"
	case Dead:
		if p2.err != nil {
			return causeHint(p2.err.Cause, p2.err.Detail)
		}
		return "127.0.0.2 is not listed: the zone name is wrong, or the list no longer works (RFC 5782 requires that test point)"
	}
	return ""
}
