package frontend

import (
	"context"
	"net/netip"
)

// DNSLists is step 3 of the checks: DNS block and allow lists.
type DNSLists struct{}

// dnsLists runs the DNS lists for ip and updates v; true means v is final
// (refused, or trusted so that later checks are skipped).
func (p *Policy) dnsLists(ctx context.Context, ip netip.Addr, v *Verdict) bool {
	if p.DNS == nil {
		return false
	}
	return false
}
