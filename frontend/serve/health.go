package serve

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/internal/logline"
)

// ListHealth keeps serve's DNS lists honest while it runs: every Interval
// it asks each zone about the RFC 5782 test points (as `mxfront check
// --lists` does) and sets a zone that fails aside, so that no client is
// asked about it (nor refused by it) until it passes again; and it has the
// Checker set a zone aside after Failures lookups in a row failed by the
// zone's fault. Each change is logged once, with the reason and a hint.
// With LogOnly (--dns-health-action log) zones are reported, never set
// aside.
type ListHealth struct {
	Checker  *dnsbl.Checker
	Interval time.Duration // between health checks; 0: none
	Failures int           // live failures in a row that set a zone aside; 0: never
	LogOnly  bool
	Log      *logline.Logger
	// Changed, when set, is called after each change (serve's sd_notify
	// STATUS); it must not block.
	Changed func()
	Now     func() time.Time // nil: time.Now

	mu   sync.Mutex
	last map[string]checked
}

// checked is a zone's last health check.
type checked struct {
	at time.Time
	h  dnsbl.Health
}

// ZoneHealth is one DNS list's health as serve knows it.
type ZoneHealth struct {
	Zone    string
	Checked time.Time    // the last health check; zero: none yet
	Status  dnsbl.Status // what it found
	Detail  string
	// Aside is why the zone is set aside (or, Asked, only reported);
	// nil: in use.
	Aside *dnsbl.Aside
}

// SetAside reports whether the zone is not asked for clients.
func (z ZoneHealth) SetAside() bool { return z.Aside != nil && !z.Aside.Asked }

// Start installs the live watch on the Checker; call it before serve
// accepts. Without health checks nothing could bring a zone back, so
// live failures are then only reported.
func (h *ListHealth) Start() {
	if h.Now == nil {
		h.Now = time.Now
	}
	h.Checker.Watch(dnsbl.Watch{Failures: h.Failures, LogOnly: h.LogOnly || h.Interval <= 0, Changed: h.changed, Now: h.Now})
}

// Run checks at once, then every Interval, until ctx is done.
func (h *ListHealth) Run(ctx context.Context) {
	if h.Interval <= 0 {
		return
	}
	h.CheckNow(ctx)
	tick := time.NewTicker(h.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.CheckNow(ctx)
		}
	}
}

// CheckNow runs one health check of every zone and sets aside or restores
// each by its result.
func (h *ListHealth) CheckNow(ctx context.Context) {
	hs := h.Checker.Health(ctx)
	if ctx.Err() != nil {
		return // cut short by the stop: says nothing of the zones
	}
	at := h.Now()
	h.mu.Lock()
	if h.last == nil {
		h.last = map[string]checked{}
	}
	for _, z := range hs {
		h.last[z.Zone] = checked{at, z}
	}
	h.mu.Unlock()
	for _, z := range hs {
		switch z.Status {
		case dnsbl.OK:
			h.Checker.Restore(z.Zone)
			continue
		case dnsbl.Unchecked:
			// Our own lack of fds says nothing of the zone.
			h.Log.Warn("DNS list health check could not run: out of resources; the list's state is kept", "zone", z.Zone, "detail", z.Detail)
			continue
		}
		h.Checker.SetAside(dnsbl.Aside{Zone: z.Zone, By: dnsbl.ByHealthCheck, Since: at, Reason: z.Reason(), Hint: z.Hint})
	}
}

// changed logs a change once, as the Checker reports it.
func (h *ListHealth) changed(a dnsbl.Aside, back bool) {
	switch {
	case back && a.Asked:
		h.Log.Info("DNS list passes its health check again", "zone", a.Zone, "failing_for", h.since(a))
	case back:
		h.Log.Info("DNS list back in use: it passes its health check", "zone", a.Zone, "aside_for", h.since(a))
	case a.Asked:
		why := "--dns-health-action log"
		if h.Interval <= 0 {
			why = "--dns-health-interval 0: no health check would bring it back"
		}
		h.Log.Warn("DNS list failing; still asked ("+why+")", "zone", a.Zone, "by", a.By.String(),
			"reason", a.Reason, "hint", a.Hint)
	default:
		h.Log.Warn("DNS list set aside: no client is asked about (or refused by) it until it passes a health check",
			"zone", a.Zone, "by", a.By.String(), "reason", a.Reason, "hint", a.Hint)
	}
	if h.Changed != nil {
		h.Changed()
	}
}

func (h *ListHealth) since(a dnsbl.Aside) string {
	return h.Now().Sub(a.Since).Round(time.Second).String()
}

// Zones returns every zone's health, in configured order.
func (h *ListHealth) Zones() []ZoneHealth {
	asides := map[string]dnsbl.Aside{}
	for _, a := range h.Checker.Asides() {
		asides[a.Zone] = a
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []ZoneHealth
	seen := map[string]bool{}
	for _, z := range h.Checker.Zones() {
		if seen[z.Name] {
			continue
		}
		seen[z.Name] = true
		zh := ZoneHealth{Zone: z.Name}
		if c, ok := h.last[z.Name]; ok {
			zh.Checked, zh.Status, zh.Detail = c.at, c.h.Status, c.h.Detail
		}
		if a, ok := asides[z.Name]; ok {
			zh.Aside = &a
		}
		out = append(out, zh)
	}
	return out
}

// Summary is the lists' part of serve's sd_notify STATUS, e.g. "lists: 2
// in use, 1 set aside (bl.example: refusing)".
func (h *ListHealth) Summary() string {
	var use int
	var aside, failing []string
	for _, z := range h.Zones() {
		switch {
		case z.Aside == nil:
			use++
		case z.SetAside():
			aside = append(aside, z.Zone+": "+short(z.Aside.Reason))
		default:
			failing = append(failing, z.Zone+": "+short(z.Aside.Reason))
		}
	}
	s := fmt.Sprintf("lists: %d in use", use+len(failing))
	if len(aside) > 0 {
		s += fmt.Sprintf(", %d set aside (%s)", len(aside), strings.Join(aside, "; "))
	}
	if len(failing) > 0 {
		s += fmt.Sprintf(", %d failing (%s)", len(failing), strings.Join(failing, "; "))
	}
	return s
}

// short is a reason's first part: "refusing", "dead", "10 lookups in a row
// failed".
func short(reason string) string {
	if i := strings.IndexAny(reason, ":;"); i > 0 {
		return reason[:i]
	}
	return reason
}
