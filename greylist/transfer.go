package greylist

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// Imported counts what importing records into a store did with them
// (package greylist/transfer reads and writes them as JSON lines).
type Imported struct {
	Added       int // written: the store had no record of the network
	Kept        int // the store had a record already, which was kept as it was
	Stale       int // past the window or the lifetime now: not written
	OtherLength int // networks of another length than the policy's, which no client would match: not written
}

// ImportRecord writes r for network n unless the store has a record of
// it (the live one is kept), the record is stale now (a store with TTLs
// must not keep dead ones alive) or n is not of the policy's length; im
// counts which. A record that cannot be stored is an error naming n.
func (p *Policy) ImportRecord(ctx context.Context, n netip.Prefix, r Record, im *Imported) error {
	if _, err := encodeRecord(r); err != nil {
		return fmt.Errorf("network %v: %v", n, strings.TrimPrefix(err.Error(), "greylist: "))
	}
	if want, err := p.Network(n.Addr()); err != nil || want != n {
		im.OtherLength++
		return nil
	}
	if p.stale(r, p.now()) {
		im.Stale++
		return nil
	}
	ok, err := p.store.CompareAndSwap(ctx, n, Record{}, r)
	if err != nil {
		return err
	}
	if ok {
		im.Added++
	} else {
		im.Kept++
	}
	return nil
}
