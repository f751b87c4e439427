package frontend

import "net/netip"

// Drop forgets network n, so that its next client is decided by the store:
// the process that holds the cache calls it when an administrator changed
// n's record (serve mode's control socket), so that `mxfront greylist
// remove` takes effect there at once.
func (c *PassCache) Drop(n netip.Prefix) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.m, n)
	c.mu.Unlock()
}
