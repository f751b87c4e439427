package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxfront/mxfront/frontend/serve"
	"github.com/mxfront/mxfront/greylist"
)

// The DNS lists' health (serve.ListHealth) and the greylist store's size,
// read when scraped or shown: nothing on the connection path.

var (
	listAsideDesc = prometheus.NewDesc("mxfront_dns_list_set_aside",
		"1 while the DNS list is set aside (not asked for clients: it failed its RFC 5782 health check, or too many lookups in a row), else 0.",
		[]string{"zone"}, nil)
	listHealthyDesc = prometheus.NewDesc("mxfront_dns_list_healthy",
		"1 while the DNS list passes (its last health check, and its lookups), 0 while it fails (set aside, or with --dns-health-action log still asked).",
		[]string{"zone"}, nil)
	listCheckedDesc = prometheus.NewDesc("mxfront_dns_list_last_check_timestamp_seconds",
		"When the DNS list's last health check ended (Unix time); absent before the first (at start, and with --dns-health-interval 0).",
		[]string{"zone"}, nil)
	storeRecordsDesc = prometheus.NewDesc("mxfront_greylist_store_records",
		"Networks recorded in the greylist store, as last counted (every few minutes).", nil, nil)
	storeBytesDesc = prometheus.NewDesc("mxfront_greylist_store_bytes",
		"Storage the greylist store uses, as it tells (the file's size for bbolt), as last counted.", nil, nil)
)

// listGauges reads the lists' health once per scrape. Zone names come
// from the configuration only.
type listGauges struct{ lists func() []serve.ZoneHealth }

func (g listGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- listAsideDesc
	ch <- listHealthyDesc
	ch <- listCheckedDesc
}

func (g listGauges) Collect(ch chan<- prometheus.Metric) {
	for _, z := range g.lists() {
		aside, healthy := 0.0, 1.0
		if z.SetAside() {
			aside = 1
		}
		if z.Aside != nil {
			healthy = 0
		}
		ch <- prometheus.MustNewConstMetric(listAsideDesc, prometheus.GaugeValue, aside, z.Zone)
		ch <- prometheus.MustNewConstMetric(listHealthyDesc, prometheus.GaugeValue, healthy, z.Zone)
		if !z.Checked.IsZero() {
			ch <- prometheus.MustNewConstMetric(listCheckedDesc, prometheus.GaugeValue, float64(z.Checked.UnixNano())/1e9, z.Zone)
		}
	}
}

// storeSize keeps the greylist store's size, counted in the background: a
// count may walk the whole store (bbolt's bucket, Redis's keys).
type storeSize struct {
	count func(context.Context) (greylist.StoreStats, error)
	mu    sync.Mutex
	at    time.Time
	st    greylist.StoreStats
	err   string
}

// storeCountEvery and storeCountWait pace and bound the counting.
const (
	storeCountEvery = 5 * time.Minute
	storeCountWait  = time.Minute
)

// run counts at once and then every storeCountEvery until ctx is done.
func (s *storeSize) run(ctx context.Context, now func() time.Time) {
	for {
		c, cancel := context.WithTimeout(ctx, storeCountWait)
		st, err := s.count(c)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		if err != nil {
			s.err = err.Error() // the last good count stays
		} else {
			s.at, s.st, s.err = now(), st, ""
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(storeCountEvery):
		}
	}
}

// get returns the last good count (at is zero before the first) and the
// last count's error.
func (s *storeSize) get() (at time.Time, st greylist.StoreStats, err string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at, s.st, s.err
}

func (s *storeSize) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeRecordsDesc
	ch <- storeBytesDesc
}

func (s *storeSize) Collect(ch chan<- prometheus.Metric) {
	at, st, _ := s.get()
	if at.IsZero() {
		return // not counted yet: no series rather than a false 0
	}
	ch <- prometheus.MustNewConstMetric(storeRecordsDesc, prometheus.GaugeValue, float64(st.Records))
	ch <- prometheus.MustNewConstMetric(storeBytesDesc, prometheus.GaugeValue, float64(st.Bytes))
}
