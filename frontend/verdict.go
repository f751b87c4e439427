// Package frontend is one connection's life in mxfront: where the socket and
// its addresses come from, the checks in their order, the verdict, the
// refusal dialogue and the environment handed to the real SMTP server.
//
// It never calls os.Exit and never imports cmd; the checks are pure
// functions of a Client and a Policy, so chain mode, serve mode and
// `mxfront check` reach the same verdict for the same client.
package frontend

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// Action is what becomes of a connection.
type Action uint8

const (
	// Pass: no check refused the client; the real server gets the connection.
	Pass Action = iota
	// Trusted: the client is trusted; later checks were skipped.
	Trusted
	// Refuse: mxfront speaks the refusal dialogue itself.
	Refuse
)

func (a Action) String() string {
	switch a {
	case Pass:
		return "pass"
	case Trusted:
		return "trusted"
	case Refuse:
		return "refuse"
	}
	return "unknown"
}

// Verdict is the decision on one client, computed before the client has
// sent a byte, and rendered by the dialogue or handed to PROGRAM.
type Verdict struct {
	Action   Action
	Code     int    // reply code of a refusal: 451, 553, 554
	Enhanced string // RFC 3463 code of a refusal: "5.7.1"
	Text     string // reply text of a refusal, sanitised
	Reasons  []string
	// Exports are MXFRONT_* variables for PROGRAM (name without prefix).
	Exports []Export
	// Details are lines for `mxfront check`: what each check asked and
	// heard (a DNS list's query, answer and time, a greylist record).
	// Only a DryRun Policy writes them: chain mode would pay for the
	// formatting at every process start.
	Details []string
}

// Temporary reports whether the refusal is a 4xx one.
func (v Verdict) Temporary() bool { return v.Code/100 == 4 }

// Reply renders the refusal as one reply line (no CRLF).
func (v Verdict) Reply() string {
	return fmt.Sprintf("%d %s %s", v.Code, v.Enhanced, v.Text)
}

// Reason joins every reason for a log field or an environment variable.
func (v Verdict) Reason() string { return strings.Join(v.Reasons, "; ") }

// Client is what is known of a connecting client before it speaks.
type Client struct {
	Remote netip.AddrPort
	Local  netip.AddrPort
	// From the environment of chain mode (never in serve mode).
	RelayClient bool   // RELAYCLIENT is set
	RBLSMTPD    string // RBLSMTPD's value
	HasRBLSMTPD bool   // RBLSMTPD is set (empty means trusted)
}

// Policy holds the configured checks. The zero Policy passes everyone.
type Policy struct {
	Allow *NetList
	Deny  *NetList
	// Temp makes refusals 4xx unless a rule says permanent.
	Temp bool
	// DNS holds the DNS block and allow lists (dnslists.go); nil: none.
	DNS *DNSLists
	// Greylist is per-network greylisting (greylisting.go); nil: off.
	Greylist *Greylisting
	// DryRun decides without writing anything (mxfront check).
	DryRun bool
	// Log receives the errors of checks that failed open; nil: discarded.
	Log *Logger
}

// Decide runs the connect-time checks in DESIGN.md's order and returns the
// verdict. With DryRun it writes nothing (mxfront check).
func (p *Policy) Decide(ctx context.Context, c Client) Verdict {
	ip := c.Remote.Addr().Unmap()
	// 1. Trusted.
	if c.RelayClient {
		return Verdict{Action: Trusted, Reasons: []string{"RELAYCLIENT is set"}}
	}
	if c.HasRBLSMTPD && c.RBLSMTPD == "" {
		return Verdict{Action: Trusted, Reasons: []string{"RBLSMTPD is set and empty"}}
	}
	if l, ok := p.Allow.Lookup(ip); ok {
		return Verdict{Action: Trusted, Reasons: []string{describe("allow list", l)}}
	}
	// 2. Denied.
	if c.HasRBLSMTPD {
		return rblsmtpdVerdict(c.RBLSMTPD)
	}
	if l, ok := p.Deny.Lookup(ip); ok {
		text := l.Reason
		if text == "" {
			text = fmt.Sprintf("Client host [%s] is on our local deny list", ip)
		}
		return p.refuse(554, "5.7.1", text, describe("deny list", l))
	}
	v := Verdict{Action: Pass}
	// 3. DNS lists: may refuse, or trust (skipping the later checks).
	if p.dnsLists(ctx, ip, &v) {
		return v
	}
	// 4. The early talker is caught in the connection's life (greet
	// delay), not here: it needs the socket.
	// 5. Greylisting.
	if p.greylist(ctx, ip, &v) {
		return v
	}
	return v
}

// refuse builds a refusal with the permanent code given, made temporary by
// --temp.
func (p *Policy) refuse(code int, enhanced, text, reason string) Verdict {
	if p.Temp && code/100 == 5 {
		code, enhanced = 451, "4"+enhanced[1:]
	}
	return Verdict{Action: Refuse, Code: code, Enhanced: enhanced, Text: Sanitize(text, maxReason), Reasons: []string{reason}}
}

// rblsmtpdVerdict follows rblsmtpd: a leading '-' makes the refusal
// permanent (553), otherwise it is temporary (451); the rest is the text.
func rblsmtpdVerdict(s string) Verdict {
	code, enhanced := 451, "4.7.1"
	if strings.HasPrefix(s, "-") {
		code, enhanced, s = 553, "5.7.1", s[1:]
	}
	text := Sanitize(strings.TrimSpace(s), maxReason)
	if text == "" {
		text = "refused by RBLSMTPD"
	}
	return Verdict{Action: Refuse, Code: code, Enhanced: enhanced, Text: text,
		Reasons: []string{"RBLSMTPD: " + text}}
}

func describe(list string, l Listing) string {
	s := fmt.Sprintf("%s %s (%s)", list, l.Net, l.Source)
	if l.Reason != "" {
		s += ": " + l.Reason
	}
	return s
}
