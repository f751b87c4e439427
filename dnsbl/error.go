package dnsbl

// Cause says why a zone could not be asked.
type Cause int

const (
	// Timeout: no server answered before the deadline.
	Timeout Cause = iota + 1
	// ServFail: the server answered SERVFAIL.
	ServFail
	// Refused: the server answered REFUSED.
	Refused
	// ErrorCode: the list answered with an address in 127.255.255.0/24,
	// its way of saying "I will not answer you" (typically: you query
	// through a public resolver).
	ErrorCode
	// BadAnswer: the list answered with an address outside 127.0.0.0/8,
	// which no list uses for a listing (an expired zone's wildcard, a
	// hijacking resolver).
	BadAnswer
	// Broken: anything else (a network error, another DNS error code, an
	// invalid client address).
	Broken
	// Unreadable: a server answered, and the answer could not be used:
	// truncated over TCP too, cut short by a closed connection,
	// malformed, for another question, records of another class or
	// name, NXDOMAIN holding records.
	Unreadable
	// Exhausted: the question could not even be sent for lack of our own
	// resources (no fd, no buffer, no memory for a socket). Not "unsure":
	// a caller that passes the client for it lets anyone who holds enough
	// connections open switch the lists off.
	Exhausted
)

func (c Cause) String() string {
	switch c {
	case Timeout:
		return "timeout"
	case ServFail:
		return "servfail"
	case Refused:
		return "refused"
	case ErrorCode:
		return "error code"
	case BadAnswer:
		return "bad answer"
	case Unreadable:
		return "unreadable answer"
	case Exhausted:
		return "out of resources"
	}
	return "broken"
}

// Error is a zone that could not be asked. Such a zone counts as not
// listed; Result.Failed reports that at least one did.
type Error struct {
	Zone   string // the list's zone
	Query  string // the name asked, without the final dot
	Cause  Cause
	Detail string // e.g. "timeout after 2s", "SERVFAIL", "error answer 127.255.255.254"
}

// Error reads e.g. "dnsbl: zen.example: query 2.0.0.127.zen.example: timeout after 2s".
func (e *Error) Error() string {
	return "dnsbl: " + e.Zone + ": query " + e.Query + ": " + e.Detail
}
