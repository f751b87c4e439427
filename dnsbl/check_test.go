package dnsbl

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var (
	listedIP = netip.MustParseAddr("127.0.0.2")
	cleanIP  = netip.MustParseAddr("127.0.0.1")
)

// zones parses specs; a "wl:" prefix makes an Allow zone.
func zones(t testing.TB, specs ...string) []Zone {
	t.Helper()
	var zs []Zone
	for _, s := range specs {
		kind := Block
		if rest, ok := strings.CutPrefix(s, "wl:"); ok {
			kind, s = Allow, rest
		}
		z, err := ParseZone(s, kind)
		if err != nil {
			t.Fatal(err)
		}
		zs = append(zs, z)
	}
	return zs
}

// withPoller makes newChecker's Checkers wait in Go's network poller (see
// TestPollLink); otherwise they wait in rawLink where there is one.
var withPoller bool

func newChecker(t testing.TB, cfg Config) *Checker {
	t.Helper()
	cfg.Poller = cfg.Poller || withPoller
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func check(t testing.TB, c *Checker, ip netip.Addr) *Result {
	t.Helper()
	return c.Check(context.Background(), ip)
}

func TestListedAndNotListed(t *testing.T) {
	srv := startServer(t, map[string]rule{
		"2.0.0.127.bl.test": {a: []string{"127.0.0.2"}, txt: []string{"Listed, see https://bl.test/?127.0.0.2"}},
	})
	c := newChecker(t, Config{Zones: zones(t, "bl.test"), Servers: []string{srv.Addr}})

	r := check(t, c, listedIP)
	z := r.Zones[0]
	if !z.Listed || z.Err != nil || r.Score != 1 || r.Failed() {
		t.Fatalf("listed IP: %+v", r)
	}
	if z.Query != "2.0.0.127.bl.test" || !slices.Equal(z.Answers, []netip.Addr{listedIP}) {
		t.Errorf("query %q answers %v", z.Query, z.Answers)
	}
	if z.TXT != "Listed, see https://bl.test/?127.0.0.2" || r.Text != z.TXT || r.TextZone != "bl.test" {
		t.Errorf("TXT %q, Text %q from %q", z.TXT, r.Text, r.TextZone)
	}
	if z.Duration <= 0 {
		t.Errorf("duration %v", z.Duration)
	}
	if got := r.BlockedBy(); !slices.Equal(got, []string{"bl.test"}) {
		t.Errorf("BlockedBy = %v", got)
	}
	if r.Outcome(1, -1) != Blocked || r.Outcome(2, -1) != Neutral {
		t.Errorf("Outcome(1,-1) = %v, Outcome(2,-1) = %v", r.Outcome(1, -1), r.Outcome(2, -1))
	}

	r = check(t, c, cleanIP)
	z = r.Zones[0]
	if z.Listed || z.Err != nil || r.Score != 0 || r.Text != "" || len(z.Answers) != 0 {
		t.Fatalf("clean IP: %+v", r)
	}
	if r.Outcome(1, -1) != Neutral || r.Outcome(0, 0) != Neutral {
		t.Errorf("clean IP outcome %v / %v", r.Outcome(1, -1), r.Outcome(0, 0))
	}
	// TXT is asked only when listed.
	if n := srv.queries("TXT", "1.0.0.127.bl.test."); n != 0 {
		t.Errorf("%d TXT queries for a clean IP", n)
	}
	if n := srv.queries("TXT", "2.0.0.127.bl.test."); n != 1 {
		t.Errorf("%d TXT queries for a listed IP, want 1", n)
	}
	if got := c.Stats(); !slices.Equal(got, []ZoneStats{{Zone: "bl.test", Queries: 2, Listings: 1}}) {
		t.Errorf("Stats = %+v", got)
	}
}

func TestFiltersAndWeights(t *testing.T) {
	srv := startServer(t, map[string]rule{
		"2.0.0.127.bl.test": {a: []string{"127.0.0.4", "127.0.0.10"}},
		"2.0.0.127.b2.test": {a: []string{"127.0.0.2"}},
	})
	tests := []struct {
		specs []string
		score int
		want  []bool // Listed, per entry
	}{
		{[]string{"bl.test"}, 1, []bool{true}},
		{[]string{"bl.test=127.0.0.4"}, 1, []bool{true}},
		{[]string{"bl.test=127.0.0.[2..3]*5"}, 0, []bool{false}},
		{[]string{"bl.test=127.0.0.[2..11]*3"}, 3, []bool{true}},
		{[]string{"bl.test=127.0.0.2;127.0.0.10*2"}, 2, []bool{true}},
		// One entry counts once however many answers match it; several
		// entries of one zone count each.
		{[]string{"bl.test=127.0.0.4*3", "bl.test=127.0.0.[2..11]", "bl.test=127.0.0.10*5", "bl.test=127.0.0.99*7"},
			9, []bool{true, true, true, false}},
		{[]string{"bl.test*2", "b2.test*3"}, 5, []bool{true, true}},
		{[]string{"bl.test*2", "wl:b2.test*3"}, -1, []bool{true, true}},
		{[]string{"bl.test*2", "wl:b2.test*-3"}, -1, []bool{true, true}},
		{[]string{"bl.test*2", "b2.test*-4"}, -2, []bool{true, true}},
		{[]string{"bl.test=127.0.0.99*2", "wl:b2.test=127.0.0.3"}, 0, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.specs, ","), func(t *testing.T) {
			before := srv.queries("A", "2.0.0.127.bl.test.")
			c := newChecker(t, Config{Zones: zones(t, tt.specs...), Servers: []string{srv.Addr}})
			r := check(t, c, listedIP)
			if r.Score != tt.score || r.Failed() {
				t.Errorf("score %d (failed %v), want %d", r.Score, r.Failed(), tt.score)
			}
			for i, z := range r.Zones {
				if z.Listed != tt.want[i] {
					t.Errorf("entry %s: listed %v, want %v", z.Zone, z.Listed, tt.want[i])
				}
			}
			if n := srv.queries("A", "2.0.0.127.bl.test.") - before; n != 1 {
				t.Errorf("bl.test asked %d times, want once", n)
			}
		})
	}
}

func TestOutcomeAndText(t *testing.T) {
	srv := startServer(t, map[string]rule{
		"2.0.0.127.b1.test": {a: []string{"127.0.0.2"}, txt: []string{"b1 says no"}},
		"2.0.0.127.b2.test": {a: []string{"127.0.0.2"}, txt: []string{"b2 says ", "no"}},
		"2.0.0.127.b3.test": {a: []string{"127.0.0.2"}},
		"2.0.0.127.w1.test": {a: []string{"127.0.0.2"}, txt: []string{"w1 vouches"}},
		"2.0.0.127.sw.test": {a: []string{"127.0.0.2"}},
	})
	run := func(replies map[string]string, specs ...string) *Result {
		t.Helper()
		c := newChecker(t, Config{Zones: zones(t, specs...), Servers: []string{srv.Addr}, Replies: replies})
		return check(t, c, listedIP)
	}

	r := run(nil, "b1.test*2", "b2.test*3", "b3.test")
	if r.Score != 6 || r.Text != "b2 says no" || r.TextZone != "b2.test" {
		t.Errorf("heaviest: score %d text %q from %s", r.Score, r.Text, r.TextZone)
	}
	if got := r.BlockedBy(); !slices.Equal(got, []string{"b1.test", "b2.test", "b3.test"}) {
		t.Errorf("BlockedBy %v", got)
	}
	// Ties go to the first configured.
	if r := run(nil, "b1.test*2", "b2.test*2"); r.TextZone != "b1.test" {
		t.Errorf("tie: text from %s", r.TextZone)
	}
	// No TXT: the generic text.
	if r := run(nil, "b3.test"); r.Text != "client [127.0.0.2] blocked using b3.test" {
		t.Errorf("generic text %q", r.Text)
	}
	// The configured reply wins over TXT, expanded and sanitised.
	r = run(map[string]string{"b2.test": "Go away %IP% (%ZONE%)\r\n250 OK"}, "b1.test*2", "b2.test*3")
	if r.Text != "Go away 127.0.0.2 (b2.test) 250 OK" {
		t.Errorf("reply text %q", r.Text)
	}

	// An allow list outweighs a block list.
	r = run(nil, "b1.test", "wl:w1.test*2")
	if r.Score != -1 || r.Outcome(1, -1) != Trusted {
		t.Errorf("allow: score %d outcome %v", r.Score, r.Outcome(1, -1))
	}
	if !slices.Equal(r.AllowedBy(), []string{"w1.test"}) || !slices.Equal(r.BlockedBy(), []string{"b1.test"}) {
		t.Errorf("AllowedBy %v BlockedBy %v", r.AllowedBy(), r.BlockedBy())
	}
	if r.Text != "b1 says no" {
		t.Errorf("text %q", r.Text)
	}
	if n := srv.queries("TXT", "2.0.0.127.w1.test."); n != 0 || r.Zones[1].TXT != "" {
		t.Errorf("an allow listing asked for TXT %d times", n)
	}
	// Postfix style: a block entry with a negative weight allows.
	r = run(nil, "b1.test*2", "sw.test*-4")
	if r.Score != -2 || !slices.Equal(r.AllowedBy(), []string{"sw.test"}) || r.Outcome(1, -1) != Trusted {
		t.Errorf("negative block weight: score %d allowed %v", r.Score, r.AllowedBy())
	}
	// Not enough allow weight: neutral.
	r = run(nil, "b1.test*2", "wl:w1.test*2")
	if r.Score != 0 || r.Outcome(1, -1) != Neutral {
		t.Errorf("balanced: score %d outcome %v", r.Score, r.Outcome(1, -1))
	}
	// A threshold of 0 judges nobody that no list mentions.
	r = run(nil, "b1.test*0")
	if r.Score != 0 || r.Outcome(0, 0) != Neutral || len(r.BlockedBy()) != 0 || r.Text != "" {
		t.Errorf("zero weight: score %d outcome %v blocked %v text %q", r.Score, r.Outcome(0, 0), r.BlockedBy(), r.Text)
	}
}

func TestErrorsAreNotListings(t *testing.T) {
	tests := []struct {
		name   string
		rule   rule
		cause  Cause
		detail string
	}{
		{"servfail", rule{rcode: dns.RcodeServerFailure}, ServFail, "SERVFAIL"},
		{"refused", rule{rcode: dns.RcodeRefused}, Refused, "REFUSED"},
		{"notimp", rule{rcode: dns.RcodeNotImplemented}, Broken, "answer code NOTIMP"},
		{"error code", rule{a: []string{"127.255.255.254"}}, ErrorCode, "error answer 127.255.255.254"},
		{"error code 252", rule{a: []string{"127.255.255.252"}}, ErrorCode, "error answer 127.255.255.252"},
		{"error among listings", rule{a: []string{"127.0.0.2", "127.255.255.254"}}, ErrorCode, "error answer 127.255.255.254"},
		{"outside 127/8", rule{a: []string{"192.0.2.80"}}, BadAnswer, "answer 192.0.2.80 outside 127.0.0.0/8"},
		{"zero", rule{a: []string{"0.0.0.0"}}, BadAnswer, "answer 0.0.0.0 outside 127.0.0.0/8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, map[string]rule{
				"2.0.0.127.bad.test": tt.rule,
				"2.0.0.127.ok.test":  {a: []string{"127.0.0.2"}},
			})
			c := newChecker(t, Config{Zones: zones(t, "bad.test*5", "ok.test"), Servers: []string{srv.Addr}})
			r := check(t, c, listedIP)
			bad, ok := r.Zones[0], r.Zones[1]
			if bad.Listed || bad.Err == nil || !r.Failed() {
				t.Fatalf("bad zone listed %v err %v failed %v", bad.Listed, bad.Err, r.Failed())
			}
			if bad.Err.Cause != tt.cause {
				t.Errorf("cause %v, want %v", bad.Err.Cause, tt.cause)
			}
			want := "dnsbl: bad.test: query 2.0.0.127.bad.test: " + tt.detail
			if bad.Err.Error() != want {
				t.Errorf("error %q, want %q", bad.Err, want)
			}
			if !ok.Listed || ok.Err != nil || r.Score != 1 || r.TextZone != "ok.test" {
				t.Errorf("the good zone: listed %v err %v score %d", ok.Listed, ok.Err, r.Score)
			}
			if errs := r.Errors(); len(errs) != 1 || errs[0] != bad.Err {
				t.Errorf("Errors() = %v", errs)
			}
			if tt.rule.a != nil && len(bad.Answers) == 0 {
				t.Error("the error answer is not reported")
			}
			if n := srv.queries("TXT"); n != 1 {
				t.Errorf("%d TXT queries, want 1 (for ok.test only)", n)
			}
			st := c.Stats()
			if st[0].Failures != 1 || st[0].Listings != 0 || st[1].Failures != 0 {
				t.Errorf("Stats %+v", st)
			}
		})
	}
}

// An answer that cannot be read or used is a failed lookup of its zone,
// never "not listed", even when it carries the listing: the zone is not
// listed, its Error says what was wrong (Unreadable), it counts as a
// failure, and the Result has Failed (so --dns-fail tempfail defers). An
// unusable datagram is not believed at once (it may be forged): the
// question waits for a better one, and ends with the datagram's fault
// when none comes. Each zone answers 127.0.0.2 in its broken way.
func TestUnreadableAnswersAreErrors(t *testing.T) {
	listing := []string{"127.0.0.2"}
	tests := []struct {
		name   string
		rule   rule
		detail string // the Error's Detail holds this
	}{
		{"TC over UDP and TCP", rule{a: listing, truncate: true, tcpTC: true}, "answer truncated (TC) over TCP too"},
		{"TC over UDP, TCP closed", rule{a: listing, truncate: true, tcpClose: true}, "closed without an answer"},
		{"TC over UDP, malformed over TCP", rule{a: listing, truncate: true, cut: 1}, "tcp 127.0.0.1:"},
		{"malformed", rule{a: listing, cut: 1}, "DNS message: record 2: header cut short"},
		{"class CH", rule{a: listing, class: dns.ClassCHAOS}, "A record of class 3, not IN"},
		{"another owner", rule{a: listing, owner: "x.bad.test."}, "A record for x.bad.test., not for 2.0.0.127.bad.test."},
		{"TXT for A", rule{a: listing, wrongType: true}, "TXT record in the answer to a question of type 1"},
		{"NXDOMAIN with records", rule{a: listing, nxRecords: true}, "NXDOMAIN answer with 1 A and 0 TXT records"},
		{"another question", rule{a: listing, qname: "2.0.0.127.other.test.", owner: "2.0.0.127.other.test."},
			"an answer to another question: 2.0.0.127.other.test. type 1 class 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, map[string]rule{
				"2.0.0.127.bad.test": tt.rule,
				"2.0.0.127.ok.test":  {a: listing},
			})
			c := newChecker(t, Config{Zones: zones(t, "bad.test*5", "ok.test"), Servers: []string{srv.Addr},
				Timeout: 2 * time.Second})
			r := check(t, c, listedIP)
			bad, ok := r.Zones[0], r.Zones[1]
			if bad.Listed || bad.Err == nil || !r.Failed() {
				t.Fatalf("listed %v, error %v, failed %v; want an error", bad.Listed, bad.Err, r.Failed())
			}
			if bad.Err.Cause != Unreadable || !strings.Contains(bad.Err.Detail, tt.detail) {
				t.Errorf("error %v (%v), want %v with %q", bad.Err, bad.Err.Cause, Unreadable, tt.detail)
			}
			if !strings.HasPrefix(bad.Err.Error(), "dnsbl: bad.test: query 2.0.0.127.bad.test: ") {
				t.Errorf("error %q", bad.Err)
			}
			if !ok.Listed || ok.Err != nil || r.Score != 1 || r.Outcome(1, -1) != Blocked {
				t.Errorf("the good zone: listed %v err %v score %d", ok.Listed, ok.Err, r.Score)
			}
			if st := c.Stats(); st[0].Failures != 1 || st[0].Listings != 0 || st[1].Failures != 0 {
				t.Errorf("Stats %+v", st)
			}
		})
	}
}

func TestDeadlineSharedAcrossZones(t *testing.T) {
	srv := startServer(t, map[string]rule{
		"s1.test": {silent: true},
		"s2.test": {silent: true},
		"s3.test": {a: []string{"127.0.0.2"}, delay: time.Second},
		"ok.test": {a: []string{"127.0.0.2"}},
	})
	c := newChecker(t, Config{Zones: zones(t, "s1.test", "s2.test", "s3.test", "ok.test"),
		Servers: []string{srv.Addr}, Timeout: 300 * time.Millisecond})
	start := time.Now()
	r := check(t, c, listedIP)
	// A hang guard only (the timeouts below show the deadline held, s3
	// answering after 1s); TestOneDeadlineForManyZones shows the sharing.
	if el := time.Since(start); el > 30*time.Second {
		t.Errorf("Check took %v with a 300ms deadline", el)
	}
	for _, z := range r.Zones[:3] {
		if z.Listed || z.Err == nil || z.Err.Cause != Timeout {
			t.Fatalf("%s: listed %v err %v", z.Zone.Name, z.Listed, z.Err)
		}
	}
	want := "dnsbl: s1.test: query 2.0.0.127.s1.test: timeout after 300ms"
	if got := r.Zones[0].Err.Error(); got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if !r.Zones[3].Listed || r.Score != 1 || !r.Failed() || len(r.Errors()) != 3 {
		t.Errorf("ok.test listed %v, score %d, failed %v, %d errors", r.Zones[3].Listed, r.Score, r.Failed(), len(r.Errors()))
	}

	// The caller's deadline, when sooner, is the one.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c = newChecker(t, Config{Zones: zones(t, "s1.test"), Servers: []string{srv.Addr}, Timeout: time.Minute})
	if r := c.Check(ctx, listedIP); r.Zones[0].Err == nil || r.Zones[0].Err.Cause != Timeout {
		t.Errorf("caller's deadline: %v", r.Zones[0].Err)
	}
}

// Twelve silent zones cost one deadline, not twelve: asked one after
// another they would take 12s. The bound is far from both, so that a
// loaded machine's scheduling delays (seconds, under -race beside another
// make test) do not fail it.
func TestOneDeadlineForManyZones(t *testing.T) {
	var specs []string
	for i := range 12 {
		specs = append(specs, fmt.Sprintf("s%d.test", i))
	}
	srv := startServer(t, map[string]rule{"test": {silent: true}})
	c := newChecker(t, Config{Zones: zones(t, specs...), Servers: []string{srv.Addr}, Timeout: time.Second})
	start := time.Now()
	r := check(t, c, listedIP)
	if el := time.Since(start); el > 6*time.Second {
		t.Errorf("12 silent zones took %v with a 1s deadline", el)
	}
	if len(r.Errors()) != 12 {
		t.Errorf("%d errors, want 12", len(r.Errors()))
	}
}

// Zones are asked in parallel: ten zones answering in 500ms each (A, then
// TXT) take about 1s so, and 10s one after another. The 5s deadline
// between them leaves seconds for a loaded machine (a 1.5s deadline for
// 0.5s of answers failed beside another make test).
func TestZonesInParallel(t *testing.T) {
	rules := map[string]rule{}
	var specs []string
	for i := range 10 {
		n := fmt.Sprintf("p%d", i+1)
		rules[n+".test"] = rule{a: []string{"127.0.0.2"}, txt: []string{n}, delay: 500 * time.Millisecond}
		specs = append(specs, n+".test")
	}
	srv := startServer(t, rules)
	c := newChecker(t, Config{Zones: zones(t, specs...), Servers: []string{srv.Addr},
		Timeout: 5 * time.Second, Try: 5 * time.Second})
	r := check(t, c, listedIP)
	if r.Score != 10 || r.Failed() {
		t.Fatalf("score %d, errors %v", r.Score, r.Errors())
	}
	for _, z := range r.Zones {
		if z.TXT != strings.TrimSuffix(z.Zone.Name, ".test") {
			t.Errorf("%s: TXT %q", z.Zone.Name, z.TXT)
		}
	}
}

func TestTruncatedAnswersRetriedOverTCP(t *testing.T) {
	long := []string{strings.Repeat("a", 255), strings.Repeat("b", 255), strings.Repeat("c", 255)}
	srv := startServer(t, map[string]rule{
		"2.0.0.127.tc.test":   {a: []string{"127.0.0.3"}, truncate: true},
		"2.0.0.127.long.test": {a: []string{"127.0.0.2"}, txt: long, txts: 3},
		// 300 A records, 4.8 kB, sent over UDP whatever was offered:
		// they do not fit the buffer, which cuts them.
		"2.0.0.127.big.test": {a: slices.Repeat([]string{"127.0.0.4"}, 300), wholeUDP: true},
	})
	c := newChecker(t, Config{Zones: zones(t, "tc.test", "long.test*2", "big.test"), Servers: []string{srv.Addr}})
	r := check(t, c, listedIP)
	if !r.Zones[0].Listed || !r.Zones[1].Listed || !r.Zones[2].Listed || r.Failed() {
		t.Fatalf("listed %v %v %v, errors %v", r.Zones[0].Listed, r.Zones[1].Listed, r.Zones[2].Listed, r.Errors())
	}
	for _, zone := range []string{"tc.test", "big.test"} {
		name := "2.0.0.127." + zone + "."
		if srv.queries("udp", "A", name) < 1 || srv.queries("tcp", "A", name) < 1 {
			t.Errorf("%s: not asked over UDP then TCP: %v", zone, srv.log)
		}
	}
	if n := len(r.Zones[2].Answers); n != 300 {
		t.Errorf("big.test: %d answers over TCP, want 300", n)
	}
	// 2.3 kB of TXT do not fit 1232 bytes: TCP, then bounded.
	if srv.queries("tcp", "TXT", "2.0.0.127.long.test.") < 1 {
		t.Errorf("long TXT not asked over TCP: %v", srv.log)
	}
	if txt := r.Zones[1].TXT; txt != strings.Repeat("a", 255)[:MaxText] || r.Text != txt {
		t.Errorf("long TXT: %d bytes %q, Text %q", len(txt), txt, r.Text)
	}
}

func TestHostileTXT(t *testing.T) {
	srv := startServer(t, map[string]rule{
		"2.0.0.127.evil.test": {a: []string{"127.0.0.2"},
			txt: []string{"Listed\r\n250 2.0.0 OK\r\n", "\x00nul \xff\xfe8bit \x1b[2J",
				// Presentation format: the list sends "quoted" \back\ on the wire.
				` "quoted" \\back\\ `}},
	})
	c := newChecker(t, Config{Zones: zones(t, "evil.test"), Servers: []string{srv.Addr}})
	r := check(t, c, listedIP)
	want := `Listed 250 2.0.0 OK ?nul ??8bit ?[2J "quoted" \back\`
	if r.Text != want || r.Zones[0].TXT != want {
		t.Errorf("TXT %q, want %q", r.Text, want)
	}
	for i := 0; i < len(r.Text); i++ {
		if r.Text[i] < 0x20 || r.Text[i] > 0x7e {
			t.Fatalf("byte %#x in %q", r.Text[i], r.Text)
		}
	}
}

func TestIPv6(t *testing.T) {
	six := "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test"
	srv := startServer(t, map[string]rule{
		six:                  {a: []string{"127.0.0.2"}, txt: []string{"v6 listed"}},
		"99.2.0.192.bl.test": {a: []string{"127.0.0.3"}},
	})
	c := newChecker(t, Config{Zones: zones(t, "bl.test"), Servers: []string{srv.Addr}})

	r := check(t, c, netip.MustParseAddr("2001:db8::1"))
	if !r.Zones[0].Listed || r.Zones[0].Query != six || r.Text != "v6 listed" {
		t.Errorf("IPv6: listed %v query %s text %q", r.Zones[0].Listed, r.Zones[0].Query, r.Text)
	}
	if r := check(t, c, netip.MustParseAddr("2001:db8::2")); r.Zones[0].Listed || r.Failed() {
		t.Errorf("other IPv6 listed %v err %v", r.Zones[0].Listed, r.Zones[0].Err)
	}
	r = check(t, c, netip.MustParseAddr("::ffff:192.0.2.99"))
	if !r.Zones[0].Listed || r.Zones[0].Query != "99.2.0.192.bl.test" || r.IP.String() != "192.0.2.99" {
		t.Errorf("IPv4-mapped: listed %v query %s ip %s", r.Zones[0].Listed, r.Zones[0].Query, r.IP)
	}
	r = check(t, c, netip.Addr{})
	if r.Zones[0].Listed || r.Zones[0].Err == nil || r.Zones[0].Err.Cause != Broken {
		t.Errorf("invalid address: %+v", r.Zones[0])
	}
}

func TestRetriesAcrossServers(t *testing.T) {
	good := startServer(t, map[string]rule{"2.0.0.127.bl.test": {a: []string{"127.0.0.2"}}})
	failing := startServer(t, map[string]rule{"bl.test": {rcode: dns.RcodeServerFailure}})
	tests := []struct {
		name    string
		servers []string
	}{
		{"first refuses connections", []string{deadServer(t), good.Addr}},
		{"first never answers", []string{blackhole(t), good.Addr}},
		{"first answers SERVFAIL", []string{failing.Addr, good.Addr}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChecker(t, Config{Zones: zones(t, "bl.test"), Servers: tt.servers,
				Timeout: 2 * time.Second, Try: 200 * time.Millisecond})
			r := check(t, c, listedIP)
			if !r.Zones[0].Listed || r.Failed() {
				t.Errorf("listed %v err %v", r.Zones[0].Listed, r.Zones[0].Err)
			}
		})
	}
	// Every server dead: a failure that says so, well within the deadline.
	c := newChecker(t, Config{Zones: zones(t, "bl.test"), Servers: []string{deadServer(t), deadServer(t)},
		Timeout: 2 * time.Second})
	r := check(t, c, listedIP)
	if e := r.Zones[0].Err; e == nil || e.Cause != Broken || !strings.Contains(e.Error(), "refused") {
		t.Errorf("dead servers: %v", e)
	}
	// A SERVFAIL is worth telling over a later timeout.
	c = newChecker(t, Config{Zones: zones(t, "bl.test"), Servers: []string{failing.Addr, blackhole(t)},
		Timeout: 500 * time.Millisecond, Try: 100 * time.Millisecond})
	if e := check(t, c, listedIP).Zones[0].Err; e == nil || e.Cause != ServFail {
		t.Errorf("servfail then silence: %v", e)
	}
}

func TestEDNSFormerrFallback(t *testing.T) {
	srv := startServer(t, map[string]rule{"2.0.0.127.old.test": {a: []string{"127.0.0.2"}, formerr: true}})
	c := newChecker(t, Config{Zones: zones(t, "old.test"), Servers: []string{srv.Addr}})
	if r := check(t, c, listedIP); !r.Zones[0].Listed || r.Failed() {
		t.Errorf("listed %v err %v", r.Zones[0].Listed, r.Zones[0].Err)
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestCache(t *testing.T) {
	srv := startServer(t, map[string]rule{
		"2.0.0.127.bl.test": {a: []string{"127.0.0.2"}, txt: []string{"listed"}, ttl: 60},
		"3.0.0.127.bl.test": {a: []string{"127.0.0.2"}, ttl: 3600},
		"bl.test":           {rcode: dns.RcodeNameError, soa: true, ttl: 30}, // negative TTL 30s
		"2.0.0.127.sf.test": {rcode: dns.RcodeServerFailure},
	})
	clk := &clock{time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	cache := NewCache(100, 10*time.Minute, clk.now)
	c := newChecker(t, Config{Zones: zones(t, "bl.test", "sf.test"), Servers: []string{srv.Addr}, Cache: cache})
	asked := func(name string) int { return srv.queries("A", name) }

	r := check(t, c, listedIP)
	if !r.Zones[0].Listed || r.Zones[0].Cached || r.Text != "listed" {
		t.Fatalf("first: %+v", r.Zones[0])
	}
	clk.t = clk.t.Add(59 * time.Second)
	r = check(t, c, listedIP)
	if !r.Zones[0].Listed || !r.Zones[0].Cached || r.Text != "listed" || asked("2.0.0.127.bl.test.") != 1 ||
		srv.queries("TXT") != 1 {
		t.Errorf("within TTL: cached %v text %q, asked A %d TXT %d times", r.Zones[0].Cached, r.Text,
			asked("2.0.0.127.bl.test."), srv.queries("TXT"))
	}
	clk.t = clk.t.Add(time.Second)
	if r = check(t, c, listedIP); r.Zones[0].Cached || asked("2.0.0.127.bl.test.") != 2 {
		t.Errorf("at TTL: cached %v, asked %d times", r.Zones[0].Cached, asked("2.0.0.127.bl.test."))
	}

	// A TTL above the cap is cut to it.
	ip3 := netip.MustParseAddr("127.0.0.3")
	check(t, c, ip3)
	clk.t = clk.t.Add(10*time.Minute - time.Second)
	check(t, c, ip3)
	if n := asked("3.0.0.127.bl.test."); n != 1 {
		t.Errorf("before the cap: asked %d times", n)
	}
	clk.t = clk.t.Add(time.Second)
	check(t, c, ip3)
	if n := asked("3.0.0.127.bl.test."); n != 2 {
		t.Errorf("at the cap: asked %d times", n)
	}

	// NXDOMAIN is kept for the SOA's negative TTL.
	check(t, c, cleanIP)
	clk.t = clk.t.Add(29 * time.Second)
	if r := check(t, c, cleanIP); r.Zones[0].Listed || !r.Zones[0].Cached {
		t.Errorf("negative: listed %v cached %v", r.Zones[0].Listed, r.Zones[0].Cached)
	}
	clk.t = clk.t.Add(time.Second)
	check(t, c, cleanIP)
	if n := asked("1.0.0.127.bl.test."); n != 2 {
		t.Errorf("negative answer asked %d times, want 2", n)
	}

	// Errors are not cached.
	if n := asked("2.0.0.127.sf.test."); n < 9 {
		t.Errorf("SERVFAIL asked %d times over 9 checks", n)
	}
}

func TestCacheBounded(t *testing.T) {
	clk := &clock{time.Unix(0, 0)}
	c := NewCache(2, time.Hour, clk.now)
	k := func(s string) cacheKey { return cacheKey{s, dns.TypeA} }
	a := []netip.Addr{listedIP}
	c.put(k("a"), cacheEntry{addrs: a}, 60)
	c.put(k("b"), cacheEntry{addrs: a}, 60)
	c.get(k("a")) // b is now the least recently used
	c.put(k("c"), cacheEntry{addrs: a}, 60)
	if c.Len() != 2 {
		t.Errorf("Len %d", c.Len())
	}
	if _, ok := c.get(k("b")); ok {
		t.Error("b survived")
	}
	for _, s := range []string{"a", "c"} {
		if _, ok := c.get(k(s)); !ok {
			t.Errorf("%s evicted", s)
		}
	}
	c.put(k("zero"), cacheEntry{}, 0)
	if _, ok := c.get(k("zero")); ok {
		t.Error("a zero TTL was kept")
	}
	var nilCache *Cache
	nilCache.put(k("a"), cacheEntry{}, 60)
	if _, ok := nilCache.get(k("a")); ok || nilCache.Len() != 0 {
		t.Error("nil cache holds something")
	}
}

func TestHealth(t *testing.T) {
	srv := startServer(t, map[string]rule{
		"2.0.0.127.ok.test": {a: []string{"127.0.0.2"}},
		"2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ok.test": {a: []string{"127.0.0.2"}},
		"2.0.0.127.v4.test":     {a: []string{"127.0.0.2", "127.0.0.4"}},
		"dead.test":             {silent: true},
		"servfail.test":         {rcode: dns.RcodeServerFailure},
		"refused.test":          {rcode: dns.RcodeRefused},
		"public.test":           {a: []string{"127.255.255.254"}},
		"all.test":              {a: []string{"127.0.0.2"}},
		"parked.test":           {a: []string{"192.0.2.80"}},
		"2.0.0.127.nolist.test": {rcode: dns.RcodeNameError},
	})
	names := []string{"ok.test", "v4.test", "dead.test", "servfail.test", "nolist.test", "refused.test",
		"public.test", "all.test", "parked.test"}
	want := []Status{OK, OK, Dead, Dead, Dead, Refusing, Refusing, AnsweringAll, AnsweringAll}
	c := newChecker(t, Config{Zones: zones(t, names...), Servers: []string{srv.Addr},
		Timeout: 500 * time.Millisecond})
	hs := c.Health(context.Background())
	if len(hs) != len(names) {
		t.Fatalf("%d reports for %d zones", len(hs), len(names))
	}
	for i, h := range hs {
		if h.Zone != names[i] || h.Status != want[i] {
			t.Errorf("%s: %v (%s), want %s: %v", h.Zone, h.Status, h.Detail, names[i], want[i])
		}
	}
	if !hs[0].IPv6 || hs[1].IPv6 {
		t.Errorf("IPv6: ok.test %v, v4.test %v", hs[0].IPv6, hs[1].IPv6)
	}
	if d := hs[0].Detail; d != "127.0.0.2 listed (127.0.0.2); 127.0.0.1 not listed; ::FFFF:7F00:2 listed (127.0.0.2)" {
		t.Errorf("detail %q", d)
	}
	if d := hs[2].Detail; !strings.Contains(d, "127.0.0.2 timeout after 500ms") {
		t.Errorf("dead detail %q", d)
	}
	if s := AnsweringAll.String(); s != "answering everything" {
		t.Errorf("AnsweringAll.String() = %q", s)
	}
}

func TestNew(t *testing.T) {
	zs := zones(t, "bl.test")
	bad := []Config{
		{Zones: zs},
		{Zones: zs, Servers: []string{"127.0.0.1"}},
		{Zones: zs, Servers: []string{"localhost:53"}},
		{Zones: zs, Servers: []string{"127.0.0.1:"}},
		{Zones: zs, Servers: []string{"127.0.0.1:53"}, Replies: map[string]string{"other.test": "x"}},
		{Zones: zs, Servers: []string{"127.0.0.1:53"}, Timeout: -1},
		{Zones: []Zone{{}}, Servers: []string{"127.0.0.1:53"}},
	}
	for _, cfg := range bad {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	if _, err := New(Config{Zones: zs, Servers: []string{"[::1]:53", "127.0.0.1:5353"}}); err != nil {
		t.Error(err)
	}
}

func TestServersFromResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	conf := "# generated\nsearch example.org\nnameserver 192.0.2.1\nnameserver  2001:db8::53\n" +
		"nameserver fe80::1%eth0\nnameserver not-an-ip\noptions edns0\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ServersFromResolvConf(path)
	want := []string{"192.0.2.1:53", "[2001:db8::53]:53", "[fe80::1%eth0]:53"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	if err := os.WriteFile(path, []byte("search example.org\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ServersFromResolvConf(path); err == nil {
		t.Error("no nameserver: no error")
	}
	if _, err := ServersFromResolvConf(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: no error")
	}
}
