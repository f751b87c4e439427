// Package frontend is one connection's life in mxfront, written once for
// every mode: the checks in their order and the verdict they reach (pure
// functions of a Client and a Policy), the refusal dialogue, the
// environment handed to the real SMTP server, and the life that runs a
// connection from its verdict to its end over a Conn and a Handover, the
// two things chain mode, serve mode and a relay do differently.
//
// It never calls os.Exit, never prints, and never imports net: chain mode
// starts a process per connection and links it. Serve mode, which listens,
// is frontend/serve; the PROXY protocol is frontend/proxy.
package frontend

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/mxfront/mxfront/internal/sanitize"
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

// Check names the check that reached a verdict (for metrics, and for the
// life's rules: a greylisted client is treated apart).
type Check uint8

const (
	ByNone        Check = iota // no check decided: a pass
	ByRelayClient              // RELAYCLIENT is set
	ByRBLSMTPD                 // RBLSMTPD is set
	ByAllowList
	ByDenyList
	ByDNSLists
	ByGreylist
	ByEarlyTalker
	ByHELO
	// ByResources: a check could not run for lack of our own resources
	// (no fd left for a DNS socket or the greylist file). Not "unsure":
	// the client hears 421 4.3.2 at once, so that holding connections
	// open never switches the checks off.
	ByResources
	// ByRDNS: the client's reverse DNS (--rdns-check, --rdns-generic-check).
	ByRDNS
)

func (c Check) String() string {
	names := [...]string{"none", "relayclient", "rblsmtpd", "allow-list", "deny-list", "dns-lists", "greylist", "early-talker", "helo", "resources", "rdns"}
	if int(c) < len(names) {
		return names[c]
	}
	return "unknown"
}

// Verdict is the decision on one client, computed before the client has
// sent a byte, and rendered by the dialogue, the log line and PROGRAM's
// environment; nothing reads it back out of a string.
type Verdict struct {
	Action Action
	By     Check // the check that trusted or refused the client
	Reply  Reply // a refusal's reply, sanitised
	// Reasons say why, for the log and MXFRONT_REASON.
	Reasons []string
	// DNS is the DNS lists' answer; nil when no list was asked.
	DNS *dnsbl.Result
	// Greylist is what greylisting made of the client.
	Greylist GreylistResult
	// Details are lines for `mxfront check`: what each check asked and
	// heard (a DNS list's query, answer and time, a greylist record).
	// Only a DryRun Policy writes them: chain mode would pay for the
	// formatting at every process start.
	Details []string
	// Observed is the refusal a check would have given had it been
	// enforced (--observe, or its --*-action log): the client passes, and
	// its line says verdict=would-refuse with this reply. The first such
	// refusal is kept; nil: none.
	Observed *Verdict
	// GenericName: the client's host name matched --rdns-generic-file
	// (it is then never greylisted by name).
	GenericName bool
}

// Temporary reports whether the refusal is a 4xx one.
func (v Verdict) Temporary() bool { return v.Reply.Temporary() }

// Reason joins every reason for a log field or an environment variable.
func (v Verdict) Reason() string { return strings.Join(v.Reasons, "; ") }

// Greylisted reports whether v is greylisting's refusal.
func (v Verdict) Greylisted() bool { return v.Action == Refuse && v.By == ByGreylist }

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
	// With --rdns its Checker asks the reverse DNS too, maybe with no zone.
	DNS *DNSLists
	// RDNS judges the reverse DNS (rdns.go); nil: not judged.
	RDNS *RDNSCheck
	// Greylist is per-network greylisting (greylisting.go); nil: off.
	Greylist *Greylisting
	// DryRun decides without writing anything (mxfront check).
	DryRun bool
	// Observe runs every check and enforces none (--observe): every
	// client passes with what would have refused it in Observed, and no
	// greylist record is written.
	Observe bool
	// Log receives the errors of checks that failed open; nil: discarded.
	Log *logline.Logger
}

// Decide runs the connect-time checks in DESIGN.md's order and returns the
// verdict. With DryRun it writes nothing (mxfront check). A refusal by a
// check that is not enforced (Observe, or the check's log action) becomes
// the verdict's Observed, and the later checks run.
func (p *Policy) Decide(ctx context.Context, c Client) Verdict {
	ip := c.Remote.Addr().Unmap()
	// 1. Trusted.
	if c.RelayClient {
		return Verdict{Action: Trusted, By: ByRelayClient, Reasons: []string{"RELAYCLIENT is set"}}
	}
	if c.HasRBLSMTPD && c.RBLSMTPD == "" {
		return Verdict{Action: Trusted, By: ByRBLSMTPD, Reasons: []string{"RBLSMTPD is set and empty"}}
	}
	if l, ok := p.Allow.Lookup(ip); ok {
		return Verdict{Action: Trusted, By: ByAllowList, Reasons: []string{describe("allow list", l)}}
	}
	v := Verdict{Action: Pass}
	// 2. Denied.
	if c.HasRBLSMTPD {
		if v = p.unless(rblsmtpdVerdict(c.RBLSMTPD), nil); v.Action == Refuse {
			return v
		}
	} else if l, ok := p.Deny.Lookup(ip); ok {
		text := l.Reason
		if text == "" {
			text = fmt.Sprintf("Client host [%s] is on our local deny list", ip)
		}
		if v = p.unless(p.refuse(ByDenyList, Reply{554, StatusPolicy, text}, describe("deny list", l)), nil); v.Action == Refuse {
			return v
		}
	}
	// 3. DNS lists: may refuse, or trust (skipping the later checks).
	// The reverse DNS is asked with them.
	observed := v.Observed
	force := false
	if p.dnsLists(ctx, ip, &v) {
		if v = p.unless(v, observed); v.Action != Pass {
			if v.Action != Trusted {
				return v
			}
			// A client the DNS allow lists trust is never refused for
			// its reverse DNS, only greylisted when that is asked for.
			probe := v
			if p.rdns(ip, &probe, &force) || !force {
				return v
			}
			return p.trustedGreylist(ctx, ip, probe)
		}
	}
	// 3b. Reverse DNS: may refuse, or have the client greylisted.
	observed = v.Observed
	if p.rdns(ip, &v, &force) {
		if v = p.unless(v, observed); v.Action != Pass {
			return v
		}
	}
	// 4. The early talker is caught in the connection's life (the
	// greeting delay), not here: it needs the socket.
	// 5. Greylisting.
	observed = v.Observed
	p.greylist(ctx, ip, &v, force)
	return p.unless(v, observed)
}

// trustedGreylist greylists a client the DNS allow lists trust because
// --rdns-check (or --rdns-generic-check) greylist asks for it: greylisted
// on first contact, and trusted once its network passed.
func (p *Policy) trustedGreylist(ctx context.Context, ip netip.Addr, v Verdict) Verdict {
	trusted := v
	observed := v.Observed
	g := Verdict{Action: Pass, DNS: v.DNS, Details: v.Details, Observed: v.Observed, Reasons: v.Reasons, GenericName: v.GenericName}
	p.greylist(ctx, ip, &g, true)
	if g = p.unless(g, observed); g.Action == Refuse {
		return g
	}
	// Passed greylisting (or it was only observed): still trusted.
	trusted.Greylist, trusted.Details, trusted.Reasons, trusted.Observed = g.Greylist, g.Details, g.Reasons, g.Observed
	return trusted
}

// unless returns v, or, when v is a refusal by a check that is not
// enforced, a pass that keeps it as Observed (the first observed refusal,
// earlier, wins). An earlier check's observed refusal is carried on.
func (p *Policy) unless(v Verdict, observed *Verdict) Verdict {
	if v.Observed == nil {
		v.Observed = observed
	}
	if v.Action != Refuse || p.enforced(v.By) {
		return v
	}
	return observedPass(v)
}

// observedPass is refusal v not enforced: a pass holding it as Observed,
// unless an earlier one is there already.
func observedPass(v Verdict) Verdict {
	pass := Verdict{Action: Pass, DNS: v.DNS, Greylist: v.Greylist, Details: v.Details, Observed: v.Observed,
		Reasons: slices.Clone(v.Reasons), GenericName: v.GenericName}
	if n := len(pass.Reasons); n > 0 {
		pass.Reasons[n-1] += " (not enforced)"
	}
	if pass.Observed == nil {
		refusal := v
		refusal.Observed = nil
		pass.Observed = &refusal
	}
	return pass
}

// enforced reports whether a refusal by check by refuses the client.
// Running out of our own resources is never observed only: it is not a
// judgement of the client.
func (p *Policy) enforced(by Check) bool {
	switch {
	case by == ByResources:
		return true
	case p.Observe:
		return false
	case by == ByDNSLists:
		return p.DNS == nil || !p.DNS.LogOnly
	case by == ByGreylist:
		return p.Greylist == nil || !p.Greylist.LogOnly
	}
	return true
}

// refuse builds a refusal by check with the reply given (its text
// sanitised), made temporary by --temp.
func (p *Policy) refuse(by Check, r Reply, reason string) Verdict {
	if p.Temp {
		r = r.Temp()
	}
	r.Text = sanitize.Text(r.Text, sanitize.MaxReason)
	return Verdict{Action: Refuse, By: by, Reply: r, Reasons: []string{reason}}
}

// rblsmtpdVerdict follows rblsmtpd: a leading '-' makes the refusal
// permanent (553), otherwise it is temporary (451); the rest is the text.
func rblsmtpdVerdict(s string) Verdict {
	r := Reply{451, Status{4, 7, 1}, ""}
	if strings.HasPrefix(s, "-") {
		r, s = Reply{553, StatusPolicy, ""}, s[1:]
	}
	r.Text = sanitize.Text(strings.TrimSpace(s), sanitize.MaxReason)
	if r.Text == "" {
		r.Text = "refused by RBLSMTPD"
	}
	return Verdict{Action: Refuse, By: ByRBLSMTPD, Reply: r, Reasons: []string{"RBLSMTPD: " + r.Text}}
}

// tooBusy is the verdict on a client that a check could not judge for
// lack of our own resources.
func tooBusy(reason string) Verdict {
	return Verdict{Action: Refuse, By: ByResources, Reply: Reply{421, StatusNotAccepting, "Too busy, try again later"},
		Reasons: []string{reason}}
}

// outOfResources reports whether err is the system's refusal of our own
// resources: out of fds (per process or system-wide), buffers or memory.
func outOfResources(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

func describe(list string, l Listing) string {
	s := fmt.Sprintf("%s %s (%s)", list, l.Net, l.Source)
	if l.Reason != "" {
		s += ": " + l.Reason
	}
	return s
}
