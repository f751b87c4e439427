package dnsbl

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// changes records what Watch.Changed was told.
type changes struct {
	mu  sync.Mutex
	got []string // "aside ZONE BY" or "back ZONE"
}

func (c *changes) changed(a Aside, back bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if back {
		c.got = append(c.got, "back "+a.Zone)
		return
	}
	c.got = append(c.got, "aside "+a.Zone+" "+a.By.String())
}

func (c *changes) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.got, ", ")
}

func (s *listServer) setRule(name string, r rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules[dns.Fqdn(name)] = r
}

// A zone set aside is not asked, and counts as neither listed nor failed,
// whatever it would answer; restored, it is asked again.
func TestSetAsideSkipsTheZone(t *testing.T) {
	srv := startServer(t, map[string]rule{
		"2.0.0.127.bl.test": {a: []string{"127.0.0.2"}},
		"2.0.0.127.ok.test": {a: []string{"127.0.0.2"}},
	})
	c := newChecker(t, Config{Zones: zones(t, "bl.test", "ok.test*2"), Servers: []string{srv.Addr}, Timeout: time.Second})
	var ch changes
	c.Watch(Watch{Changed: ch.changed})
	if !c.SetAside(Aside{Zone: "bl.test", By: ByHealthCheck, Reason: "refusing: test"}) {
		t.Fatal("SetAside: no change")
	}
	if c.SetAside(Aside{Zone: "bl.test", By: ByLiveFailures}) || c.SetAside(Aside{Zone: "other.test"}) {
		t.Error("SetAside of a zone already aside, or not configured: a change")
	}
	r := check(t, c, listedIP)
	z := r.Zones[0]
	if z.Aside == nil || z.Aside.Reason != "refusing: test" || z.Listed || z.Err != nil || r.Failed() || r.Score != 2 {
		t.Fatalf("set aside: %+v; score %d failed %v", z, r.Score, r.Failed())
	}
	if n := srv.queries("2.0.0.127.bl.test."); n != 0 {
		t.Errorf("bl.test asked %d times while set aside", n)
	}
	if as := c.Asides(); len(as) != 1 || as[0].Zone != "bl.test" || as[0].Since.IsZero() {
		t.Errorf("Asides() = %+v", as)
	}
	if !c.Restore("bl.test") || c.Restore("bl.test") || c.Restore("ok.test") {
		t.Error("Restore: wrong changes")
	}
	if r := check(t, c, listedIP); r.Score != 3 || r.Zones[0].Aside != nil {
		t.Errorf("restored: score %d, %+v", r.Score, r.Zones[0])
	}
	if got, want := ch.String(), "aside bl.test health-check, back bl.test"; got != want {
		t.Errorf("changes %q, want %q", got, want)
	}
	// Every zone aside: nothing to ask, the Check returns at once.
	c.SetAside(Aside{Zone: "bl.test"})
	c.SetAside(Aside{Zone: "ok.test"})
	start := time.Now()
	if r := check(t, c, listedIP); r.Score != 0 || r.Failed() || time.Since(start) > 500*time.Millisecond {
		t.Errorf("all aside: score %d failed %v after %v", r.Score, r.Failed(), time.Since(start))
	}
}

// Failures lookups in a row failed by the zone set it aside, once; a good
// answer in between starts the count again; a set-aside zone comes back
// only by Restore.
func TestLiveFailuresSetAside(t *testing.T) {
	srv := startServer(t, map[string]rule{
		"flaky.test": {rcode: dns.RcodeServerFailure},
		"ok.test":    {rcode: dns.RcodeNameError},
	})
	c := newChecker(t, Config{Zones: zones(t, "flaky.test", "ok.test"), Servers: []string{srv.Addr}, Timeout: time.Second})
	var ch changes
	c.Watch(Watch{Failures: 3, Changed: ch.changed})
	check(t, c, cleanIP)
	check(t, c, cleanIP)
	srv.setRule("flaky.test", rule{rcode: dns.RcodeNameError})
	check(t, c, cleanIP) // good: the count starts again
	srv.setRule("flaky.test", rule{rcode: dns.RcodeServerFailure})
	check(t, c, cleanIP)
	check(t, c, cleanIP)
	if s := ch.String(); s != "" {
		t.Fatalf("set aside after 2 failures in a row: %s", s)
	}
	r := check(t, c, cleanIP)
	if r.Zones[0].Err == nil {
		t.Fatal("the third failure is not in the result")
	}
	as := c.Asides()
	if s := ch.String(); s != "aside flaky.test live-failures" || len(as) != 1 {
		t.Fatalf("after 3 failures in a row: %q %+v", s, as)
	}
	if !strings.Contains(as[0].Reason, "3 lookups in a row failed; the last: SERVFAIL") || !strings.Contains(as[0].Hint, "SERVFAIL") {
		t.Errorf("aside %+v", as[0])
	}
	asked := srv.queries("1.0.0.127.flaky.test.")
	srv.setRule("flaky.test", rule{rcode: dns.RcodeNameError})
	for range 5 {
		if r := check(t, c, cleanIP); r.Zones[0].Aside == nil || r.Failed() {
			t.Fatalf("not kept aside: %+v", r.Zones[0])
		}
	}
	if n := srv.queries("1.0.0.127.flaky.test."); n != asked {
		t.Errorf("asked %d times while aside", n-asked)
	}
	c.Restore("flaky.test")
	if r := check(t, c, cleanIP); r.Zones[0].Aside != nil || r.Failed() {
		t.Errorf("restored: %+v", r.Zones[0])
	}
}

// With LogOnly the zone is reported once and still asked.
func TestLiveFailuresLogOnly(t *testing.T) {
	srv := startServer(t, map[string]rule{"public.test": {a: []string{"127.255.255.254"}}})
	c := newChecker(t, Config{Zones: zones(t, "public.test"), Servers: []string{srv.Addr}, Timeout: time.Second})
	var ch changes
	c.Watch(Watch{Failures: 2, LogOnly: true, Changed: ch.changed})
	for range 4 {
		if r := check(t, c, cleanIP); r.Zones[0].Aside != nil || r.Zones[0].Err == nil {
			t.Fatalf("log only: %+v", r.Zones[0])
		}
	}
	as := c.Asides()
	if s := ch.String(); s != "aside public.test live-failures" || len(as) != 1 || !as[0].Asked {
		t.Fatalf("changes %q, asides %+v", s, as)
	}
	if h := as[0].Hint; !strings.Contains(h, "answers 127.255.255.254: this list refuses queries from your resolver") ||
		!strings.Contains(h, "use a local resolver") {
		t.Errorf("hint %q", h)
	}
	// A state file's word is not the watch's: it sets aside even so.
	c2 := newChecker(t, Config{Zones: zones(t, "public.test"), Servers: []string{srv.Addr}, Timeout: time.Second})
	c2.Watch(Watch{LogOnly: true})
	c2.SetAside(Aside{Zone: "public.test", By: ByStateFile})
	if r := check(t, c2, cleanIP); r.Zones[0].Aside == nil {
		t.Error("state file aside not skipped under LogOnly")
	}
}

// Only the zone's failures count: not our own resources, nor a client
// address that cannot be asked about.
func TestZoneFault(t *testing.T) {
	for c, want := range map[Cause]bool{Timeout: true, ServFail: true, Refused: true, ErrorCode: true,
		BadAnswer: true, Unreadable: true, Exhausted: false, Broken: false} {
		if zoneFault(c) != want {
			t.Errorf("zoneFault(%v) = %v", c, !want)
		}
	}
}

// The health check's hint says plainly what to do.
func TestHealthHints(t *testing.T) {
	srv := startServer(t, map[string]rule{
		"2.0.0.127.ok.test":     {a: []string{"127.0.0.2"}},
		"public.test":           {a: []string{"127.255.255.254"}},
		"all.test":              {a: []string{"127.0.0.2"}},
		"2.0.0.127.nolist.test": {rcode: dns.RcodeNameError},
		"refused.test":          {rcode: dns.RcodeRefused},
	})
	c := newChecker(t, Config{Zones: zones(t, "ok.test", "public.test", "all.test", "nolist.test", "refused.test"),
		Servers: []string{srv.Addr}, Timeout: time.Second})
	want := []string{"", "answers 127.255.255.254: this list refuses queries from your resolver",
		"127.0.0.1 is listed: the list answers every address", "127.0.0.2 is not listed", "REFUSED"}
	for i, h := range c.Health(context.Background()) {
		if want[i] == "" && h.Hint != "" || !strings.Contains(h.Hint, want[i]) {
			t.Errorf("%s (%v): hint %q, want %q", h.Zone, h.Status, h.Hint, want[i])
		}
		if !strings.HasPrefix(h.Reason(), h.Status.String()+": 127.0.0.2 ") {
			t.Errorf("%s: reason %q", h.Zone, h.Reason())
		}
	}
}

func TestStateText(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	st := State{Checked: at, Aside: []Aside{
		{Zone: "bl.example", Since: at.Add(-time.Hour), Reason: "refusing: 127.0.0.2 error answer 127.255.255.254\nnext"},
		{Zone: "dead.example", Since: at},
	}}
	text := string(st.AppendText(nil))
	want := "checked 2025-06-01T12:00:00Z\n" +
		"aside bl.example 2025-06-01T11:00:00Z refusing: 127.0.0.2 error answer 127.255.255.254 next\n" +
		"aside dead.example 2025-06-01T12:00:00Z\n"
	if !strings.HasPrefix(text, "# ") || !strings.HasSuffix(text, want) {
		t.Fatalf("text:\n%s", text)
	}
	got, err := ParseState([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Checked.Equal(at) || len(got.Aside) != 2 || got.Aside[0].Zone != "bl.example" || got.Aside[0].By != ByStateFile ||
		!got.Aside[0].Since.Equal(at.Add(-time.Hour)) || got.Aside[1].Reason != "" {
		t.Errorf("parsed %+v", got)
	}
	for _, bad := range []string{
		"", "# only a comment\n", "checked yesterday\n", "checked 2025-06-01T12:00:00Z\nwhatever\n",
		"checked 2025-06-01T12:00:00Z\naside\n", "checked 2025-06-01T12:00:00Z\naside bad..zone 2025-06-01T12:00:00Z\n",
		"checked 2025-06-01T12:00:00Z\naside bl.example noon\n",
		"checked 2025-06-01T12:00:00Z\naside bl.example 2025-06-01T12:00:00Z " + strings.Repeat("x", maxStateLine) + "\n",
	} {
		if _, err := ParseState([]byte(bad)); err == nil {
			t.Errorf("ParseState(%q): no error", bad)
		}
	}
}

func FuzzParseState(f *testing.F) {
	f.Add([]byte("checked 2025-06-01T12:00:00Z\naside bl.example 2025-06-01T11:00:00Z refusing: x\n"))
	f.Add([]byte("# c\r\nchecked 2025-06-01T12:00:00+02:00\r\n"))
	f.Add([]byte("checked 2025-06-01T12:00:00.5Z\naside a.b 9999-12-31T23:59:59.999-23:59 r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseState(b)
		if err != nil {
			return
		}
		// What was read writes back to text that reads the same.
		again, err := ParseState(st.AppendText(nil))
		if err != nil || !again.Checked.Equal(st.Checked) || len(again.Aside) != len(st.Aside) {
			t.Fatalf("round trip of %q: %+v %v", b, again, err)
		}
		for i, a := range again.Aside {
			if a.Zone != st.Aside[i].Zone || a.Reason != st.Aside[i].Reason {
				t.Fatalf("round trip of %q: %+v, was %+v", b, a, st.Aside[i])
			}
		}
	})
}

// A Check its caller cut short (serve's stop cancels the lookups in
// flight) ends with timeouts that say nothing of the zone: they do not
// count towards Watch.Failures.
func TestCancelledChecksAreNotLiveFailures(t *testing.T) {
	srv := startServer(t, map[string]rule{"slow.test": {silent: true}})
	c := newChecker(t, Config{Zones: zones(t, "slow.test"), Servers: []string{srv.Addr}, Timeout: 5 * time.Second, Poller: true})
	var ch changes
	c.Watch(Watch{Failures: 1, Changed: ch.changed})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if r := c.Check(ctx, cleanIP); r.Zones[0].Err == nil {
		t.Fatalf("a cancelled Check: %+v", r.Zones[0])
	}
	if s := ch.String(); s != "" || len(c.Asides()) != 0 {
		t.Fatalf("a cancelled Check set the zone aside: %s", s)
	}
}
