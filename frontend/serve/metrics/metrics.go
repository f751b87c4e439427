// Package metrics counts what serve mode does, for Prometheus at /metrics
// and for a person on a small status page at / (page.go): connections by
// outcome and by the check or limit that decided, replies by code, DNS
// lookups by zone and result with their latency, greylist decisions,
// PROGRAM's exits, and the gauges of serve.Stats.
//
// It is a serve.Observer, called on each connection's goroutine, so it
// must never block one: the connection path only adds to atomic counters
// (and stores one pointer for a refusal); locks are taken by the page and
// the per-minute snapshots alone. Label values are bounded: outcomes,
// check names, limits, reply codes, exit-status buckets and the zone names
// of the configuration; never an address (addresses appear only on the
// status page's list of recent refusals).
package metrics

import (
	"context"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mxfront/mxfront/dnsbl"
	mxexec "github.com/mxfront/mxfront/exec"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/frontend/serve"
	"github.com/mxfront/mxfront/greylist"
)

// Config is what New needs; all of it is optional.
type Config struct {
	Version string
	// Zones are the DNS lists' names from the configuration (entries
	// sharing a name count once); lookups of other zones are not counted.
	Zones []string
	// Stats gives the gauges (connections, children and refusal dialogues
	// open); nil: no gauges.
	Stats func() serve.Stats
	// Now is the clock of uptime and the windows; nil: time.Now.
	Now func() time.Time
	// Lists gives the DNS lists' health (serve.ListHealth.Zones); nil:
	// not shown.
	Lists func() []serve.ZoneHealth
	// StoreSize counts the greylist store (greylist.Store.Stats), in the
	// background every few minutes; nil: not shown.
	StoreSize func(context.Context) (greylist.StoreStats, error)
}

// Metrics is serve mode's observer and the state behind /metrics and the
// status page. Make one with New.
type Metrics struct {
	now     func() time.Time
	start   time.Time
	version string
	stats   func() serve.Stats
	lists   func() []serve.ZoneHealth
	store   *storeSize // nil: not counted
	reg     *prometheus.Registry

	accepting atomic.Bool

	// Connections: an outcome and what decided it.
	connsVec *prometheus.CounterVec
	byCheck  [nOutcomes][nChecks]atomic.Pointer[category]
	byWhy    sync.Map   // a turned-away client's Ending.Why → *category
	mu       sync.Mutex // guards new categories and the windows
	cats     []*category
	catIndex map[string]*category

	repliesVec *prometheus.CounterVec
	replies    [600]atomic.Pointer[counter]

	zones     []*zone
	zoneIndex map[string]int

	greyVec    *prometheus.CounterVec
	grey       [nGreyStates]prometheus.Counter
	storeErrs  prometheus.Counter
	exits      [nExitBuckets]prometheus.Counter
	programDur prometheus.Histogram
	reloads    [2]prometheus.Counter

	// counts are what the page's windows are made of (window.go).
	counts  [nCounts]atomic.Uint64
	windows windows
	recent  recent
	reload  atomic.Pointer[reloadState]
}

type counter struct{ c prometheus.Counter }

// category is one kind of connection ending: an outcome, and the check or
// limit that decided it ("" when none did).
type category struct {
	outcome, by string
	c           prometheus.Counter
	idx         int // into Metrics.counts
}

// zone is one configured DNS list.
type zone struct {
	name    string
	results [nDNSResults]prometheus.Counter
	latency prometheus.Observer
	idx     int // its first field in Metrics.counts
}

type reloadState struct {
	at  time.Time
	err string
}

// The layout of Metrics.counts: connection categories, then each zone's
// fields, then the greylist's.
const (
	maxCategories = 48
	maxZones      = 32
	// Per zone: lookups, listed, timeouts, other failures, lookups timed
	// (not cached), their summed latency in microseconds.
	zLookups, zListed, zTimeouts, zFailed, zTimed, zMicros, zoneFields = 0, 1, 2, 3, 4, 5, 6
	greyBase                                                           = maxCategories + maxZones*zoneFields
	gStoreErrors                                                       = greyBase + nGreyStates
	nCounts                                                            = gStoreErrors + 1
)

const (
	nOutcomes = 6
	nChecks   = 16
)

// outcomeNames are the outcome label's values, by frontend.Outcome.
var outcomeNames = [nOutcomes]string{"passed", "trusted", "refused", "hung-up", "rejected", "failed"}

// The DNS lookup results, by cause.
const (
	rListed = iota
	rNotListed
	rTimeout
	rErrorAnswer
	rServFail
	rRefused
	rBadAnswer
	rUnreadable
	rOutOfResources
	rBroken
	nDNSResults
)

var dnsResultNames = [nDNSResults]string{"listed", "not-listed", "timeout", "error-answer", "servfail", "refused",
	"bad-answer", "unreadable", "out-of-resources", "broken"}

func dnsResult(z *dnsbl.ZoneResult) int {
	if z.Err == nil {
		if z.Listed {
			return rListed
		}
		return rNotListed
	}
	switch z.Err.Cause {
	case dnsbl.Timeout:
		return rTimeout
	case dnsbl.ErrorCode:
		return rErrorAnswer
	case dnsbl.ServFail:
		return rServFail
	case dnsbl.Refused:
		return rRefused
	case dnsbl.BadAnswer:
		return rBadAnswer
	case dnsbl.Unreadable:
		return rUnreadable
	case dnsbl.Exhausted:
		return rOutOfResources
	}
	return rBroken
}

// The greylist decision's states: greylisting's own for a client it let
// through, the store's word for one it greylisted.
const (
	gSkipped = iota
	gError
	gRetry
	gPassed
	gNew
	gEarly
	gRestarted
	gLapsed
	nGreyStates
)

var greyNames = [nGreyStates]string{"skipped", "error", "retry", "passed", "new", "early", "restarted", "lapsed"}

func greyState(g frontend.GreylistResult) int {
	switch g.State {
	case frontend.GreylistSkipped:
		return gSkipped
	case frontend.GreylistError:
		return gError
	case frontend.GreylistRetry:
		return gRetry
	case frontend.GreylistPassed:
		return gPassed
	case frontend.GreylistRefused:
		switch g.Store {
		case greylist.Early:
			return gEarly
		case greylist.Restarted:
			return gRestarted
		case greylist.Lapsed:
			return gLapsed
		}
		return gNew
	}
	return -1
}

// PROGRAM's exit statuses, in few buckets: 0, 1, and qmail's and
// rblsmtpd's 100 (permanent) and 111 (temporary), any other code, a signal.
const (
	eZero = iota
	eOne
	e100
	e111
	eOther
	eSignal
	nExitBuckets
)

var exitNames = [nExitBuckets]string{"0", "1", "100", "111", "other", "signal"}

func exitBucket(s mxexec.Status) int {
	ws := syscall.WaitStatus(s)
	if ws.Signaled() {
		return eSignal
	}
	switch ws.ExitStatus() {
	case 0:
		return eZero
	case 1:
		return eOne
	case 100:
		return e100
	case 111:
		return e111
	}
	return eOther
}

// The limits and ceilings serve turns clients away for (Ending.Why), made
// at start so that their series exist at zero.
var knownLimits = []string{"max-conns", "max-conns-per-ip", "max-children", "fd-ceiling", "thread-ceiling",
	"out-of-resources", "proxy-header", "proxy-not-allowed"}

// New makes the metrics and registers them, with Go's and the process's
// own, in a registry of their own.
func New(cfg Config) *Metrics {
	m := &Metrics{now: cfg.Now, version: cfg.Version, stats: cfg.Stats, lists: cfg.Lists, reg: prometheus.NewRegistry(),
		catIndex: map[string]*category{}, zoneIndex: map[string]int{}}
	if m.now == nil {
		m.now = time.Now
	}
	if m.version == "" {
		m.version = "unknown"
	}
	m.start = m.now()
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mxfront_build_info", Help: "mxfront's version and Go's; always 1.",
		ConstLabels: prometheus.Labels{"version": m.version, "goversion": runtime.Version()},
	}, func() float64 { return 1 }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mxfront_start_time_seconds", Help: "When serve started, in seconds since the epoch.",
	}, func() float64 { return float64(m.start.UnixNano()) / 1e9 }))
	if m.stats != nil {
		m.reg.MustRegister(gauges{m.stats})
	}
	if m.lists != nil {
		m.reg.MustRegister(listGauges{m.lists})
	}
	if cfg.StoreSize != nil {
		m.store = &storeSize{count: cfg.StoreSize}
		m.reg.MustRegister(m.store)
	}
	m.newConnections()
	m.repliesVec = m.counterVec("mxfront_replies_total", "Replies mxfront wrote itself (the refusal dialogue's, every 421), by code.", "code")
	m.newZones(cfg.Zones)
	m.newGreylist()
	m.newProgram()
	m.windows.init(m.start)
	return m
}

func (m *Metrics) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	m.reg.MustRegister(v)
	return v
}

func (m *Metrics) newConnections() {
	m.connsVec = m.counterVec("mxfront_connections_total",
		"Connections by how they ended (passed, trusted, refused, rejected, hung-up, failed) and the check or limit that decided (by).",
		"outcome", "by")
	pre := map[frontend.Outcome][]frontend.Check{
		frontend.OutcomePassed:  {frontend.ByNone},
		frontend.OutcomeTrusted: {frontend.ByAllowList, frontend.ByDNSLists},
		frontend.OutcomeRefused: {frontend.ByDenyList, frontend.ByDNSLists, frontend.ByRDNS, frontend.ByGreylist, frontend.ByEarlyTalker, frontend.ByHELO},
		frontend.OutcomeHungUp:  {frontend.ByNone},
		frontend.OutcomeFailed:  {frontend.ByNone},
	}
	for _, o := range []frontend.Outcome{frontend.OutcomePassed, frontend.OutcomeTrusted, frontend.OutcomeRefused,
		frontend.OutcomeHungUp, frontend.OutcomeFailed} {
		for _, c := range pre[o] {
			m.byCheck[o][c].Store(m.categoryFor(outcomeNames[o], checkLabel(o, c)))
		}
	}
	for _, why := range knownLimits {
		m.byWhy.Store(why, m.categoryFor(outcomeNames[frontend.OutcomeBusy], why))
	}
}

// checkLabel is the by label of an outcome decided by c: none for a plain
// pass, a hang-up or a failure.
func checkLabel(o frontend.Outcome, c frontend.Check) string {
	switch o {
	case frontend.OutcomeTrusted, frontend.OutcomeRefused:
		return c.String()
	}
	return ""
}

// categoryFor returns the category of outcome and by, making it on first
// sight; past maxCategories, the outcome's "other".
func (m *Metrics) categoryFor(outcome, by string) *category {
	key := outcome + "/" + by
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.catIndex[key]; c != nil {
		return c
	}
	if len(m.cats) >= maxCategories-nOutcomes {
		// Room is kept for one "other" per outcome.
		by, key = "other", outcome+"/other"
		if c := m.catIndex[key]; c != nil {
			return c
		}
	}
	c := &category{outcome: outcome, by: by, c: m.connsVec.WithLabelValues(outcome, by), idx: len(m.cats)}
	m.cats = append(m.cats, c)
	m.catIndex[key] = c
	return c
}

func (m *Metrics) newZones(names []string) {
	results := m.counterVec("mxfront_dns_lookups_total", "DNS list lookups by zone and result.", "zone", "result")
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "mxfront_dns_lookup_duration_seconds", Help: "DNS list lookups' time to the zone's last answer, by zone (cached answers left out).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5},
	}, []string{"zone"})
	m.reg.MustRegister(latency)
	for _, n := range names {
		if _, ok := m.zoneIndex[n]; ok || len(m.zones) == maxZones {
			continue
		}
		z := &zone{name: n, latency: latency.WithLabelValues(n), idx: maxCategories + len(m.zones)*zoneFields}
		for r := range z.results {
			z.results[r] = results.WithLabelValues(n, dnsResultNames[r])
		}
		m.zoneIndex[n] = len(m.zones)
		m.zones = append(m.zones, z)
	}
}

func (m *Metrics) newGreylist() {
	m.greyVec = m.counterVec("mxfront_greylist_decisions_total",
		"Greylist decisions by state: skipped, error (the store failed: passed), retry (passes now), passed (passed before), or the store's word for a greylisted client (new, early, restarted, lapsed).",
		"state")
	for s := range m.grey {
		m.grey[s] = m.greyVec.WithLabelValues(greyNames[s])
	}
	m.storeErrs = prometheus.NewCounter(prometheus.CounterOpts{Name: "mxfront_greylist_store_errors_total",
		Help: "Greylist decisions the store could not make (the client passed)."})
	m.reg.MustRegister(m.storeErrs)
}

func (m *Metrics) newProgram() {
	exits := m.counterVec("mxfront_program_exits_total", "PROGRAM exits by status: 0, 1, 100, 111, other (any other code), signal.", "status")
	for b := range m.exits {
		m.exits[b] = exits.WithLabelValues(exitNames[b])
	}
	m.programDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mxfront_program_duration_seconds", Help: "From a passed connection's accept to its PROGRAM's exit.",
		Buckets: []float64{.1, .5, 1, 5, 10, 30, 60, 300, 1800},
	})
	m.reg.MustRegister(m.programDur)
	rl := m.counterVec("mxfront_list_reloads_total", "List file reloads (SIGHUP) by result: ok, failed (the old lists stay).", "result")
	m.reloads = [2]prometheus.Counter{rl.WithLabelValues("ok"), rl.WithLabelValues("failed")}
}

// Registry is where the metrics are registered (for /metrics).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetAccepting says whether serve accepts connections (/healthz).
func (m *Metrics) SetAccepting(ok bool) { m.accepting.Store(ok) }

// Reloaded counts a reload of the list files; err is its failure.
func (m *Metrics) Reloaded(err error) {
	st := &reloadState{at: m.now()}
	if err != nil {
		st.err = err.Error()
		m.reloads[1].Inc()
	} else {
		m.reloads[0].Inc()
	}
	m.reload.Store(st)
}

// Decided counts what the checks asked: the DNS lists and the greylist.
func (m *Metrics) Decided(_ frontend.Client, v frontend.Verdict) {
	if v.DNS != nil {
		m.countDNS(v.DNS)
	}
	if s := greyState(v.Greylist); s >= 0 {
		m.grey[s].Inc()
		m.counts[greyBase+s].Add(1)
		if s == gError {
			m.storeErrs.Inc()
			m.counts[gStoreErrors].Add(1)
		}
	}
}

// countDNS counts each zone once, whatever the number of its entries: they
// share one query.
func (m *Metrics) countDNS(r *dnsbl.Result) {
	var seen uint64
	for i := range r.Zones {
		zr := &r.Zones[i]
		n, ok := m.zoneIndex[zr.Zone.Name]
		if !ok || seen&(1<<n) != 0 {
			continue
		}
		seen |= 1 << n
		if zr.Aside != nil {
			continue // set aside: not asked
		}
		z := m.zones[n]
		res := dnsResult(zr)
		if res == rNotListed && zoneListed(r, zr.Zone.Name, i) {
			res = rListed
		}
		z.results[res].Inc()
		m.counts[z.idx+zLookups].Add(1)
		switch res {
		case rListed:
			m.counts[z.idx+zListed].Add(1)
		case rNotListed:
		case rTimeout:
			m.counts[z.idx+zTimeouts].Add(1)
		default:
			m.counts[z.idx+zFailed].Add(1)
		}
		if !zr.Cached {
			z.latency.Observe(zr.Duration.Seconds())
			m.counts[z.idx+zTimed].Add(1)
			m.counts[z.idx+zMicros].Add(uint64(zr.Duration.Microseconds()))
		}
	}
}

// zoneListed reports whether a later entry of zone name listed the client.
func zoneListed(r *dnsbl.Result, name string, from int) bool {
	for j := from + 1; j < len(r.Zones); j++ {
		if r.Zones[j].Zone.Name == name && r.Zones[j].Listed {
			return true
		}
	}
	return false
}

// Replied counts a reply by its code.
func (m *Metrics) Replied(r frontend.Reply) {
	code := r.Code
	if code < 200 || code >= len(m.replies) {
		code = 0 // "other"
	}
	p := m.replies[code].Load()
	if p == nil {
		label := "other"
		if code != 0 {
			label = itoa3(code)
		}
		p = &counter{m.repliesVec.WithLabelValues(label)}
		m.replies[code].CompareAndSwap(nil, p)
		p = m.replies[code].Load()
	}
	p.c.Inc()
}

func itoa3(n int) string {
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}

// Ended counts a connection by its outcome, and keeps a refusal for the
// status page.
func (m *Metrics) Ended(e frontend.Ending) {
	c := m.category(e)
	c.c.Inc()
	m.counts[c.idx].Add(1)
	switch e.Outcome {
	case frontend.OutcomeRefused, frontend.OutcomeBusy:
		r := &refusal{at: m.now(), ip: e.Client.Remote.Addr(), by: c.by, outcome: c.outcome}
		if e.Outcome == frontend.OutcomeRefused {
			r.reasons, r.code = e.Verdict.Reasons, e.Verdict.Reply.Code
			if e.Transcript != nil {
				r.helo = e.Transcript.HELO
			}
		}
		m.recent.add(r)
	}
}

func (m *Metrics) category(e frontend.Ending) *category {
	o := e.Outcome
	if int(o) >= nOutcomes {
		o = frontend.OutcomeFailed
	}
	if o == frontend.OutcomeBusy {
		why := e.Why
		if why == "" {
			why = "other"
		}
		if c, ok := m.byWhy.Load(why); ok {
			return c.(*category)
		}
		c := m.categoryFor(outcomeNames[o], why)
		if c.by == why {
			m.byWhy.Store(why, c) // not when folded into "other": the map stays bounded
		}
		return c
	}
	by := e.Verdict.By
	if int(by) >= nChecks {
		by = nChecks - 1
	}
	if c := m.byCheck[o][by].Load(); c != nil {
		return c
	}
	c := m.categoryFor(outcomeNames[o], checkLabel(o, by))
	m.byCheck[o][by].Store(c)
	return c
}

// ChildExited counts PROGRAM's exit by status bucket, and its time.
func (m *Metrics) ChildExited(s mxexec.Status, took time.Duration) {
	m.exits[exitBucket(s)].Inc()
	m.programDur.Observe(took.Seconds())
}

// gauges reads serve.Stats once per scrape.
type gauges struct{ stats func() serve.Stats }

var (
	connsDesc    = prometheus.NewDesc("mxfront_connections_open", "Connections open: being decided, refused, or passed and their PROGRAM running.", nil, nil)
	childrenDesc = prometheus.NewDesc("mxfront_children_running", "PROGRAM processes running.", nil, nil)
	refusingDesc = prometheus.NewDesc("mxfront_refusal_dialogues_open", "Refusal dialogues in progress.", nil, nil)
)

func (g gauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- connsDesc
	ch <- childrenDesc
	ch <- refusingDesc
}

func (g gauges) Collect(ch chan<- prometheus.Metric) {
	st := g.stats()
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.GaugeValue, float64(st.Conns))
	ch <- prometheus.MustNewConstMetric(childrenDesc, prometheus.GaugeValue, float64(st.Children))
	ch <- prometheus.MustNewConstMetric(refusingDesc, prometheus.GaugeValue, float64(st.Refusing))
}

// refusal is one client refused or turned away, for the status page.
type refusal struct {
	seq     uint64
	at      time.Time
	ip      netip.Addr
	helo    string
	outcome string // refused or rejected
	by      string
	reasons []string
	code    int
}

var _ serve.Observer = (*Metrics)(nil)
