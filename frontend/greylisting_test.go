package frontend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/logline"
)

// clock is a settable clock for the greylist: no test sleeps.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2025, 1, 2, 12, 0, 0, 0, time.UTC)

// countingStore counts the store's reads and can be made to fail.
type countingStore struct {
	greylist.Store
	gets  atomic.Int64
	fail  atomic.Bool
	onGet func(context.Context) // if set, called with each Get's context
}

func (s *countingStore) Get(ctx context.Context, n netip.Prefix) (greylist.Record, error) {
	s.gets.Add(1)
	if s.onGet != nil {
		s.onGet(ctx)
	}
	if s.fail.Load() {
		return greylist.Record{}, errors.New("greylist: test.db: get: lock not had within 1s")
	}
	return s.Store.Get(ctx, n)
}

type greyFixture struct {
	clock *clock
	store *countingStore
	gp    *greylist.Policy
	p     *Policy
	log   *bytes.Buffer
}

func newGreyFixture(t testing.TB, skip *NetList, cache *PassCache) *greyFixture {
	t.Helper()
	c := &clock{t: t0}
	st := &countingStore{Store: greylist.NewMemory()}
	gp, err := greylist.NewPolicy(st, greylist.Config{Delay: 5 * time.Minute, Window: 24 * time.Hour,
		Lifetime: 36 * 24 * time.Hour, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	p := &Policy{Greylist: &Greylisting{Policy: gp, Skip: skip, Known: cache, Now: c.now},
		Log: logline.WriterLogger(&log)}
	return &greyFixture{clock: c, store: st, gp: gp, p: p, log: &log}
}

func (f *greyFixture) decide(ip string) Verdict {
	return f.p.Decide(context.Background(), Client{Remote: netip.AddrPortFrom(netip.MustParseAddr(ip), 4000)})
}

// greylistedForGolden is greylisting's verdict on a new client, as the
// dialogue golden file shows it.
func greylistedForGolden(t *testing.T) Verdict {
	return newGreyFixture(t, nil, nil).decide("192.0.2.7")
}

// The steps of a greylisted network's life, through Policy.Decide with the
// clock moved by hand.
func TestGreylistLife(t *testing.T) {
	f := newGreyFixture(t, list(t, "198.51.100.0/24"), nil)
	type step struct {
		name    string
		advance time.Duration
		ip      string
		action  Action
		reply   string // refusals
		export  string // MXFRONT_GREYLIST on a pass
	}
	for _, s := range []step{
		{"new network", 0, "192.0.2.7", Refuse, "451 4.7.1 Greylisted: please try again in 5m0s, after 12:05:00 UTC", ""},
		{"retried too early", 2 * time.Minute, "192.0.2.7", Refuse, "451 4.7.1 Greylisted: please try again in 3m0s, after 12:05:00 UTC", ""},
		{"another address of the /24, too early", 0, "192.0.2.200", Refuse, "451 4.7.1 Greylisted: please try again in 3m0s, after 12:05:00 UTC", ""},
		{"another /24 is new", 0, "192.0.3.7", Refuse, "451 4.7.1 Greylisted: please try again in 5m0s, after 12:07:00 UTC", ""},
		{"retried after the delay", 3*time.Minute + 10*time.Second, "192.0.2.7", Pass, "", "retry 310"},
		{"known from another address of the /24", time.Minute, "192.0.2.99", Pass, "", "passed 370"},
		{"skip list", 0, "198.51.100.5", Pass, "", "skipped"},
		{"IPv6 /64 new", 0, "2001:db8:1:2::1", Refuse, "451 4.7.1 Greylisted: please try again in 5m0s, after 12:11:10 UTC", ""},
		{"IPv6 same /64 after the delay", 6 * time.Minute, "2001:db8:1:2:ffff::9", Pass, "", "retry 360"},
		{"lifetime over: greylisted again", 37 * 24 * time.Hour, "192.0.2.7", Refuse, "451 4.7.1 Greylisted: please try again in 5m0s, after 12:17:10 UTC", ""},
	} {
		f.clock.add(s.advance)
		v := f.decide(s.ip)
		if v.Action != s.action {
			t.Fatalf("%s: action %v (%+v)", s.name, v.Action, v)
		}
		if len(v.Details) != 0 {
			t.Errorf("%s: details %q written outside mxfront check", s.name, v.Details)
		}
		if s.action == Refuse {
			if v.Reply.String() != s.reply {
				t.Errorf("%s: reply %q, want %q", s.name, v.Reply, s.reply)
			}
			if !v.Greylisted() || !v.Greylist.Network.IsValid() || v.Greylist.RetryIn <= 0 {
				t.Errorf("%s: not marked greylisted: %+v", s.name, v.Greylist)
			}
			continue
		}
		if got := v.Greylist.String(); got != s.export {
			t.Errorf("%s: MXFRONT_GREYLIST=%q, want %q", s.name, got, s.export)
		}
		if e := v.Exports(); len(e) != 1 || e[0].Name != "GREYLIST" {
			t.Errorf("%s: PROGRAM would get %v; only GREYLIST is for it", s.name, e)
		}
	}
	if n, _ := f.store.Stats(context.Background()); n.Records != 3 {
		t.Errorf("store holds %d networks, want 3 (the skip list is never recorded)", n.Records)
	}
}

// Trusted clients never reach the greylist: nothing is recorded.
func TestGreylistTrustedUntouched(t *testing.T) {
	f := newGreyFixture(t, nil, nil)
	f.p.Allow = list(t, "192.0.2.0/24")
	if v := f.decide("192.0.2.7"); v.Action != Trusted {
		t.Fatalf("%+v", v)
	}
	v := f.p.Decide(context.Background(), Client{Remote: netip.MustParseAddrPort("203.0.113.1:1"), RelayClient: true})
	if v.Action != Trusted || f.store.gets.Load() != 0 {
		t.Fatalf("%+v; store read %d times", v, f.store.gets.Load())
	}
}

// A failing store passes the client, says so in MXFRONT_GREYLIST and logs
// an ERROR line: never refuse mail because the database failed.
func TestGreylistStoreFailurePasses(t *testing.T) {
	f := newGreyFixture(t, nil, nil)
	f.store.fail.Store(true)
	v := f.decide("192.0.2.7")
	if v.Action != Pass || v.Greylist.State != GreylistError {
		t.Fatalf("%+v", v)
	}
	if !strings.Contains(f.log.String(), "level=ERROR") || !strings.Contains(f.log.String(), "lock not had") {
		t.Fatalf("log: %q", f.log.String())
	}
}

// stallingStore answers nothing until its context is done, as a Redis
// server that accepts and never replies; it records whether each call
// had a deadline.
type stallingStore struct {
	greylist.Store
	mu        sync.Mutex
	deadlines []bool
}

func (s *stallingStore) wait(ctx context.Context) error {
	_, ok := ctx.Deadline()
	s.mu.Lock()
	s.deadlines = append(s.deadlines, ok)
	s.mu.Unlock()
	<-ctx.Done()
	return fmt.Errorf("greylist: redis://127.0.0.1:6379: get: no answer: %w", ctx.Err())
}

func (s *stallingStore) Get(ctx context.Context, n netip.Prefix) (greylist.Record, error) {
	return greylist.Record{}, s.wait(ctx)
}

// A store that never answers holds no decision beyond Greylisting.Timeout:
// Decide, Peek (mxfront check) and Forget each end with the store's error,
// the client passes, and the ERROR line says why. Without the bound this
// test would hang (the store waits for its context alone); how long the
// bound took is not asserted.
func TestGreylistTimeoutBoundsAStalledStore(t *testing.T) {
	st := &stallingStore{Store: greylist.NewMemory()}
	gp, err := greylist.NewPolicy(st, greylist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	p := &Policy{Greylist: &Greylisting{Policy: gp, Timeout: 20 * time.Millisecond}, Log: logline.WriterLogger(&log)}
	ip := netip.MustParseAddr("192.0.2.7")
	done := make(chan Verdict, 2)
	go func() {
		done <- p.Decide(context.Background(), Client{Remote: netip.AddrPortFrom(ip, 4000)})
		check := *p
		check.DryRun = true
		done <- check.Decide(context.Background(), Client{Remote: netip.AddrPortFrom(ip, 4000)})
		p.forgetGreylisted(context.Background(), ip, Verdict{Action: Refuse, By: ByGreylist, Greylist: GreylistResult{State: GreylistRefused}})
		close(done)
	}()
	for _, what := range []string{"decide", "check"} {
		select {
		case v := <-done:
			if v.Action != Pass || v.Greylist.State != GreylistError {
				t.Fatalf("%s: %+v", what, v)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: a stalled store held the decision for 60s", what)
		}
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("forget: a stalled store held it for 60s")
	}
	if got := strings.Count(log.String(), "level=ERROR"); got != 3 ||
		!strings.Contains(log.String(), `msg="greylist failed: client passed" ip=192.0.2.7 error="greylist: redis://127.0.0.1:6379: get: no answer: context deadline exceeded"`) ||
		!strings.Contains(log.String(), `msg="greylist: cannot forget a bogus client"`) {
		t.Fatalf("log:\n%s", log.String())
	}
	for i, d := range st.deadlines {
		if !d {
			t.Errorf("store call %d had no deadline", i)
		}
	}
}

// Without a Timeout (bbolt, which bounds its own lock wait and ignores a
// context) the store gets the connection's context as it is.
func TestGreylistNoTimeoutNoDeadline(t *testing.T) {
	f := newGreyFixture(t, nil, nil)
	var saw []bool
	f.store.onGet = func(ctx context.Context) { _, ok := ctx.Deadline(); saw = append(saw, ok) }
	f.decide("192.0.2.7")
	if len(saw) != 1 || saw[0] {
		t.Fatalf("deadlines seen by the store: %v", saw)
	}
	f.p.Greylist.Timeout = time.Hour
	f.decide("192.0.2.7")
	if len(saw) != 2 || !saw[1] {
		t.Fatalf("deadlines seen by the store with a Timeout: %v", saw)
	}
}

// With a StoreHealth (serve mode) a failing store is one incident: one
// ERROR line at its start, a reminder a minute on, one WARN line when the
// store answers again with how many clients passed unchecked; every
// client still passes with GREYLIST=error, and each is counted.
func TestStoreHealthLogsIncidents(t *testing.T) {
	f := newGreyFixture(t, nil, nil)
	h := &StoreHealth{}
	f.p.Greylist.Health = h
	count := func(s string) int { return strings.Count(f.log.String(), s) }
	f.store.fail.Store(true)
	for i := range 3 {
		v := f.decide(fmt.Sprintf("192.0.%d.7", i))
		if v.Action != Pass || v.Greylist.State != GreylistError {
			t.Fatalf("client %d with the store failing: %+v", i, v)
		}
		f.clock.add(10 * time.Second)
	}
	if count("level=ERROR") != 1 || count(`msg="greylist store failing: clients pass unchecked until it answers" ip=192.0.0.7 error=`) != 1 {
		t.Fatalf("three failures, want one ERROR line:\n%s", f.log)
	}
	f.clock.add(RemindEvery)
	f.decide("192.0.3.7")
	if count("level=ERROR") != 2 || count(`msg="greylist store still failing: clients pass unchecked" ip=192.0.3.7 passed=4 for=1m30s`) != 1 {
		t.Fatalf("a minute on, want a reminder:\n%s", f.log)
	}
	f.store.fail.Store(false)
	f.decide("192.0.4.7")
	f.decide("192.0.5.7")
	if count(`level=WARN msg="greylist store answers again" passed=4 for=1m30s`) != 1 || count("level=") != 3 {
		t.Fatalf("the store answers again, want one WARN line:\n%s", f.log)
	}
	if h.Unsure() != 4 {
		t.Errorf("Unsure() = %d, want 4", h.Unsure())
	}
	f.store.fail.Store(true)
	f.decide("192.0.6.7")
	if count(`msg="greylist store failing: clients pass unchecked until it answers" ip=192.0.6.7`) != 1 {
		t.Fatalf("a new incident, want a new ERROR line:\n%s", f.log)
	}
}

// mxfront check decides without writing: a new network stays unknown.
func TestGreylistDryRun(t *testing.T) {
	f := newGreyFixture(t, nil, nil)
	f.p.DryRun = true
	v := f.decide("192.0.2.7")
	if v.Action != Refuse || len(v.Details) == 0 || !strings.Contains(v.Details[0], "192.0.2.0/24 new") {
		t.Fatalf("%+v", v)
	}
	if st, _ := f.store.Stats(context.Background()); st.Records != 0 {
		t.Fatalf("check wrote %d records", st.Records)
	}
}

// A greylisted client that showed itself bogus is forgotten: a retry
// after the delay starts over instead of passing. A passing network is
// never forgotten.
func TestForgetGreylisted(t *testing.T) {
	f := newGreyFixture(t, nil, nil)
	ctx := context.Background()
	ip := netip.MustParseAddr("192.0.2.7")
	v := f.decide("192.0.2.7")
	f.p.forgetGreylisted(ctx, ip, v)
	f.clock.add(6 * time.Minute)
	if v := f.decide("192.0.2.7"); v.Action != Refuse || v.Greylist.Store != greylist.New {
		t.Fatalf("after forget, the retry: %+v", v)
	}
	f.clock.add(6 * time.Minute)
	passed := f.decide("192.0.2.7")
	if passed.Action != Pass {
		t.Fatalf("%+v", passed)
	}
	f.p.forgetGreylisted(ctx, ip, passed) // not a greylisted verdict: nothing happens
	f.p.forgetGreylisted(ctx, ip, v)      // greylisted verdict, but the network passes now
	if v := f.decide("192.0.2.9"); v.Action != Pass {
		t.Fatalf("a passing network was forgotten: %+v", v)
	}
}

// The pass cache spares known networks the store, for TTL at most, so a
// removal takes effect within TTL; greylisted networks are never cached.
func TestPassCache(t *testing.T) {
	f := newGreyFixture(t, nil, NewPassCache(time.Minute, 100))
	f.decide("192.0.2.7")
	f.clock.add(6 * time.Minute)
	if v := f.decide("192.0.2.7"); v.Action != Pass {
		t.Fatal(v)
	}
	reads := f.store.gets.Load()
	for i := range 10 {
		f.clock.add(time.Second)
		v := f.decide(fmt.Sprintf("192.0.2.%d", 10+i))
		if v.Action != Pass || !strings.HasPrefix(v.Greylist.String(), "passed ") {
			t.Fatalf("%+v", v)
		}
	}
	if got := f.store.gets.Load(); got != reads {
		t.Fatalf("cached network read the store %d times", got-reads)
	}
	// An administrator removes the network; within the TTL it still passes.
	if _, err := f.gp.Remove(context.Background(), netip.MustParsePrefix("192.0.2.0/24")); err != nil {
		t.Fatal(err)
	}
	if v := f.decide("192.0.2.7"); v.Action != Pass {
		t.Fatalf("within the TTL: %+v", v)
	}
	f.clock.add(time.Minute)
	if v := f.decide("192.0.2.7"); v.Action != Refuse {
		t.Fatalf("after the TTL, a removed network must be greylisted again: %+v", v)
	}
	// A clock set back does not keep an entry alive.
	f.clock.add(-time.Hour)
	if _, ok := f.p.Greylist.Known.get(netip.MustParsePrefix("192.0.2.0/24"), f.clock.now()); ok {
		t.Fatal("entry from the future used")
	}
}

// A greylisted network's early retries are refused from the cache, the
// same way the store would refuse them, until the delay ends; an
// administrator's allow (Drop, as the control socket does) and the end of
// the delay send the next client to the store.
func TestPassCachePending(t *testing.T) {
	f := newGreyFixture(t, nil, NewPassCache(10*time.Minute, 100))
	first := f.decide("192.0.2.7")
	if !first.Greylisted() || first.Greylist.Store != greylist.New {
		t.Fatalf("first contact: %+v", first)
	}
	reads := f.store.gets.Load()
	f.clock.add(time.Minute)
	v := f.decide("192.0.2.8")
	if !v.Greylisted() || v.Greylist.Store != greylist.Early || v.Greylist.RetryIn != 4*time.Minute ||
		v.Greylist.Age != time.Minute || v.Greylist.Network.String() != "192.0.2.0/24" {
		t.Fatalf("early retry: %+v", v.Greylist)
	}
	if !strings.HasPrefix(v.Reply.String(), "451 4.7.1 Greylisted: please try again in 4m0s") {
		t.Fatalf("early retry's reply: %q", v.Reply)
	}
	if got := f.store.gets.Load(); got != reads {
		t.Fatalf("an early retry read the store %d times", got-reads)
	}
	// Dropped (an allow through the control socket): the store decides.
	if err := f.gp.Allow(context.Background(), netip.MustParsePrefix("192.0.2.0/24")); err != nil {
		t.Fatal(err)
	}
	f.p.Greylist.Known.Drop(netip.MustParsePrefix("192.0.2.0/24"))
	if v := f.decide("192.0.2.7"); v.Action != Pass {
		t.Fatalf("allowed: %+v", v)
	}
	// Another network: after its delay the store is asked, and it passes.
	f.decide("198.51.100.7")
	f.clock.add(5*time.Minute + time.Second)
	reads = f.store.gets.Load()
	if v := f.decide("198.51.100.7"); v.Action != Pass || v.Greylist.State != GreylistRetry {
		t.Fatalf("after the delay: %+v", v)
	}
	if f.store.gets.Load() == reads {
		t.Fatal("the store was not asked after the delay")
	}
}

// The cache's delay ends no later than the store's, whose clock keeps
// whole seconds: greylisted 0.9 s into a second, a retry 0.4 s before
// our clock's end of the delay is one the store passes, and so does serve.
func TestPassCachePendingEndsWithTheStore(t *testing.T) {
	f := newGreyFixture(t, nil, NewPassCache(10*time.Minute, 100))
	f.clock.add(900 * time.Millisecond)
	if v := f.decide("192.0.2.7"); !v.Greylisted() {
		t.Fatalf("first contact: %+v", v)
	}
	f.clock.add(5*time.Minute - 500*time.Millisecond)
	if v := f.decide("192.0.2.7"); v.Action != Pass || v.Greylist.State != GreylistRetry {
		t.Fatalf("a retry the store passes: %+v", v.Greylist)
	}
}

func TestPassCacheBounded(t *testing.T) {
	c := NewPassCache(time.Minute, 100)
	for i := range 1000 {
		c.put(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24), t0, t0)
		if c.Len() > 100 {
			t.Fatalf("cache holds %d > 100", c.Len())
		}
	}
	last := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 3, 231, 0}), 24)
	if _, ok := c.get(last, t0); !ok {
		t.Fatal("the newest entry was dropped")
	}
}

// BenchmarkServeDecisions is serve mode's greylist decision as loadGreylist
// builds it: a bbolt file opened per decision (no lock held between
// decisions, so chain-mode processes and `mxfront greylist` share it) and
// the pass cache, on a realistic mix from parallel goroutines: 90% of
// clients from 2,000 networks known to pass, 10% from networks never seen
// (each a write). The real clock.
func BenchmarkServeDecisions(b *testing.B) {
	benchServe(b, 0.10, true)
}

// BenchmarkServeDecisionsNoCache is the same mix with the cache off: what
// each decision costs when it must open the file.
func BenchmarkServeDecisionsNoCache(b *testing.B) {
	benchServe(b, 0.10, false)
}

func benchServe(b *testing.B, newShare float64, cache bool) {
	store, err := greylist.OpenBolt(filepath.Join(b.TempDir(), "greylist.db"), greylist.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	gp, err := greylist.NewPolicy(store, greylist.Config{})
	if err != nil {
		b.Fatal(err)
	}
	const known = 2000
	ctx := context.Background()
	for i := range known {
		if err := gp.Allow(ctx, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)); err != nil {
			b.Fatal(err)
		}
	}
	p := &Policy{Greylist: &Greylisting{Policy: gp}}
	if cache {
		p.Greylist.Known = NewPassCache(time.Minute, 100000)
	}
	var fresh atomic.Uint32
	var refused, passed atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var ip netip.Addr
			if rand.Float64() < newShare {
				n := fresh.Add(1)
				ip = netip.AddrFrom4([4]byte{byte(100 + n>>16), byte(n >> 8), byte(n), 7})
			} else {
				i := rand.IntN(known)
				ip = netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(rand.IntN(256))})
			}
			v := p.Decide(ctx, Client{Remote: netip.AddrPortFrom(ip, 4000)})
			if v.Greylist.State == GreylistError {
				b.Errorf("store error: %v", v.Greylist)
				return
			}
			if v.Action == Refuse {
				refused.Add(1)
			} else {
				passed.Add(1)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	b.ReportMetric(float64(refused.Load())/float64(max(b.N, 1)), "greylisted-share")
}
