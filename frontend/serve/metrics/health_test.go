package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/frontend/serve"
	"github.com/mxfront/mxfront/greylist"
)

// The lists' health shows as two gauges per zone and on the page, with
// the reason and the hint; the greylist store's size as two gauges and a
// line on the page, the last good count kept when a count fails.
func TestListHealthAndStoreSize(t *testing.T) {
	since := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	lists := []serve.ZoneHealth{
		{Zone: "ok.example", Checked: since, Status: dnsbl.OK},
		{Zone: "bad.example", Checked: since, Status: dnsbl.Refusing, Aside: &dnsbl.Aside{Zone: "bad.example",
			By: dnsbl.ByHealthCheck, Since: since, Reason: "refusing: 127.0.0.2 error answer 127.255.255.254",
			Hint: "answers 127.255.255.254: this list refuses queries from your resolver"}},
		{Zone: "flaky.example", Aside: &dnsbl.Aside{Zone: "flaky.example", By: dnsbl.ByLiveFailures, Since: since,
			Reason: "10 lookups in a row failed; the last: timeout after 2s", Asked: true}},
	}
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	m := New(Config{Zones: []string{"ok.example", "bad.example", "flaky.example"}, Now: c.now,
		Lists: func() []serve.ZoneHealth { return lists },
		StoreSize: func(context.Context) (greylist.StoreStats, error) {
			return greylist.StoreStats{}, errors.New("not called")
		}})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body := func(path string) string {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if b := body("/metrics"); strings.Contains(b, "mxfront_greylist_store_records") {
		t.Error("store size exported before any count")
	}
	// As run records a good count, then a failed one.
	m.store.at, m.store.st = c.now(), greylist.StoreStats{Records: 1234, Bytes: 64 << 20}
	m.store.err = "store locked"
	b := body("/metrics")
	for _, want := range []string{
		`mxfront_dns_list_set_aside{zone="ok.example"} 0`, `mxfront_dns_list_healthy{zone="ok.example"} 1`,
		`mxfront_dns_list_set_aside{zone="bad.example"} 1`, `mxfront_dns_list_healthy{zone="bad.example"} 0`,
		`mxfront_dns_list_set_aside{zone="flaky.example"} 0`, `mxfront_dns_list_healthy{zone="flaky.example"} 0`,
		"mxfront_greylist_store_records 1234", "mxfront_greylist_store_bytes 6.7108864e+07",
	} {
		if !strings.Contains(b, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	p := body("/")
	for _, want := range []string{
		`data-health="ok.example">ok (checked 11:00:00)`,
		`data-health="bad.example">set aside since 2026-03-01 11:00:00 by health-check: refusing: 127.0.0.2 error answer 127.255.255.254<br><small>answers 127.255.255.254: this list refuses queries from your resolver</small>`,
		`data-health="flaky.example">failing (still asked) since 2026-03-01 11:00:00 by live-failures: 10 lookups in a row failed; the last: timeout after 2s`,
		`Store: 1234 networks, 64 MiB (counted 12:00:00); the last count failed: store locked`,
	} {
		if !strings.Contains(p, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// run counts at once, and stops with its context.
func TestStoreSizeRun(t *testing.T) {
	calls := make(chan struct{}, 1)
	s := &storeSize{count: func(context.Context) (greylist.StoreStats, error) {
		defer func() { calls <- struct{}{} }()
		return greylist.StoreStats{Records: 5, Bytes: 100}, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.run(ctx, time.Now); close(done) }()
	<-calls
	deadline := time.Now().Add(30 * time.Second)
	for {
		if at, st, _ := s.get(); !at.IsZero() {
			if st.Records != 5 {
				t.Errorf("count %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no count after 30s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}
