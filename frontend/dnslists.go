package frontend

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
)

// DNSLists is step 3 of the checks: DNS block and allow lists. The zero
// DNSLists (no Checker) does nothing; cmd builds one only when a zone is
// configured, so that chain mode without lists does no DNS work at all.
type DNSLists struct {
	// Checker asks the lists; serve mode gives it a cache, chain mode none.
	Checker *dnsbl.Checker
	// Threshold: a score at or above it refuses (--dnsbl-threshold).
	Threshold int
	// AllowThreshold: a score at or below it trusts (--dnswl-threshold).
	AllowThreshold int
	// FailTemp defers (451 4.4.3) a client that was neither refused nor
	// trusted when a zone could not be asked (--dns-fail tempfail, -c).
	FailTemp bool
	// RBL holds the zones given as rblsmtpd's -r: a refusal whose reply
	// comes from one of them is 451 (rblsmtpd's default, -B), or 553 with
	// RBLPermanent (-b), unless a zone could not be asked: rblsmtpd never
	// refuses permanently on an incomplete answer.
	RBL          map[string]bool
	RBLPermanent bool
	// AntiRBL holds the zones given as rblsmtpd's -a: a listing there
	// trusts the client whatever the score.
	AntiRBL map[string]bool
	// LogOnly: a refusal by the lists is logged, not enforced
	// (--dnsbl-action log).
	LogOnly bool
}

// dnsLists runs the DNS lists for ip and updates v; true means v is final
// (refused, or trusted so that later checks are skipped).
func (p *Policy) dnsLists(ctx context.Context, ip netip.Addr, v *Verdict) bool {
	d := p.DNS
	if d == nil || d.Checker == nil {
		return false
	}
	r := d.Checker.Check(ctx, ip)
	for _, e := range r.Errors() {
		// Loud: a failing list silently stops protecting the server.
		p.Log.Warn("DNS list failed", "ip", ip.String(), "zone", e.Zone, "query", e.Query,
			"cause", e.Cause.String(), "error", e.Error())
	}
	v.DNS = r
	for _, e := range r.Errors() {
		if e.Cause == dnsbl.Exhausted {
			nv := tooBusy("DNS lists: " + e.Zone + " could not be asked: " + e.Detail)
			nv.DNS = r
			*v = nv
			return true
		}
	}
	if p.DryRun {
		if len(r.Zones) > 0 {
			v.Details = append(v.Details, d.details(r)...)
		}
		if r.RDNS != nil {
			v.Details = append(v.Details, rdnsDetails(r.RDNS)...)
		}
	}
	final := func(nv Verdict) bool {
		nv.DNS, nv.Details = r, v.Details
		*v = nv
		return true
	}
	if zone := d.antiListed(r); zone != "" {
		return final(Verdict{Action: Trusted, By: ByDNSLists, Reasons: []string{
			fmt.Sprintf("DNS lists: anti-listed by %s (-a); score %d", zone, r.Score)}})
	}
	switch r.Outcome(d.Threshold, d.AllowThreshold) {
	case dnsbl.Blocked:
		return final(p.refuse(ByDNSLists, d.blockReply(r), fmt.Sprintf("DNS lists: listed by %s; score %d >= %d%s",
			strings.Join(r.BlockedBy(), " "), r.Score, d.Threshold, failedNote(r))))
	case dnsbl.Trusted:
		return final(Verdict{Action: Trusted, By: ByDNSLists, Reasons: []string{fmt.Sprintf("DNS lists: allowed by %s; score %d <= %d",
			strings.Join(r.AllowedBy(), " "), r.Score, d.AllowThreshold)}})
	}
	if r.Failed() && d.FailTemp {
		return final(p.refuse(ByDNSLists, Reply{451, Status{4, 4, 3}, "Temporary DNS list lookup failure, try again later"},
			"DNS lists: "+failedList(r)+" could not be asked; --dns-fail tempfail"))
	}
	if listed := append(r.BlockedBy(), r.AllowedBy()...); len(listed) > 0 {
		v.Reasons = append(v.Reasons, fmt.Sprintf("DNS lists: listed by %s; score %d below %d%s",
			strings.Join(listed, " "), r.Score, d.Threshold, failedNote(r)))
	} else if r.Failed() {
		v.Reasons = append(v.Reasons, "DNS lists: "+failedList(r)+" could not be asked; passed (--dns-fail pass)")
	}
	v.Reasons = append(v.Reasons, asideNotes(r)...)
	return false
}

// asideNotes say which zones were not asked because they are set aside
// (dnsbl's health), and why.
func asideNotes(r *dnsbl.Result) []string {
	var out []string
	var seen []string // entries of one zone share its Aside
	for _, z := range r.Zones {
		if a := z.Aside; a != nil && !slices.Contains(seen, a.Zone) {
			seen = append(seen, a.Zone)
			out = append(out, fmt.Sprintf("DNS lists: %s set aside by %s since %s (%s): not asked",
				a.Zone, a.By, a.Since.UTC().Format(time.RFC3339), a.Reason))
		}
	}
	return out
}

// blockReply is the reply of a DNS list refusal: 554 5.7.1 with the
// list's text, or rblsmtpd's codes when the text comes from a -r zone.
func (d *DNSLists) blockReply(r *dnsbl.Result) Reply {
	switch {
	case !d.RBL[r.TextZone]:
		return Reply{554, StatusPolicy, r.Text}
	case d.RBLPermanent && !r.Failed():
		return Reply{553, StatusPolicy, r.Text}
	}
	return Reply{451, Status{4, 7, 1}, r.Text}
}

// antiListed returns the first -a zone that lists the client, or "".
func (d *DNSLists) antiListed(r *dnsbl.Result) string {
	if len(d.AntiRBL) == 0 {
		return ""
	}
	for _, z := range r.Zones {
		if z.Listed && z.Zone.Kind == dnsbl.Allow && d.AntiRBL[z.Zone.Name] {
			return z.Zone.Name
		}
	}
	return ""
}

func failedNote(r *dnsbl.Result) string {
	if !r.Failed() {
		return ""
	}
	return "; " + failedList(r) + " could not be asked"
}

func failedList(r *dnsbl.Result) string {
	var names []string
	for _, e := range r.Errors() {
		names = append(names, e.Zone+" ("+e.Cause.String()+")")
	}
	return strings.Join(names, ", ")
}

// details are `mxfront check`'s lines: for each configured entry, the
// query, the answer, the TXT, the time it took and whether it counted.
func (d *DNSLists) details(r *dnsbl.Result) []string {
	out := make([]string, 0, len(r.Zones)+1)
	for _, z := range r.Zones {
		answer := "none (not listed)"
		switch {
		case z.Aside != nil:
			answer = "none (set aside by " + z.Aside.By.String() + ": " + z.Aside.Reason + "; not asked)"
		case z.Err != nil:
			answer = "error: " + z.Err.Detail
		case len(z.Answers) > 0:
			answer = joinAddrs(z.Answers)
		}
		if z.Cached {
			answer += " (cached)"
		}
		counted := "not counted"
		switch {
		case z.Listed:
			counted = fmt.Sprintf("counted %+d", z.Zone.Points())
		case z.Err == nil && len(z.Answers) > 0:
			counted = "not counted (filter " + z.Zone.Filter.String() + ")"
		case z.Err != nil:
			counted = "not counted (failed)"
		}
		txt := z.TXT
		if txt == "" {
			txt = "-"
		} else {
			txt = strconv.Quote(txt)
		}
		out = append(out, fmt.Sprintf("%s %s: query %s; answer %s; txt %s; time %s; %s",
			z.Zone.Kind, z.Zone, z.Query, answer, txt, z.Duration.Round(10*time.Microsecond), counted))
	}
	return append(out, fmt.Sprintf("dns score: %d (refuse at >= %d, trust at <= %d)", r.Score, d.Threshold, d.AllowThreshold))
}

// joinAddrs is addresses as `mxfront check` shows them: space-separated.
func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, " ")
}
