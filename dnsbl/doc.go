// Package dnsbl asks DNS block lists (DNSBL) and allow lists (DNSWL) about
// one client address, the way a connection-time SMTP frontend needs it: every
// zone of a connection in parallel within one deadline, weights summed into a
// score as Postfix postscreen does, the reply text of the heaviest listing,
// and errors kept apart from listings.
//
// An error is never a listing. A zone that times out, answers SERVFAIL or
// REFUSED, answers with an error code (127.255.255.0/24, "you query through
// a public resolver") or with an address outside 127.0.0.0/8, or whose
// answer cannot be read (truncated over TCP too, malformed, not an answer
// to the question asked) counts as not listed; its Error travels in the
// Result so the caller can log it and, when the operator asks for it, defer
// the client instead of passing it. Nor is an unreadable answer ever
// "not listed" without an Error.
//
// The package never prints, never reads /etc/resolv.conf on its own, and
// does no work at init: mxfront runs one process per connection, so nothing
// is built until New is called with at least one zone. It knows nothing of
// SMTP, flags or the frontend.
package dnsbl
