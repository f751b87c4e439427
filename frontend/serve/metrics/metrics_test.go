package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mxfront/mxfront/dnsbl"
	mxexec "github.com/mxfront/mxfront/exec"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/frontend/serve"
	"github.com/mxfront/mxfront/greylist"
)

// clock is a settable time for the windows.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func newTest(zones ...string) (*Metrics, *clock) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	m := New(Config{Version: "1.2.3-test", Zones: zones, Now: c.now,
		Stats: func() serve.Stats { return serve.Stats{Conns: 7, Refusing: 3, Children: 2} }})
	return m, c
}

func client(ip string) frontend.Client {
	return frontend.Client{Remote: netip.AddrPortFrom(netip.MustParseAddr(ip), 40000)}
}

func refused(by frontend.Check, ip, helo string, code int, reason string) frontend.Ending {
	return frontend.Ending{Outcome: frontend.OutcomeRefused, Client: client(ip),
		Verdict:    frontend.Verdict{Action: frontend.Refuse, By: by, Reply: frontend.Reply{Code: code}, Reasons: []string{reason}},
		Transcript: &frontend.Transcript{HELO: helo}}
}

func conns(m *Metrics, outcome, by string) float64 {
	return testutil.ToFloat64(m.connsVec.WithLabelValues(outcome, by))
}

// Each connection counts once under its outcome and what decided it: the
// check for a refusal or a trust, the limit for a client turned away.
func TestCountsConnectionsByOutcome(t *testing.T) {
	m, _ := newTest()
	ends := []frontend.Ending{
		{Outcome: frontend.OutcomePassed, Client: client("192.0.2.1")},
		{Outcome: frontend.OutcomePassed, Client: client("192.0.2.2")},
		{Outcome: frontend.OutcomeTrusted, Client: client("192.0.2.3"), Verdict: frontend.Verdict{Action: frontend.Trusted, By: frontend.ByAllowList}},
		refused(frontend.ByDenyList, "192.0.2.4", "a.example", 554, "deny list"),
		refused(frontend.ByDenyList, "192.0.2.5", "b.example", 554, "deny list"),
		refused(frontend.ByGreylist, "192.0.2.6", "c.example", 451, "greylisted"),
		refused(frontend.ByEarlyTalker, "192.0.2.7", "", 554, "early talker"),
		refused(frontend.ByDNSLists, "192.0.2.8", "d.example", 554, "bl.test"),
		{Outcome: frontend.OutcomeHungUp, Client: client("192.0.2.9")},
		{Outcome: frontend.OutcomeBusy, Why: "max-conns-per-ip", Client: client("192.0.2.10")},
		{Outcome: frontend.OutcomeBusy, Why: "a-new-limit", Client: client("192.0.2.11")},
		{Outcome: frontend.OutcomeFailed, Client: client("192.0.2.12")},
	}
	for _, e := range ends {
		m.Ended(e)
	}
	for _, w := range []struct {
		outcome, by string
		n           float64
	}{
		{"passed", "", 2}, {"trusted", "allow-list", 1}, {"refused", "deny-list", 2}, {"refused", "greylist", 1},
		{"refused", "early-talker", 1}, {"refused", "dns-lists", 1}, {"refused", "helo", 0}, {"hung-up", "", 1},
		{"rejected", "max-conns-per-ip", 1}, {"rejected", "a-new-limit", 1}, {"rejected", "max-conns", 0}, {"failed", "", 1},
	} {
		if got := conns(m, w.outcome, w.by); got != w.n {
			t.Errorf("connections{outcome=%q,by=%q} = %v, want %v", w.outcome, w.by, got, w.n)
		}
	}
	got := m.recent.list()
	if len(got) != 7 || got[0].by != "a-new-limit" || got[1].by != "max-conns-per-ip" || got[6].ip.String() != "192.0.2.4" {
		t.Fatalf("recent refusals: %d, newest %+v", len(got), got[0])
	}
	if got[2].helo != "d.example" || got[2].code != 554 || got[2].reasons[0] != "bl.test" {
		t.Errorf("a DNS-listed refusal kept as %+v", got[2])
	}
}

// DNS lookups count once per zone name (entries of one zone share the
// query), by result; cached answers count but are not timed; a zone not
// in the configuration is not counted.
func TestCountsDNSLookups(t *testing.T) {
	m, _ := newTest("bl.test", "bl.test", "err.test", "slow.test", "wl.test")
	r := &dnsbl.Result{Zones: []dnsbl.ZoneResult{
		{Zone: dnsbl.Zone{Name: "bl.test"}, Duration: 3 * time.Millisecond},
		{Zone: dnsbl.Zone{Name: "bl.test"}, Listed: true, Duration: 3 * time.Millisecond},
		{Zone: dnsbl.Zone{Name: "err.test"}, Duration: 2 * time.Millisecond, Err: &dnsbl.Error{Zone: "err.test", Cause: dnsbl.ErrorCode}},
		{Zone: dnsbl.Zone{Name: "slow.test"}, Duration: 2 * time.Second, Err: &dnsbl.Error{Zone: "slow.test", Cause: dnsbl.Timeout}},
		{Zone: dnsbl.Zone{Name: "wl.test"}, Cached: true},
		{Zone: dnsbl.Zone{Name: "unknown.test"}, Listed: true},
	}}
	m.Decided(client("192.0.2.1"), frontend.Verdict{DNS: r})
	m.Decided(client("192.0.2.2"), frontend.Verdict{DNS: r})
	for _, w := range []struct {
		zone   string
		result int
		n      float64
	}{
		{"bl.test", rListed, 2}, {"bl.test", rNotListed, 0}, {"err.test", rErrorAnswer, 2}, {"slow.test", rTimeout, 2},
		{"wl.test", rNotListed, 2},
	} {
		z := m.zones[m.zoneIndex[w.zone]]
		if got := testutil.ToFloat64(z.results[w.result]); got != w.n {
			t.Errorf("dns_lookups{zone=%q,result=%q} = %v, want %v", w.zone, dnsResultNames[w.result], got, w.n)
		}
	}
	if len(m.zones) != 4 {
		t.Errorf("%d zones, want 4 (bl.test once)", len(m.zones))
	}
	out := scrape(t, m)
	for _, want := range []string{
		`mxfront_dns_lookup_duration_seconds_count{zone="bl.test"} 2`,
		`mxfront_dns_lookup_duration_seconds_count{zone="wl.test"} 0`,
		`mxfront_dns_lookup_duration_seconds_bucket{zone="slow.test",le="1"} 0`,
		`mxfront_dns_lookup_duration_seconds_bucket{zone="slow.test",le="2"} 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(out, "unknown.test") {
		t.Error("a zone not configured got a series")
	}
	d := m.pageData(m.now())
	if z := d.Zones[0]; z.Name != "bl.test" || z.Lookups != [2]uint64{2, 2} || z.Listed != [2]uint64{2, 2} || z.Latency[1] != "3ms" {
		t.Errorf("page's bl.test row: %+v", z)
	}
	if z := d.Zones[2]; z.Timeouts != [2]uint64{2, 2} || z.Fails != [2]uint64{0, 0} {
		t.Errorf("page's slow.test row: %+v", z)
	}
	if z := d.Zones[1]; z.Fails != [2]uint64{2, 2} {
		t.Errorf("page's err.test row: %+v", z)
	}
}

func TestCountsGreylistRepliesExits(t *testing.T) {
	m, _ := newTest()
	for _, g := range []frontend.GreylistResult{
		{State: frontend.GreylistRefused, Store: greylist.New}, {State: frontend.GreylistRefused, Store: greylist.New},
		{State: frontend.GreylistRefused, Store: greylist.Early}, {State: frontend.GreylistSkipped},
		{State: frontend.GreylistError}, {State: frontend.GreylistRetry}, {State: frontend.GreylistPassed}, {State: frontend.GreylistNone},
	} {
		m.Decided(client("192.0.2.1"), frontend.Verdict{Greylist: g})
	}
	for s, n := range map[int]float64{gNew: 2, gEarly: 1, gSkipped: 1, gError: 1, gRetry: 1, gPassed: 1, gLapsed: 0} {
		if got := testutil.ToFloat64(m.grey[s]); got != n {
			t.Errorf("greylist{state=%q} = %v, want %v", greyNames[s], got, n)
		}
	}
	if got := testutil.ToFloat64(m.storeErrs); got != 1 {
		t.Errorf("store errors %v", got)
	}
	for _, code := range []int{554, 554, 451, 250, 999, 42} {
		m.Replied(frontend.Reply{Code: code})
	}
	for label, n := range map[string]float64{"554": 2, "451": 1, "250": 1, "other": 2} {
		if got := testutil.ToFloat64(m.repliesVec.WithLabelValues(label)); got != n {
			t.Errorf("replies{code=%s} = %v, want %v", label, got, n)
		}
	}
	for _, ws := range []syscall.WaitStatus{0, 1 << 8, 111 << 8, 42 << 8, 77 << 8, syscall.WaitStatus(syscall.SIGKILL)} {
		m.ChildExited(mxexec.Status(ws), time.Second)
	}
	for b, n := range map[int]float64{eZero: 1, eOne: 1, e111: 1, e100: 0, eOther: 2, eSignal: 1} {
		if got := testutil.ToFloat64(m.exits[b]); got != n {
			t.Errorf("exits{status=%s} = %v, want %v", exitNames[b], got, n)
		}
	}
	m.Reloaded(nil)
	m.Reloaded(fmt.Errorf("deny file: line 3: bad network"))
	if ok, failed := testutil.ToFloat64(m.reloads[0]), testutil.ToFloat64(m.reloads[1]); ok != 1 || failed != 1 {
		t.Errorf("reloads ok %v failed %v", ok, failed)
	}
	out := scrape(t, m)
	for _, want := range []string{"mxfront_connections_open 7", "mxfront_refusal_dialogues_open 3", "mxfront_children_running 2",
		`mxfront_build_info{goversion="go`, `version="1.2.3-test"} 1`} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Label values stay bounded whatever serve reports, and no address ever
// becomes one.
func TestLabelsBounded(t *testing.T) {
	m, _ := newTest()
	for i := 0; i < 500; i++ {
		m.Ended(frontend.Ending{Outcome: frontend.OutcomeBusy, Why: fmt.Sprintf("limit-%d", i), Client: client("198.51.100.7")})
		m.Ended(frontend.Ending{Outcome: frontend.Outcome(200), Client: client("198.51.100.7")})
		m.Ended(refused(frontend.Check(200), "198.51.100.7", "h", 554, "x"))
	}
	if len(m.cats) > maxCategories {
		t.Errorf("%d categories, bound %d", len(m.cats), maxCategories)
	}
	if n := testutil.CollectAndCount(m.connsVec); n > maxCategories {
		t.Errorf("%d connection series", n)
	}
	if got := conns(m, "rejected", "other"); got == 0 {
		t.Error("no rejected/other series for the limits past the bound")
	}
	if out := scrape(t, m); strings.Contains(out, "198.51.100.7") {
		t.Error("an address is in /metrics")
	}
	var total uint64
	for _, c := range m.cats {
		total += m.counts[c.idx].Load()
	}
	if total != 1500 {
		t.Errorf("%d connections counted, want 1500", total)
	}
}

// The windows: a count over the last minute, hour or day starts from the
// newest snapshot at least that old, or from the start.
func TestWindows(t *testing.T) {
	m, c := newTest()
	deny := refused(frontend.ByDenyList, "192.0.2.4", "a.example", 554, "deny list")
	refusals := func() [4]uint64 {
		d := m.pageData(c.now())
		for _, r := range d.Rows {
			if r.Key == "refused/deny-list" {
				return r.Counts
			}
		}
		return [4]uint64{}
	}
	m.Ended(deny)
	m.Ended(deny)
	m.tick(c.add(time.Minute))
	if got := refusals(); got != [4]uint64{2, 2, 2, 2} {
		t.Fatalf("after a minute: %v", got)
	}
	m.Ended(deny)
	c.add(90 * time.Second) // 2m30s: the last minute starts at the 1m snapshot
	if got := refusals(); got != [4]uint64{1, 3, 3, 3} {
		t.Fatalf("at 2m30s: %v", got)
	}
	// One refusal a minute for three hours.
	for i := 0; i < 180; i++ {
		m.Ended(deny)
		m.tick(c.add(time.Minute))
	}
	// Just after a snapshot: the last minute holds the one before it, the
	// hour 60 of them, the day all 183 (less than a day has passed).
	if got := refusals(); got != [4]uint64{1, 60, 183, 183} {
		t.Fatalf("after three hours: %v", got)
	}
	// A quiet day and a half later, with snapshots all along.
	for i := 0; i < 36*60; i++ {
		m.tick(c.add(time.Minute))
	}
	if got := refusals(); got != [4]uint64{0, 0, 0, 183} {
		t.Fatalf("after a quiet day: %v", got)
	}
	if n := m.windows.minutes.n; n != minuteSnapshots {
		t.Errorf("%d minute snapshots kept", n)
	}
	if n := m.windows.hours.n; n != hourSnapshots {
		t.Errorf("%d hour snapshots kept", n)
	}
}

// A refusal stored late (numbered, then delayed while recentRefusals more
// were added) does not overwrite the newer one in its slot.
func TestRecentRefusalStoredLate(t *testing.T) {
	var r recent
	late := &refusal{by: "late", seq: r.next.Add(1)}
	for range recentRefusals {
		r.add(&refusal{by: "x"})
	}
	r.put(late)
	got := r.list()
	if len(got) != recentRefusals || got[0].seq != recentRefusals+1 || got[len(got)-1].seq != 2 {
		t.Fatalf("%d kept, newest %d, oldest %d", len(got), got[0].seq, got[len(got)-1].seq)
	}
	for _, x := range got {
		if x == late {
			t.Fatal("the late refusal overwrote a newer one")
		}
	}
}

// The ring of recent refusals keeps the last 50, newest first, written
// from many goroutines at once.
func TestRecentRefusals(t *testing.T) {
	var r recent
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				r.add(&refusal{by: "x"})
				_ = r.list()
			}
		}()
	}
	wg.Wait()
	got := r.list()
	if len(got) != recentRefusals {
		t.Fatalf("%d kept", len(got))
	}
	for i, x := range got {
		if x.seq != uint64(800-i) {
			t.Fatalf("refusal %d has number %d, want %d", i, x.seq, 800-i)
		}
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body, _ := get(t, srv.URL+"/metrics")
	return body
}

func get(t *testing.T, url string) (string, *http.Response) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp
}

// The page escapes what came from the network, loads nothing from
// elsewhere, and /healthz follows SetAccepting.
func TestHandler(t *testing.T) {
	m, _ := newTest("bl.test")
	m.Ended(refused(frontend.ByDenyList, "192.0.2.4", `<script>alert("x")</script>`, 554, `deny list 192.0.2.0/24: <b>go away</b>`))
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body, resp := get(t, srv.URL+"/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "<b>go") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("page does not escape what clients sent:\n%s", body)
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Error("no Content-Security-Policy")
	}
	for _, s := range []string{"src=", "href=", "@import", "url("} {
		if strings.Contains(body, s) {
			t.Errorf("page refers to something else: %s", s)
		}
	}
	for _, want := range []string{"1.2.3-test", `data-row="refused/deny-list"`, "192.0.2.4", `data-zone="bl.test"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if _, resp := get(t, srv.URL+"/healthz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/healthz before accepting: %s", resp.Status)
	}
	m.SetAccepting(true)
	if body, resp := get(t, srv.URL+"/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("/healthz accepting: %s %q", resp.Status, body)
	}
	if _, resp := get(t, srv.URL+"/nothing"); resp.StatusCode != 404 {
		t.Errorf("/nothing: %s", resp.Status)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	om, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(om.Body)
	om.Body.Close()
	if !strings.HasPrefix(om.Header.Get("Content-Type"), "application/openmetrics-text") || !strings.HasSuffix(string(b), "# EOF\n") {
		t.Errorf("OpenMetrics: %s, ends %q", om.Header.Get("Content-Type"), string(b[max(0, len(b)-20):]))
	}
}

// The metrics pass Prometheus's own lint (names, help, units).
func TestLint(t *testing.T) {
	m, _ := newTest("bl.test")
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "mxfront_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// BenchmarkRefusal is the observer's cost of one refused connection: the
// verdict with two DNS lists, five replies, the ending.
func BenchmarkRefusal(b *testing.B) {
	m, _ := newTest("bl.test", "wl.test")
	m.now = time.Now
	r := &dnsbl.Result{Zones: []dnsbl.ZoneResult{
		{Zone: dnsbl.Zone{Name: "bl.test"}, Listed: true, Duration: 3 * time.Millisecond},
		{Zone: dnsbl.Zone{Name: "wl.test"}, Duration: 2 * time.Millisecond},
	}}
	e := refused(frontend.ByDNSLists, "192.0.2.4", "a.example", 554, "bl.test")
	e.Verdict.DNS = r
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Decided(e.Client, e.Verdict)
			for _, c := range []int{220, 250, 250, 554, 221} {
				m.Replied(frontend.Reply{Code: c})
			}
			m.Ended(e)
		}
	})
}
