package greylist

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultDelay    = 5 * time.Minute
	DefaultWindow   = 24 * time.Hour
	DefaultLifetime = 36 * 24 * time.Hour
	DefaultV4Prefix = 24
	DefaultV6Prefix = 64
)

// renewEvery bounds how often a passing network's lifetime is written back:
// a busy sender must not cost a write per connection.
const renewEvery = time.Hour

// casAttempts bounds how often Decide re-reads a record that another
// process changed between its read and its write.
const casAttempts = 4

// Config sets the policy. Zero fields take the defaults.
type Config struct {
	Delay    time.Duration    // a retry passes only this long after the first attempt
	Window   time.Duration    // a retry later than this after the first attempt starts over
	Lifetime time.Duration    // a passed network passes this long after its last pass
	V4Prefix int              // IPv4 clients are judged by this network length
	V6Prefix int              // IPv6 clients are judged by this network length
	Now      func() time.Time // the clock; time.Now when nil
}

// Policy greylists networks, remembering them in a Store it does not own.
// It is safe for concurrent use.
type Policy struct {
	store Store
	c     Config
}

// NewPolicy returns the policy c over s.
func NewPolicy(s Store, c Config) (*Policy, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Delay, DefaultDelay)
	def(&c.Window, DefaultWindow)
	def(&c.Lifetime, DefaultLifetime)
	if c.V4Prefix == 0 {
		c.V4Prefix = DefaultV4Prefix
	}
	if c.V6Prefix == 0 {
		c.V6Prefix = DefaultV6Prefix
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	switch {
	case s == nil:
		return nil, errors.New("greylist: no store")
	case c.Delay < 0 || c.Window < 0 || c.Lifetime < 0:
		return nil, fmt.Errorf("greylist: negative duration: delay %v, window %v, lifetime %v", c.Delay, c.Window, c.Lifetime)
	case c.Delay >= c.Window:
		return nil, fmt.Errorf("greylist: delay %v must be shorter than the window %v", c.Delay, c.Window)
	case c.V4Prefix < 1 || c.V4Prefix > 32:
		return nil, fmt.Errorf("greylist: IPv4 prefix /%d not in 1..32", c.V4Prefix)
	case c.V6Prefix < 1 || c.V6Prefix > 128:
		return nil, fmt.Errorf("greylist: IPv6 prefix /%d not in 1..128", c.V6Prefix)
	}
	return &Policy{store: s, c: c}, nil
}

// State is what the policy made of one attempt.
type State uint8

// The states of an Outcome. The greylisted ones are New, Early, Restarted
// and Lapsed; Passed and Known pass.
const (
	Unknown   State = iota // no decision (only with an error): pass the client
	New                    // first attempt from the network: greylisted, first seen now
	Early                  // retried before Delay: greylisted, first seen unchanged
	Restarted              // retried after Window without passing: greylisted, first seen now
	Lapsed                 // passed once, but longer ago than Lifetime: greylisted, first seen now
	Passed                 // retried after Delay, within Window: passes, recorded as passed now
	Known                  // passed within Lifetime: passes, lifetime renewed
)

var stateNames = [...]string{"unknown", "new", "early", "restarted", "lapsed", "passed", "known"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// Greylisted reports whether a client in state s must be told to retry.
func (s State) Greylisted() bool { return s >= New && s <= Lapsed }

// Outcome is the policy's answer for one attempt.
type Outcome struct {
	State     State
	Network   netip.Prefix  // the network the client was judged by
	FirstSeen time.Time     // start of the network's current round
	LastPass  time.Time     // its last recorded pass; zero if none
	RetryIn   time.Duration // greylisted: time left before a retry can pass; else 0
	Age       time.Duration // time since FirstSeen
}

// Greylisted reports whether the client must be told to retry later.
func (o Outcome) Greylisted() bool { return o.State.Greylisted() }

// Decide judges an attempt from addr now and records what must be recorded.
// Only a new round, a pass, and at most one lifetime renewal an hour write to
// the store; an early retry and most passes of a known network only read.
//
// On error the Outcome's State is Unknown and the caller must pass the
// client: the store failed, and greylisting is not worth refusing mail for.
func (p *Policy) Decide(ctx context.Context, addr netip.Addr) (Outcome, error) {
	n, err := p.Network(addr)
	if err != nil {
		return Outcome{}, err
	}
	now := p.now()
	for range casAttempts {
		cur, err := p.store.Get(ctx, n)
		if err != nil {
			return Outcome{Network: n}, err
		}
		o, next, write := p.judge(n, cur, now)
		if !write {
			return o, nil
		}
		ok, err := p.store.CompareAndSwap(ctx, n, cur, next)
		if err != nil {
			return Outcome{Network: n}, err
		}
		if ok {
			return o, nil
		}
	}
	return Outcome{Network: n}, fmt.Errorf("greylist: %v: record changed under us %d times", n, casAttempts)
}

// Peek tells what Decide would answer for addr now, and writes nothing. A
// network without a record comes back New, first seen now.
func (p *Policy) Peek(ctx context.Context, addr netip.Addr) (Outcome, error) {
	n, err := p.Network(addr)
	if err != nil {
		return Outcome{}, err
	}
	cur, err := p.store.Get(ctx, n)
	if err != nil {
		return Outcome{Network: n}, err
	}
	o, _, _ := p.judge(n, cur, p.now())
	return o, nil
}

// Forget drops the record of addr's network unless the network passed within
// its lifetime, so that its next attempt starts over. A frontend calls it for
// a greylisted client that showed itself bogus (say, by its HELO): such a
// client then never earns a pass by retrying.
func (p *Policy) Forget(ctx context.Context, addr netip.Addr) error {
	n, err := p.Network(addr)
	if err != nil {
		return err
	}
	now := p.now()
	for range casAttempts {
		cur, err := p.store.Get(ctx, n)
		if err != nil || cur.IsZero() || p.passing(cur, now) {
			return err
		}
		ok, err := p.store.CompareAndSwap(ctx, n, cur, Record{})
		if err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("greylist: forget %v: record changed under us %d times", n, casAttempts)
}

// judge is the policy itself: what attempt at now makes of the record cur,
// the record to store, and whether it must be written.
func (p *Policy) judge(n netip.Prefix, cur Record, now time.Time) (o Outcome, next Record, write bool) {
	o = Outcome{Network: n, FirstSeen: cur.FirstSeen, LastPass: cur.LastPass}
	defer func() {
		o.Age = now.Sub(o.FirstSeen)
		if o.Greylisted() {
			o.RetryIn = o.FirstSeen.Add(p.c.Delay).Sub(now)
		}
	}()
	startOver := func(s State) (Outcome, Record, bool) {
		o.State, o.FirstSeen, o.LastPass = s, now, time.Time{}
		return o, Record{FirstSeen: now}, true
	}
	switch {
	case cur.IsZero():
		return startOver(New)
	case !cur.LastPass.IsZero():
		if !p.passing(cur, now) {
			return startOver(Lapsed)
		}
		o.State = Known
		// A pass in the future (a clock set back) is renewed too, so that a
		// wrong clock does not lengthen the lifetime.
		if now.Sub(cur.LastPass) < renewEvery && !cur.LastPass.After(now) {
			return o, cur, false
		}
		o.LastPass = now
		return o, Record{FirstSeen: cur.FirstSeen, LastPass: now}, true
	}
	age := now.Sub(cur.FirstSeen)
	switch {
	case age < 0 || age > p.c.Window:
		// A first-seen time in the future (a clock set back) would
		// greylist the network until the clock caught up: start over.
		return startOver(Restarted)
	case age < p.c.Delay:
		o.State = Early
		return o, cur, false
	}
	o.State, o.LastPass = Passed, now
	return o, Record{FirstSeen: cur.FirstSeen, LastPass: now}, true
}

// passing reports whether r is a pass still within its lifetime at now.
func (p *Policy) passing(r Record, now time.Time) bool {
	return !r.LastPass.IsZero() && now.Sub(r.LastPass) <= p.c.Lifetime
}

// now is the clock, to the second, as records keep it.
func (p *Policy) now() time.Time { return time.Unix(p.c.Now().Unix(), 0) }

// Network returns the network addr is judged by: its /V4Prefix or
// /V6Prefix, an IPv4-mapped IPv6 address counting as IPv4.
func (p *Policy) Network(addr netip.Addr) (netip.Prefix, error) {
	if !addr.IsValid() {
		return netip.Prefix{}, errors.New("greylist: no client address")
	}
	addr = addr.Unmap().WithZone("")
	bits := p.c.V6Prefix
	if addr.Is4() {
		bits = p.c.V4Prefix
	}
	return addr.Prefix(bits)
}

// ParseNetwork reads a network as an administrator writes it: an address
// (the network it is judged by) or a network of exactly the policy's length
// for its family, such as 192.0.2.0/24 or 2001:db8:1:2::/64.
func (p *Policy) ParseNetwork(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("greylist: %q is neither an address nor a network", s)
		}
		return p.Network(a)
	}
	n, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("greylist: %q is neither an address nor a network", s)
	}
	want, err := p.Network(n.Addr())
	if err != nil {
		return netip.Prefix{}, err
	}
	if n.Bits() != want.Bits() {
		return netip.Prefix{}, fmt.Errorf("greylist: %s: networks are /%d here", s, want.Bits())
	}
	return want, nil
}

// WithPrefixes returns a policy over the same store with the same
// durations and clock that judges IPv4 clients by /v4 and IPv6 ones by /v6
// (the relay's triplets and the names of --greylist-by-name are kept as
// IPv6 /128 keys).
func (p *Policy) WithPrefixes(v4, v6 int) (*Policy, error) {
	c := p.c
	c.V4Prefix, c.V6Prefix = v4, v6
	return NewPolicy(p.store, c)
}
