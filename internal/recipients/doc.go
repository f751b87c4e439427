// Package recipients says whether an address is a valid recipient of this
// site, and whether a domain is one of its local domains: from a file of
// addresses (with @domain and !exceptions), from a validrcptto.cdb, or by
// asking a RCPTCHECK-style command. The relay (frontend/relay) asks it at
// each RCPT, and mxfilter asks it about the local addresses of a message's
// headers.
//
// It knows nothing of SMTP replies, flags or the network; it never prints.
// Its answers are values: Valid, Invalid, Defer (a source said "try
// later") and Unsure (a source failed: the caller accepts, and logs Err).
package recipients
