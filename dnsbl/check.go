package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultTimeout is the one deadline for all zones of a Check.
const DefaultTimeout = 2 * time.Second

// Config is what New needs. Only Zones and Servers are required.
type Config struct {
	Zones   []Zone
	Replies map[string]string // zone name → reply text template with %IP% and %ZONE%
	Servers []string          // IP:PORT, asked in order and rotated on failure
	Timeout time.Duration     // one deadline for all zones of a Check; DefaultTimeout when 0
	Try     time.Duration     // one attempt's wait before the next server is asked; Timeout/3 when 0
	Cache   *Cache            // answers kept for their TTL (serve mode); nil asks every time
	// Poller makes a Check wait for answers in Go's network poller, as a
	// long-running process serving many connections at once must (serve
	// mode; a Cache implies it). Otherwise, on Linux, a Check waits in a
	// blocking ppoll(2) on its own sockets, which spares a fresh process
	// that makes one Check and exits (chain mode) setting up the poller:
	// a few hundred microseconds; but each Check in flight holds an OS
	// thread, and a cancelled context is noticed only at the deadline.
	Poller bool
	// RDNS asks the client's PTR names, and each name's A or AAAA
	// records, in the same exchange as the zones (rdns.go): the Result's
	// RDNS. A Checker with RDNS may have no zone.
	RDNS bool
}

// Checker asks the configured lists about client addresses. It is safe for
// concurrent use.
type Checker struct {
	zones   []Zone
	names   []string // distinct zone names, in configured order
	replies map[string]string
	timeout time.Duration
	res     *resolver
	cache   *Cache
	stats   map[string]*counters
	rdns    bool
	watch   Watch // aside.go
}

type counters struct {
	queries, listings, failures atomic.Uint64
	// set aside, live failures in a row (aside.go)
	zoneState
}

// New checks cfg and returns a Checker. It sends nothing.
func New(cfg Config) (*Checker, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("dnsbl: no DNS server")
	}
	for _, s := range cfg.Servers {
		if err := checkServer(s); err != nil {
			return nil, err
		}
	}
	if cfg.Timeout < 0 || cfg.Try < 0 {
		return nil, errors.New("dnsbl: negative timeout")
	}
	c := &Checker{
		zones:   slices.Clone(cfg.Zones),
		replies: map[string]string{},
		timeout: cfg.Timeout,
		cache:   cfg.Cache,
		stats:   map[string]*counters{},
		rdns:    cfg.RDNS,
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	try := cfg.Try
	if try == 0 {
		try = c.timeout / 3
	}
	c.res = newResolver(slices.Clone(cfg.Servers), try, !cfg.Poller && cfg.Cache == nil)
	for _, z := range c.zones {
		if z.Name == "" {
			return nil, errors.New("dnsbl: zone without a name")
		}
		if c.stats[z.Name] == nil {
			c.stats[z.Name] = new(counters)
			c.names = append(c.names, z.Name)
		}
	}
	for name, text := range cfg.Replies {
		if c.stats[name] == nil {
			return nil, fmt.Errorf("dnsbl: reply text for zone %s, which is not configured", name)
		}
		c.replies[name] = text
	}
	return c, nil
}

// Zones returns the configured zones.
func (c *Checker) Zones() []Zone { return slices.Clone(c.zones) }

// ZoneResult is what one configured zone said about the client. Entries of
// the same zone name share the query, answers, TXT, duration and error.
type ZoneResult struct {
	Zone     Zone
	Query    string        // e.g. 2.0.0.127.zen.example (no final dot)
	Answers  []netip.Addr  // the A records received, error codes included
	TXT      string        // the list's TXT record, sanitised; asked only when an entry with points > 0 listed
	Duration time.Duration // from the start of the Check to this zone's last answer
	Cached   bool          // the A answer came from the cache
	Listed   bool          // an answer matched the filter: Zone.Points() is in the score
	Err      *Error        // non-nil: the zone could not be asked and is not listed
	// Aside, when set, is why the zone was not asked: it is set aside
	// (aside.go), and neither listed nor failed.
	Aside *Aside
}

// Result is what all zones said about one client.
type Result struct {
	IP    netip.Addr   // the address asked about (IPv4-mapped addresses unmapped)
	Score int          // sum of Points of the listed entries
	Zones []ZoneResult // one per configured zone, in configured order
	// Text is the reply for a refusal: of the listed entry with the most
	// points, the configured reply text, else its TXT, else a generic
	// text; always sanitised. Empty when no entry with points > 0 listed.
	Text string
	// TextZone is the zone Text comes from.
	TextZone string
	// RDNS is what reverse DNS said (Config.RDNS); nil when not asked.
	RDNS *RDNS
}

// Outcome is the DNS lists' verdict on a client.
type Outcome int

const (
	// Neutral: neither blocked nor trusted; the later checks decide.
	Neutral Outcome = iota
	// Blocked: the score reached the block threshold; refuse with Text.
	Blocked
	// Trusted: the score reached the allow threshold; skip later checks.
	Trusted
)

func (o Outcome) String() string {
	switch o {
	case Blocked:
		return "blocked"
	case Trusted:
		return "trusted"
	}
	return "neutral"
}

// Outcome applies the thresholds: Blocked when at least one entry with
// positive points listed the client and Score >= threshold (default 1),
// else Trusted when at least one entry with negative points listed it and
// Score <= allowThreshold (default -1), else Neutral. Requiring a listing
// keeps a threshold of 0 from judging clients nobody listed. Failed zones
// do not change the outcome; with "--dns-fail tempfail" the caller defers
// a Neutral client when Failed() is true.
func (r *Result) Outcome(threshold, allowThreshold int) Outcome {
	if r.Score >= threshold && len(r.BlockedBy()) > 0 {
		return Blocked
	}
	if r.Score <= allowThreshold && len(r.AllowedBy()) > 0 {
		return Trusted
	}
	return Neutral
}

// BlockedBy returns the names of the zones with a listed entry of positive
// points (for MXFRONT_DNSBL), each once, in configured order.
func (r *Result) BlockedBy() []string { return r.listedBy(func(p int) bool { return p > 0 }) }

// AllowedBy returns the names of the zones with a listed entry of negative
// points (for MXFRONT_DNSWL), each once, in configured order.
func (r *Result) AllowedBy() []string { return r.listedBy(func(p int) bool { return p < 0 }) }

func (r *Result) listedBy(want func(int) bool) []string {
	var names []string
	for _, z := range r.Zones {
		if z.Listed && want(z.Zone.Points()) && !slices.Contains(names, z.Zone.Name) {
			names = append(names, z.Zone.Name)
		}
	}
	return names
}

// Failed reports whether any zone could not be asked.
func (r *Result) Failed() bool {
	for _, z := range r.Zones {
		if z.Err != nil {
			return true
		}
	}
	return false
}

// Errors returns one error per failed zone, for the log.
func (r *Result) Errors() []*Error {
	var errs []*Error
	for _, z := range r.Zones {
		if z.Err != nil && !slices.ContainsFunc(errs, func(e *Error) bool { return e.Zone == z.Zone.Name }) {
			errs = append(errs, z.Err)
		}
	}
	return errs
}

// answer is what one zone name answered.
type answer struct {
	query    string
	addrs    []netip.Addr
	txt      string
	cached   bool
	duration time.Duration
	err      *Error
	aside    *Aside // set aside: not asked
}

// Check asks every configured zone about ip, all in parallel, within one
// deadline (Config.Timeout, or ctx's deadline when sooner). It always
// returns a Result; failed zones carry their Error and count as not listed.
//
// All questions go out at once, one datagram each on one socket per
// server, and the caller's goroutine waits for the answers: a process that
// makes one Check starts no goroutine and no timer for it.
func (c *Checker) Check(ctx context.Context, ip netip.Addr) *Result {
	ip = ip.Unmap().WithZone("")
	k := c.begin(ctx)
	defer k.x.close()
	answers := make([]answer, len(c.names))
	var rd *rdnsLookup
	if c.rdns {
		rd = c.askRDNS(k, ip)
	}
	for i, name := range c.names {
		s, a := c.stats[name], &answers[i]
		if a.aside = s.skip(); a.aside != nil {
			continue
		}
		s.queries.Add(1)
		if a.query = QueryName(ip, name); a.query == "" {
			a.err = &Error{Zone: name, Query: "(none)", Cause: Broken, Detail: "invalid client address"}
			c.finish(k, name, a)
		} else if e, ok := c.cache.get(cacheKey{a.query, typeA}); ok {
			a.cached = true
			c.gotA(k, i, name, a, e.addrs, nil)
		} else {
			k.x.ask(a.query+".", typeA, i)
		}
	}
	for q := k.x.next(); q != nil; q = k.x.next() {
		i := q.tag
		if i >= len(c.names) {
			rd.got(c, k, q)
			continue
		}
		name, a := c.names[i], &answers[i]
		if q.qtype == typeA {
			var e cacheEntry
			var ttl uint32
			if q.err == nil {
				e.addrs, ttl = addrsOf(&q.ans)
				c.cache.put(cacheKey{a.query, typeA}, e, ttl)
			}
			c.gotA(k, i, name, a, e.addrs, q.err)
			continue
		}
		// A missing or failed TXT does not undo the listing.
		if q.err == nil {
			var ttl uint32
			a.txt, ttl = txtOf(&q.ans)
			c.cache.put(cacheKey{a.query, typeTXT}, cacheEntry{txt: a.txt}, ttl)
		}
		c.finish(k, name, a)
	}
	r := c.judge(ip, answers)
	if rd != nil {
		r.RDNS = rd.result()
	}
	return r
}

// checking is one Check's (or Health's) exchange and clock.
type checking struct {
	x      *exchange
	start  time.Time
	budget time.Duration
}

// begin starts the exchange of a Check, ending at Config.Timeout or at
// ctx's deadline when sooner. No context.WithTimeout: its timer would
// start Go's network poller, which the raw link does without.
func (c *Checker) begin(ctx context.Context) checking {
	start := time.Now()
	deadline := start.Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return checking{x: c.res.start(ctx, deadline), start: start, budget: deadline.Sub(start)}
}

// gotA takes the A answer (or err) of zone name for answers[i]; a block
// listing then asks for the list's text, from the cache when it has it.
func (c *Checker) gotA(k checking, i int, name string, a *answer, addrs []netip.Addr, err error) {
	a.addrs, a.err = addrs, c.zoneError(name, a.query, addrs, err, k.budget)
	if a.err == nil {
		listed, blocks := c.listed(name, a.addrs)
		if listed {
			c.stats[name].listings.Add(1)
		}
		// Only a block listing has a use for the list's text.
		if blocks {
			if e, ok := c.cache.get(cacheKey{a.query, typeTXT}); ok {
				a.txt = e.txt
			} else {
				k.x.ask(a.query+".", typeTXT, i)
				return
			}
		}
	}
	c.finish(k, name, a)
}

// finish counts a zone's answer once nothing more is asked for it.
func (c *Checker) finish(k checking, name string, a *answer) {
	s := c.stats[name]
	if a.err != nil {
		s.failures.Add(1)
	}
	// A Check its caller cut short (serve's stop) fails by our doing,
	// not the zone's: it must not set the zone aside.
	if a.err == nil || k.x.ctx == nil || k.x.ctx.Err() == nil {
		c.lived(name, s, a.err)
	}
	a.duration = time.Since(k.start)
}

// listed reports whether any entry of zone name matches one of addrs, and
// whether one with positive points does.
func (c *Checker) listed(name string, addrs []netip.Addr) (listed, blocks bool) {
	for _, z := range c.zones {
		if z.Name == name && matchAny(z.Filter, addrs) {
			listed = true
			blocks = blocks || z.Points() > 0
		}
	}
	return listed, blocks
}

func matchAny(f Filter, addrs []netip.Addr) bool {
	for _, a := range addrs {
		if f.Match(a) {
			return true
		}
	}
	return false
}

// exhaustion reports whether err is the system's refusal of our own
// resources: out of fds (per process or system-wide), buffers or memory.
func exhaustion(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// zoneError turns a failed question (err) or an error answer among addrs
// into the zone's Error; nil when the answer is good.
func (c *Checker) zoneError(zone, query string, addrs []netip.Addr, err error, budget time.Duration) *Error {
	fail := func(cause Cause, detail string) *Error {
		return &Error{Zone: zone, Query: query, Cause: cause, Detail: detail}
	}
	var rc rcodeError
	var bad *badAnswer
	switch {
	case err == nil:
	case errors.As(err, &bad):
		return fail(Unreadable, bad.detail)
	case exhaustion(err):
		return fail(Exhausted, err.Error())
	case errors.Is(err, errTimeout):
		return fail(Timeout, "timeout after "+budget.Round(time.Millisecond).String())
	case errors.As(err, &rc) && rc.rcode == rcodeServerFailure:
		return fail(ServFail, "SERVFAIL")
	case errors.As(err, &rc) && rc.rcode == rcodeRefused:
		return fail(Refused, "REFUSED")
	case errors.As(err, &rc):
		return fail(Broken, "answer code "+rc.Error())
	default:
		return fail(Broken, err.Error())
	}
	if cause, detail := checkAnswers(addrs); cause != 0 {
		return fail(cause, detail)
	}
	return nil
}

// checkAnswers finds an answer that is an error, not a listing. One such
// answer spoils the others: the list is telling us it does not serve us.
func checkAnswers(addrs []netip.Addr) (Cause, string) {
	for _, a := range addrs {
		b := a.As4()
		switch {
		case !a.Is4() || b[0] != 127:
			return BadAnswer, "answer " + a.String() + " outside 127.0.0.0/8"
		case b[1] == 255 && b[2] == 255:
			return ErrorCode, "error answer " + a.String()
		}
	}
	return 0, ""
}

// addrsOf returns the A records of an answer and how long it may be kept:
// the smallest TTL of the answer, or for a negative answer the SOA's
// negative TTL (RFC 2308); 0 when there is none.
func addrsOf(r *records) ([]netip.Addr, uint32) {
	if len(r.addrs) == 0 {
		return nil, negativeTTL(r)
	}
	return r.addrs, r.ttl
}

// negativeTTL is the smaller of the SOA record's TTL and its MINIMUM
// (RFC 2308 section 5); 0 without a SOA.
func negativeTTL(r *records) uint32 {
	return min(r.soaTTL, r.soaMinimum)
}

// txtOf returns the text of the TXT records (several records joined with a
// blank), sanitised, and how long it may be kept.
func txtOf(r *records) (string, uint32) {
	if r.txts == 0 {
		return "", negativeTTL(r)
	}
	return sanitize(string(r.txt)), r.txtTTL
}

// judge turns the answers into a Result.
func (c *Checker) judge(ip netip.Addr, answers []answer) *Result {
	r := &Result{IP: ip, Zones: make([]ZoneResult, len(c.zones))}
	best := 0
	for i, z := range c.zones {
		a := answers[slices.Index(c.names, z.Name)]
		zr := ZoneResult{Zone: z, Query: a.query, Answers: slices.Clone(a.addrs), TXT: a.txt,
			Duration: a.duration, Cached: a.cached, Err: a.err, Aside: a.aside}
		if a.err == nil && matchAny(z.Filter, a.addrs) {
			zr.Listed = true
			r.Score += z.Points()
			if p := z.Points(); p > best {
				best, r.Text, r.TextZone = p, c.reply(ip, z.Name, a.txt), z.Name
			}
		}
		r.Zones[i] = zr
	}
	return r
}

func (c *Checker) reply(ip netip.Addr, zone, txt string) string {
	if t, ok := c.replies[zone]; ok {
		return expand(t, ip, zone)
	}
	if txt != "" {
		return txt
	}
	return expand(genericText, ip, zone)
}

// ZoneStats counts what one zone did since the Checker was made, for a
// health view.
type ZoneStats struct {
	Zone     string
	Queries  uint64 // Checks that asked the zone
	Listings uint64 // of which the zone listed the client
	Failures uint64 // of which the zone could not be asked (see Error)
}

// Stats returns the counters of every zone, in configured order.
func (c *Checker) Stats() []ZoneStats {
	out := make([]ZoneStats, 0, len(c.names))
	for _, n := range c.names {
		s := c.stats[n]
		out = append(out, ZoneStats{Zone: n, Queries: s.queries.Load(),
			Listings: s.listings.Load(), Failures: s.failures.Load()})
	}
	return out
}
