package frontend

import (
	"context"
	"net/netip"
)

// Greylisting is step 5 of the checks: per-network greylisting.
type Greylisting struct{}

// greylist decides on ip's network and updates v; true means v is final.
func (p *Policy) greylist(ctx context.Context, ip netip.Addr, v *Verdict) bool {
	if p.Greylist == nil {
		return false
	}
	return false
}
