// Package filter judges one mail message while the SMTP client still waits
// for the reply to DATA: message structure, attachments, a virus scanner
// (clamd), a spam scorer (spamd), site commands and header domains. Its
// verdict is a value (Verdict) that the caller renders as an exit code and
// an SMTP reply.
//
// filter never prints and never exits: cmd/mxfilter wires it to the
// qmail-queue interface or to an MTA's hook. It must never turn an internal
// failure into an accepted message that a check refused, nor into a silent
// drop: what it cannot decide it accepts (a structure too strange to judge)
// or defers (a configured scanner that cannot answer), and it says so in
// the log line.
//
// The message is streamed once into an unlinked spool file and read from
// there by each check; it is never held whole in memory.
package filter
