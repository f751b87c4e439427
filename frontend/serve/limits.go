package serve

import (
	"net/netip"
	"sync"
)

// Limits bound what clients may hold of serve mode. A connection counts
// from its accept until mxfront is done with it: the end of its refusal
// dialogue, or the exit of the PROGRAM it was passed to. Zero means no
// limit.
type Limits struct {
	MaxConns      int // client connections open in all
	MaxConnsPerIP int // per /32 (IPv4) or /64 (IPv6)
	MaxChildren   int // passed sessions (PROGRAM processes) running
}

// DefaultLimits are the defaults documented in mxfront(8).
var DefaultLimits = Limits{MaxConns: 500, MaxConnsPerIP: 20, MaxChildren: 200}

// tally counts what the limits bound. Its map holds only networks with a
// connection open, so its size follows the connections, never the time.
type tally struct {
	mu       sync.Mutex
	conns    int
	perNet   map[netip.Prefix]int
	children int
}

// clientNet is the network a per-IP limit counts: an IPv6 client owns a /64.
func clientNet(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// takeConn counts a new connection; false: over max.
func (t *tally) takeConn(max int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if max > 0 && t.conns >= max {
		return false
	}
	t.conns++
	return true
}

func (t *tally) dropConn() {
	t.mu.Lock()
	t.conns--
	t.mu.Unlock()
}

// takeNet counts a connection of ip's network; false: over max.
func (t *tally) takeNet(ip netip.Addr, max int) bool {
	n := clientNet(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	if max > 0 && t.perNet[n] >= max {
		return false
	}
	if t.perNet == nil {
		t.perNet = make(map[netip.Prefix]int)
	}
	t.perNet[n]++
	return true
}

func (t *tally) dropNet(ip netip.Addr) {
	n := clientNet(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.perNet[n] <= 1 {
		delete(t.perNet, n)
		return
	}
	t.perNet[n]--
}

// takeChild counts a passed session; false: over max.
func (t *tally) takeChild(max int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if max > 0 && t.children >= max {
		return false
	}
	t.children++
	return true
}

func (t *tally) dropChild() {
	t.mu.Lock()
	t.children--
	t.mu.Unlock()
}

// nets reports how many networks have a connection open.
func (t *tally) nets() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.perNet)
}

// Serve's own ceilings, whatever the limits say (--max-conns 0 is "no
// limit", not "until the process dies"). A connection holds one fd from
// its accept until mxfront is done with it (a running PROGRAM's is its
// pidfd); while it is decided it holds one more for each DNS list and one
// for the greylist file, and a spawn takes three for an instant. Half of
// the fds are kept for those: a burst that still finds none is told 421
// 4.3.2 by the checks (frontend.ByResources), never passed unchecked.
const (
	fdReserve     = 64   // the runtime's, the listeners', the log's, the store's
	threadCeiling = 9000 // Go aborts at 10,000 threads: only without pidfds does a child hold one
)

// ceilings derives the hard ceiling on connections from the fd limit
// (Go raises the soft limit to the hard one at start), and on children
// from the thread limit where waiting for a child holds a thread.
func ceilings(fdLimit uint64, pidfds bool) (conns, children int) {
	conns = max((int(min(fdLimit, 1<<30))-fdReserve)/2, 1)
	if !pidfds {
		children = threadCeiling
	}
	return conns, children
}
