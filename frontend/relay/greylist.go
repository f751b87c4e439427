package relay

import (
	"context"
	"crypto/sha256"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/recipients"
)

// Greylist is greylisting by triplet (--greylist-by triplet): a RCPT is
// greylisted by (client network, sender, recipient), and a triplet that
// passes makes its network pass, for the lifetime, from the next session
// on, as per-network greylisting would have. Both live in the one store:
// a triplet's record is kept under an address of 100::/64 (RFC 6666's
// discard prefix, which no client has), /128, from a hash of the triplet,
// so that `mxfront greylist` lists, expires and removes them too.
type Greylist struct {
	Networks *greylist.Policy // the per-network policy
	Triplets *greylist.Policy // the same store and durations, IPv6 /128
	Skip     *frontend.NetList
	// Timeout bounds one decision's store work (a network store); 0: none.
	Timeout time.Duration
	// LogOnly: a triplet that would be greylisted is logged and passed,
	// and nothing is recorded (--greylist-action log).
	LogOnly bool
}

// TripletAddr is where the triplet's record is kept: 100::/64 and the
// first 64 bits of a SHA-256 of the network, the sender and the
// recipient (lower case).
func TripletAddr(n netip.Prefix, sender, rcpt string) netip.Addr {
	h := sha256.Sum256([]byte(n.String() + "\x00" + strings.ToLower(sender) + "\x00" + recipients.Normal(rcpt)))
	var a [16]byte
	a[0] = 0x01
	copy(a[8:], h[:8])
	return netip.AddrFrom16(a)
}

// network states of a session, asked once at its first RCPT.
const (
	netUnasked = iota
	netPasses  // the network passed within its lifetime (or the store failed)
	netGrey    // its RCPTs are greylisted by triplet
)

// greylistRcpt greylists a recipient by its triplet; the refusal, or nil.
func (s *session) greylistRcpt(path string) *frontend.Reply {
	g := s.cfg.Greylist
	if g == nil || s.trusted() || s.mayRelay() {
		return nil
	}
	ip := s.p.Client.Remote.Addr()
	if _, skip := g.Skip.Lookup(ip); skip {
		return nil
	}
	ctx, cancel := s.ctx, context.CancelFunc(func() {})
	if g.Timeout > 0 {
		ctx, cancel = context.WithTimeout(s.ctx, g.Timeout)
	}
	defer cancel()
	n, err := g.Networks.Network(ip)
	if err != nil {
		return nil
	}
	if s.netState == netUnasked {
		s.netState = netGrey
		o, err := g.Networks.Peek(ctx, ip)
		switch {
		case err != nil:
			s.greylistFailed(err)
			s.netState = netPasses
		case o.State == greylist.Known:
			s.netState = netPasses
		}
	}
	if s.netState == netPasses {
		return nil
	}
	addr := TripletAddr(n, s.tx.rawFrom, path)
	look := g.LogOnly || s.cfg.Observe
	var o greylist.Outcome
	if look {
		o, err = g.Triplets.Peek(ctx, addr)
	} else {
		o, err = g.Triplets.Decide(ctx, addr)
	}
	if err != nil {
		s.greylistFailed(err)
		return nil
	}
	addrText := sanitized(path)
	switch {
	case o.Greylisted():
		retry := max(o.RetryIn.Round(time.Second), time.Second)
		s.tx.notes = append(s.tx.notes, addrText+" greylisted ("+o.State.String()+", retry in "+retry.String()+")")
		if look {
			return nil
		}
		return &frontend.Reply{Code: 451, Status: frontend.Status{Class: 4, Subject: 7, Detail: 1},
			Text: "Greylisted: please try again in " + strconv.Itoa(int(retry/time.Second)) + "s"}
	case o.State == greylist.Passed:
		// From the next session on, the network passes.
		if err := g.Networks.Allow(ctx, n); err != nil {
			s.greylistFailed(err)
		}
		s.tx.notes = append(s.tx.notes, addrText+" passed greylisting: network "+n.String()+" passes from now on")
	}
	return nil
}

func (s *session) greylistFailed(err error) {
	s.cfg.Log.Error("relay: greylist store failed: the recipient passes", "ip", s.ip(), "error", err.Error())
}
