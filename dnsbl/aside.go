package dnsbl

import (
	"strconv"
	"sync/atomic"
	"time"
)

// A zone set aside is not asked for clients: a Check skips it, and its
// ZoneResult is neither listed nor failed, so it can neither refuse a
// client nor (with --dns-fail tempfail) defer one. A zone is set aside
// when its RFC 5782 test points fail (SetAside, from a health check or a
// state file), or after Watch.Failures consecutive failed lookups that are
// the zone's own fault; it comes back only through Restore (a passing
// health check).
//
// The per-connection cost is one atomic pointer load per zone: the state
// is a pointer to an immutable Aside, swapped whole.

// Source says what set a zone aside.
type Source int

const (
	// ByHealthCheck: its RFC 5782 test points failed.
	ByHealthCheck Source = iota + 1
	// ByLiveFailures: Watch.Failures lookups for clients failed in a row.
	ByLiveFailures
	// ByStateFile: a state file (mxfront check --lists --state-file) said so.
	ByStateFile
)

func (s Source) String() string {
	switch s {
	case ByHealthCheck:
		return "health-check"
	case ByLiveFailures:
		return "live-failures"
	case ByStateFile:
		return "state-file"
	}
	return "unknown"
}

// Aside is why a zone is set aside. It is never changed once stored.
type Aside struct {
	Zone   string
	By     Source
	Since  time.Time
	Reason string // what the zone answered, e.g. "refusing: 127.0.0.2 error answer 127.255.255.254; ..."
	Hint   string // what the operator can do about it
	// Asked: the zone was reported, not set aside (--dns-health-action
	// log): Checks go on asking it.
	Asked bool
}

// zoneState is a zone's health in live use.
type zoneState struct {
	aside atomic.Pointer[Aside]
	run   atomic.Int32 // consecutive failed lookups that are the zone's fault
}

// Watch is what a long-running Checker (serve mode) does with its zones'
// health.
type Watch struct {
	// Failures sets a zone aside after this many lookups for clients in a
	// row failed by the zone's fault (timeout, SERVFAIL, REFUSED, an
	// error answer, an unusable answer); 0: never. Failures of our own
	// resources (Exhausted) and invalid client addresses do not count.
	Failures int
	// LogOnly reports instead: the zone is marked (Aside.Asked) and still
	// asked.
	LogOnly bool
	// Changed is told of every change, once: a zone set aside (or marked)
	// with its Aside, or back in use (back true). It runs on the
	// goroutine that made the change, a Check's among them: it must not
	// block.
	Changed func(a Aside, back bool)
	// Now is the clock of Aside.Since; nil: time.Now.
	Now func() time.Time
}

// Watch installs w. Call it before the first Check.
func (c *Checker) Watch(w Watch) {
	if w.Now == nil {
		w.Now = time.Now
	}
	c.watch = w
}

// SetAside sets zone a.Zone aside for a.Reason (a.By, a.Hint; a.Since
// when zero is now), or with Watch.LogOnly marks it only. It reports
// whether that was a change: false for a zone not configured or already
// set aside (whose first reason stays).
func (c *Checker) SetAside(a Aside) bool {
	s := c.stats[a.Zone]
	if s == nil {
		return false
	}
	if a.Since.IsZero() {
		a.Since = c.now()
	}
	a.Asked = c.watch.LogOnly && a.By != ByStateFile
	if !s.aside.CompareAndSwap(nil, &a) {
		return false
	}
	if c.watch.Changed != nil {
		c.watch.Changed(a, false)
	}
	return true
}

// Restore puts zone back in use. It reports whether it was set aside (or
// marked).
func (c *Checker) Restore(zone string) bool {
	s := c.stats[zone]
	if s == nil {
		return false
	}
	old := s.aside.Load()
	if old == nil || !s.aside.CompareAndSwap(old, nil) {
		return false
	}
	s.run.Store(0)
	if c.watch.Changed != nil {
		c.watch.Changed(*old, true)
	}
	return true
}

// Asides returns the zones set aside (or marked), in configured order.
func (c *Checker) Asides() []Aside {
	var out []Aside
	for _, n := range c.names {
		if a := c.stats[n].aside.Load(); a != nil {
			out = append(out, *a)
		}
	}
	return out
}

func (c *Checker) now() time.Time {
	if c.watch.Now != nil {
		return c.watch.Now()
	}
	return time.Now()
}

// skip reports whether a Check leaves the zone of s out; the fast path:
// one atomic load.
func (s *counters) skip() *Aside {
	if a := s.aside.Load(); a != nil && !a.Asked {
		return a
	}
	return nil
}

// lived counts a finished lookup of zone name for Watch.Failures.
func (c *Checker) lived(name string, s *counters, err *Error) {
	n := c.watch.Failures
	if n <= 0 {
		return
	}
	if err == nil {
		// A load, not a store, on the common path: no cache line is
		// written by every Check.
		if s.run.Load() != 0 {
			s.run.Store(0)
		}
		return
	}
	if !zoneFault(err.Cause) {
		return
	}
	if int(s.run.Add(1)) == n {
		c.SetAside(Aside{Zone: name, By: ByLiveFailures,
			Reason: strconv.Itoa(n) + " lookups in a row failed; the last: " + err.Detail,
			Hint:   causeHint(err.Cause, err.Detail)})
	}
}

// zoneFault reports whether a failure of cause is the zone's (or its
// servers' and the resolver's), not ours: running out of our own
// resources, or a client address that cannot be asked about, says nothing
// of the zone.
func zoneFault(cause Cause) bool {
	switch cause {
	case Timeout, ServFail, Refused, ErrorCode, BadAnswer, Unreadable:
		return true
	}
	return false
}
