package frontend

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/logline"
)

// Greylisting is step 5 of the checks: per-network greylisting. A client
// whose network is new, or retried too early, is refused 451 4.7.1 with the
// time to retry; one that retried in time, or whose network passed within
// the lifetime, passes with MXFRONT_GREYLIST set. A failing database never
// refuses anyone: the client passes and the error is logged at level ERROR.
type Greylisting struct {
	Policy *greylist.Policy // over a store the caller owns
	Skip   *NetList         // networks never greylisted (--greylist-skip-file)
	// Known remembers networks seen passing (serve mode), so that their
	// clients cost no database access; nil: every decision asks the store.
	Known *PassCache
	// Now is the clock of the retry time in the reply; nil: time.Now.
	Now func() time.Time
	// Timeout bounds the store work of one decision (Decide, Peek or
	// Forget: a read and at most a few compare-and-swaps) for a store on
	// the network, whose every round trip could wait; past it the client
	// passes. Zero: no bound here (bbolt bounds its own wait for the
	// file's lock, and ignores a context).
	Timeout time.Duration
	// Health, if set (serve mode), logs a failing store once per incident
	// instead of once per client; nil: an ERROR line for each client
	// passed so (chain mode: one process, one client).
	Health *StoreHealth
	// LogOnly: a client that would be greylisted is logged and passed,
	// and nothing is recorded (--greylist-action log; --observe too).
	LogOnly bool
	// Names, if set (--greylist-by-name), greylists a client with a
	// forward-confirmed host name that is not generic by the name's
	// parent domain (GreylistName), kept at NameKey: the same store and
	// durations, with /128 for the key. Other clients: by network.
	Names *greylist.Policy
}

// bound gives one decision's store work its deadline.
func (g *Greylisting) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if g.Timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, g.Timeout)
}

// GreylistState is what greylisting made of a client.
type GreylistState uint8

const (
	GreylistNone    GreylistState = iota // not asked: greylisting is off, or an earlier check decided
	GreylistSkipped                      // on --greylist-skip-file: never greylisted
	GreylistError                        // the store failed: passed (and logged)
	GreylistRetry                        // retried after the delay: passes now, for the first time
	GreylistPassed                       // passed before, within the lifetime
	GreylistRefused                      // greylisted: Store says why (new, early, restarted, lapsed)
)

// GreylistResult is greylisting's part of a verdict.
type GreylistResult struct {
	State   GreylistState
	Store   greylist.State // the store's own word, for a refused client
	Age     time.Duration  // since the network was first seen
	Network netip.Prefix   // the network judged (a refused client); with Name, its key
	RetryIn time.Duration  // before a retry can pass (a refused client)
	// Name is the domain the client was judged by (--greylist-by-name);
	// "": by its network.
	Name string
}

// String is MXFRONT_GREYLIST's value: the state word, then the network's
// age in whole seconds ("retry 312", "passed 86400", "skipped"); "" when
// greylisting was not asked.
func (g GreylistResult) String() string {
	switch g.State {
	case GreylistSkipped:
		return "skipped"
	case GreylistError:
		return "error"
	case GreylistRetry:
		return "retry " + age(g.Age)
	case GreylistPassed:
		return "passed " + age(g.Age)
	case GreylistRefused:
		return g.Store.String() + " " + age(g.Age)
	}
	return ""
}

// greylist decides on ip's network (or its name, --greylist-by-name) and
// updates v. force (--rdns-check greylist) overrides the skip list.
func (p *Policy) greylist(ctx context.Context, ip netip.Addr, v *Verdict, force bool) {
	g := p.Greylist
	if g == nil || g.Policy == nil {
		return
	}
	if l, ok := g.Skip.Lookup(ip); ok && !force {
		v.Greylist = GreylistResult{State: GreylistSkipped}
		if p.DryRun {
			v.Details = append(v.Details, "greylist: skipped: "+describe("skip list", l))
		}
		return
	}
	policy, key, name := g.subject(ip, *v)
	n, err := policy.Network(key)
	if err != nil {
		p.greylistFailed(ip, v, err)
		return
	}
	now := g.now()
	// Observing writes nothing: no record, nothing remembered.
	writes := !p.DryRun && !p.Observe && !g.LogOnly
	var o greylist.Outcome
	e, cached := g.Known.get(n, now)
	switch {
	case cached && writes && !e.pending:
		v.Greylist = GreylistResult{State: GreylistPassed, Age: now.Sub(e.firstSeen), Name: name}
		return
	case cached && writes:
		// Refused moments ago and its delay is not over: the store
		// could only say "early" (serve mode: no store work, no wait
		// for the file's or the server's turn).
		o = greylist.Outcome{State: greylist.Early, Network: n, FirstSeen: e.firstSeen,
			Age: now.Sub(e.firstSeen), RetryIn: e.retryAt.Sub(now)}
	default:
		sctx, cancel := g.bound(ctx)
		if writes {
			o, err = policy.Decide(sctx, key)
		} else {
			o, err = policy.Peek(sctx, key)
		}
		cancel()
		if err != nil {
			p.greylistFailed(ip, v, err)
			return
		}
		g.Health.answered(now, p.Log)
		if o.Greylisted() && writes {
			// The delay ends where the store's does: its clock is in
			// whole seconds (FirstSeen + Age is its now), ours is not,
			// and now.Add(RetryIn) would refuse up to a second longer
			// than the store.
			g.Known.putPending(n, o.FirstSeen, o.FirstSeen.Add(o.Age+o.RetryIn), now)
		}
	}
	if p.DryRun {
		v.Details = append(v.Details, outcomeDetail(o, name))
	}
	switch o.State {
	case greylist.Passed:
		v.Greylist = GreylistResult{State: GreylistRetry, Age: o.Age, Name: name}
	case greylist.Known:
		v.Greylist = GreylistResult{State: GreylistPassed, Age: o.Age, Name: name}
	}
	if !o.Greylisted() {
		if writes {
			g.Known.put(n, o.FirstSeen, now)
		}
		return
	}
	retry := o.RetryIn.Round(time.Second)
	if retry < time.Second {
		retry = time.Second
	}
	at := now.Add(retry).UTC().Format("15:04:05")
	judged := "network " + o.Network.String()
	if name != "" {
		judged = "name " + name + " (key " + o.Network.String() + ")"
	}
	*v = Verdict{Action: Refuse, By: ByGreylist, DNS: v.DNS, Details: v.Details, GenericName: v.GenericName,
		Reply: Reply{451, Status{4, 7, 1}, fmt.Sprintf("Greylisted: please try again in %v, after %s UTC", retry, at)},
		Reasons: append(v.Reasons, fmt.Sprintf("greylisted: %s %s, first seen %v ago, retry in %v",
			judged, o.State, o.Age.Round(time.Second), retry)),
		Greylist: GreylistResult{State: GreylistRefused, Store: o.State, Age: o.Age, Network: o.Network, RetryIn: retry, Name: name}}
}

// subject is what a client is greylisted by: its address under the
// network policy, or (--greylist-by-name, a forward-confirmed name that
// is not generic) its name's key under the names policy, with the name.
func (g *Greylisting) subject(ip netip.Addr, v Verdict) (*greylist.Policy, netip.Addr, string) {
	if g.Names == nil || v.GenericName || v.DNS == nil {
		return g.Policy, ip, ""
	}
	host := v.DNS.RDNS.Host()
	if host == "" {
		return g.Policy, ip, ""
	}
	name := GreylistName(host)
	return g.Names, NameKey(name), name
}

// greylistFailed passes the client: greylisting is not worth refusing mail
// for, but the operator must hear of it.
func (p *Policy) greylistFailed(ip netip.Addr, v *Verdict, err error) {
	if outOfResources(err) {
		p.Log.Error("greylist failed: out of resources: client told 421", "ip", ip.String(), "error", err.Error())
		dns := v.DNS
		*v = tooBusy("greylist: " + err.Error())
		v.DNS = dns
		return
	}
	if h := p.Greylist.Health; h != nil {
		h.failed(p.Greylist.now(), p.Log, ip, err)
	} else {
		p.Log.Error("greylist failed: client passed", "ip", ip.String(), "error", err.Error())
	}
	v.Greylist = GreylistResult{State: GreylistError}
	if p.DryRun {
		v.Details = append(v.Details, "greylist: error (the client would pass): "+err.Error())
	}
}

// StoreHealth makes incidents of a store's failures for a long-running
// frontend, where a store that is down would otherwise cost an ERROR line
// per client: the first failure after an answer logs one ERROR line
// (greylist store failing: clients pass), a reminder follows every
// RemindEvery while the failures go on, and the first answer after them
// logs how many clients passed unchecked meanwhile. Each such client is
// still in its own connection's line (GREYLIST=error). Safe for
// concurrent use; the zero value is ready.
type StoreHealth struct {
	failing  atomic.Bool // read without the lock by every decision
	mu       sync.Mutex
	since    time.Time // the incident's first failure
	reminded time.Time // its last ERROR line
	passed   int       // clients passed unchecked in this incident
	unsure   atomic.Uint64
}

// RemindEvery is how often a StoreHealth repeats its ERROR line while the
// store keeps failing.
const RemindEvery = time.Minute

// Unsure reports how many clients passed unchecked because the store
// failed, since the start (for serve mode's counters).
func (h *StoreHealth) Unsure() uint64 {
	if h == nil {
		return 0
	}
	return h.unsure.Load()
}

func (h *StoreHealth) failed(now time.Time, log *logline.Logger, ip netip.Addr, err error) {
	h.unsure.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.passed++
	switch {
	case !h.failing.Load():
		h.failing.Store(true)
		h.since, h.reminded = now, now
		log.Error("greylist store failing: clients pass unchecked until it answers", "ip", ip.String(), "error", err.Error())
	case now.Sub(h.reminded) >= RemindEvery || now.Before(h.reminded):
		h.reminded = now
		log.Error("greylist store still failing: clients pass unchecked", "ip", ip.String(), "passed", h.passed,
			"for", now.Sub(h.since).Round(time.Second).String(), "error", err.Error())
	}
}

// answered ends the incident, if there is one.
func (h *StoreHealth) answered(now time.Time, log *logline.Logger) {
	if h == nil || !h.failing.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing.Load() {
		return // another decision ended it
	}
	log.Warn("greylist store answers again", "passed", h.passed, "for", now.Sub(h.since).Round(time.Second).String())
	h.failing.Store(false)
	h.passed = 0
}

func outcomeDetail(o greylist.Outcome, name string) string {
	judged := "network " + o.Network.String()
	if name != "" {
		judged = "name " + name + " (key " + o.Network.String() + ")"
	}
	s := fmt.Sprintf("greylist: %s %s, first seen %v ago", judged, o.State, o.Age.Round(time.Second))
	if !o.LastPass.IsZero() {
		s += ", last pass " + o.LastPass.UTC().Format(time.RFC3339)
	}
	if o.Greylisted() {
		s += fmt.Sprintf(", retry in %v", o.RetryIn.Round(time.Second))
	}
	return s
}

// age is a network's age for MXFRONT_GREYLIST: whole seconds, so that a
// script can compare it.
func age(d time.Duration) string { return strconv.FormatInt(int64(max(d, 0)/time.Second), 10) }

func (g *Greylisting) now() time.Time {
	if g.Now == nil {
		return time.Now()
	}
	return g.Now()
}

// forgetGreylisted drops the greylist record of a greylisted client that
// showed itself bogus (an early talker, a bogus HELO with --helo-check
// refuse), so that retrying never earns it a pass. Errors are logged.
func (p *Policy) forgetGreylisted(ctx context.Context, ip netip.Addr, v Verdict) {
	if p.DryRun || p.Observe || p.Greylist == nil || p.Greylist.Policy == nil || p.Greylist.LogOnly || !v.Greylisted() {
		return
	}
	ctx, cancel := p.Greylist.bound(ctx)
	defer cancel()
	policy, key := p.Greylist.Policy, ip
	if name := v.Greylist.Name; name != "" && p.Greylist.Names != nil {
		policy, key = p.Greylist.Names, NameKey(name)
	}
	if err := policy.Forget(ctx, key); err != nil {
		p.Log.Error("greylist: cannot forget a bogus client", "ip", ip.String(), "error", err.Error())
	}
}

// PassCache remembers, for a short time, the networks the greylist passed,
// so that a long-running frontend decides on their clients without opening
// the database, and the networks it greylisted, until their delay ends, so
// that a client retrying early is refused again the same way (before the
// delay, nothing but an administrator's allow or remove changes a pending
// record: the control socket drops the network here at once, another host
// sharing the store takes effect within TTL). An entry lives TTL at most;
// the cache holds at most Max networks.
type PassCache struct {
	ttl time.Duration
	max int
	mu  sync.RWMutex
	m   map[netip.Prefix]cachedPass
}

type cachedPass struct {
	firstSeen time.Time // for MXFRONT_GREYLIST's age
	until     time.Time
	pending   bool      // greylisted: refused until retryAt
	retryAt   time.Time // a pending network's end of delay
}

// NewPassCache returns a cache of at most max networks kept ttl each.
func NewPassCache(ttl time.Duration, max int) *PassCache {
	return &PassCache{ttl: ttl, max: max, m: make(map[netip.Prefix]cachedPass)}
}

func (c *PassCache) get(n netip.Prefix, now time.Time) (cachedPass, bool) {
	if c == nil {
		return cachedPass{}, false
	}
	c.mu.RLock()
	e, ok := c.m[n]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) || now.Before(e.until.Add(-c.ttl)) || now.Before(e.firstSeen) {
		// Expired, or the clock went back: ask the store.
		return cachedPass{}, false
	}
	return e, true
}

func (c *PassCache) put(n netip.Prefix, firstSeen, now time.Time) {
	if c == nil {
		return
	}
	c.store(n, cachedPass{firstSeen: firstSeen, until: now.Add(c.ttl)}, now)
}

// putPending remembers greylisted network n until retryAt (TTL at most).
func (c *PassCache) putPending(n netip.Prefix, firstSeen, retryAt, now time.Time) {
	if c == nil || !now.Before(retryAt) {
		return
	}
	c.store(n, cachedPass{firstSeen: firstSeen, until: minTime(retryAt, now.Add(c.ttl)), pending: true, retryAt: retryAt}, now)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (c *PassCache) store(n netip.Prefix, e cachedPass, now time.Time) {
	if c == nil || c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		// Still full of live entries: drop about half, at random (map
		// order); they are only a cache.
		for k := range c.m {
			if len(c.m) < c.max/2+1 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[n] = e
}

// Len reports how many networks the cache holds.
func (c *PassCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
