// Package greylist decides whether a connecting client's network has waited
// long enough to be let through, and remembers networks in a Store.
//
// A client is judged by its network (by default the IPv4 /24 or IPv6 /64 it
// connects from), because large senders retry from another address of the
// same pool. The first attempt from a network is greylisted; a retry after
// Delay and within Window passes and the network is remembered as passed for
// Lifetime after its last pass. Time comes from an injected clock, so the
// policy is tested without sleeping.
//
// The package knows nothing of SMTP: it never writes a reply, never logs and
// never exits. It never decides to refuse because of its own failure either:
// every error it returns (a lock not had in time, a damaged or unreadable
// database, a full disk) means "no decision", and the caller passes the
// client and logs the error loudly.
package greylist
