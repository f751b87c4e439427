package greylist_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
)

var (
	ctx  = context.Background()
	base = time.Unix(1_750_000_000, 0)
)

// clock is the injected clock: tests move it instead of sleeping.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// counting counts the writes that reach its store.
type counting struct {
	greylist.Store
	writes int
}

func (c *counting) CompareAndSwap(ctx context.Context, n netip.Prefix, old, new greylist.Record) (bool, error) {
	ok, err := c.Store.CompareAndSwap(ctx, n, old, new)
	if ok {
		c.writes++
	}
	return ok, err
}

// step is one attempt: at base+at from addr, the policy must answer want,
// with retry and age as given, writing to the store or not.
type step struct {
	at    time.Duration
	addr  string
	want  greylist.State
	retry time.Duration
	age   time.Duration
	write bool
}

const (
	m = time.Minute
	h = time.Hour
	d = 24 * time.Hour
)

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   greylist.Config
		steps []step
	}{
		{"new, early, pass, known", greylist.Config{}, []step{
			{0, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{1 * m, "192.0.2.1", greylist.Early, 4 * m, 1 * m, false},
			{5*m - time.Second, "192.0.2.1", greylist.Early, time.Second, 5*m - time.Second, false},
			{5 * m, "192.0.2.1", greylist.Passed, 0, 5 * m, true},
			{5*m + time.Second, "192.0.2.1", greylist.Known, 0, 5*m + time.Second, false},
		}},
		{"early retry keeps first seen", greylist.Config{}, []step{
			{0, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{4 * m, "192.0.2.1", greylist.Early, 1 * m, 4 * m, false},
			{4 * m, "192.0.2.1", greylist.Early, 1 * m, 4 * m, false},
			{6 * m, "192.0.2.1", greylist.Passed, 0, 6 * m, true},
		}},
		{"pass at the end of the window", greylist.Config{}, []step{
			{0, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{24 * h, "192.0.2.1", greylist.Passed, 0, 24 * h, true},
		}},
		{"window expiry starts over", greylist.Config{}, []step{
			{0, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{24*h + time.Second, "192.0.2.1", greylist.Restarted, 5 * m, 0, true},
			{24*h + 2*m, "192.0.2.1", greylist.Early, 3*m + time.Second, 2*m - time.Second, false},
			{24*h + 6*m, "192.0.2.1", greylist.Passed, 0, 5*m + 59*time.Second, true},
		}},
		{"lifetime expiry starts over", greylist.Config{}, []step{
			{0, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{5 * m, "192.0.2.1", greylist.Passed, 0, 5 * m, true},
			{5*m + 36*d, "192.0.2.1", greylist.Known, 0, 36*d + 5*m, true},
			{5*m + 72*d + time.Second, "192.0.2.1", greylist.Lapsed, 5 * m, 0, true},
			{10*m + 72*d, "192.0.2.1", greylist.Early, time.Second, 5*m - time.Second, false},
			{11*m + 72*d, "192.0.2.1", greylist.Passed, 0, 6*m - time.Second, true},
		}},
		{"renewal writes at most once an hour", greylist.Config{}, []step{
			{0, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{5 * m, "192.0.2.1", greylist.Passed, 0, 5 * m, true},
			{30 * m, "192.0.2.1", greylist.Known, 0, 30 * m, false},
			{65*m - time.Second, "192.0.2.1", greylist.Known, 0, 65*m - time.Second, false},
			{65 * m, "192.0.2.1", greylist.Known, 0, 65 * m, true},
			{66 * m, "192.0.2.1", greylist.Known, 0, 66 * m, false},
			{125*m - time.Second, "192.0.2.1", greylist.Known, 0, 125*m - time.Second, false},
			{125 * m, "192.0.2.1", greylist.Known, 0, 125 * m, true},
			{20 * d, "192.0.2.1", greylist.Known, 0, 20 * d, true},
			{20*d + 59*m, "192.0.2.1", greylist.Known, 0, 20*d + 59*m, false},
			// 36 days after the renewal at 20 days, not after the first pass.
			{56 * d, "192.0.2.1", greylist.Known, 0, 56 * d, true},
		}},
		{"IPv4 /24 grouping", greylist.Config{}, []step{
			{0, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{1 * m, "192.0.2.254", greylist.Early, 4 * m, 1 * m, false},
			{2 * m, "192.0.3.1", greylist.New, 5 * m, 0, true},
			{6 * m, "192.0.2.77", greylist.Passed, 0, 6 * m, true},
			{6 * m, "192.0.3.1", greylist.Early, 1 * m, 4 * m, false},
		}},
		{"IPv6 /64 grouping", greylist.Config{}, []step{
			{0, "2001:db8:1:2::1", greylist.New, 5 * m, 0, true},
			{1 * m, "2001:db8:1:2:ffff:ffff:ffff:ffff", greylist.Early, 4 * m, 1 * m, false},
			{1 * m, "2001:db8:1:3::1", greylist.New, 5 * m, 0, true},
			{5 * m, "2001:db8:1:2:aaaa::5", greylist.Passed, 0, 5 * m, true},
		}},
		{"IPv4-mapped IPv6 is IPv4", greylist.Config{}, []step{
			{0, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{1 * m, "::ffff:192.0.2.9", greylist.Early, 4 * m, 1 * m, false},
			{5 * m, "::ffff:192.0.2.10", greylist.Passed, 0, 5 * m, true},
			{6 * m, "192.0.2.11", greylist.Known, 0, 6 * m, false},
		}},
		{"IPv6 zone is ignored", greylist.Config{}, []step{
			{0, "fe80::1%eth0", greylist.New, 5 * m, 0, true},
			{1 * m, "fe80::2%eth1", greylist.Early, 4 * m, 1 * m, false},
		}},
		{"custom prefixes", greylist.Config{V4Prefix: 32, V6Prefix: 48}, []step{
			{0, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{1 * m, "192.0.2.2", greylist.New, 5 * m, 0, true},
			{2 * m, "2001:db8:1:2::1", greylist.New, 5 * m, 0, true},
			{3 * m, "2001:db8:1:ffff::1", greylist.Early, 4 * m, 1 * m, false},
			{3 * m, "2001:db8:2::1", greylist.New, 5 * m, 0, true},
		}},
		{"custom durations", greylist.Config{Delay: 30 * time.Second, Window: h, Lifetime: 2 * h}, []step{
			{0, "192.0.2.1", greylist.New, 30 * time.Second, 0, true},
			{29 * time.Second, "192.0.2.1", greylist.Early, time.Second, 29 * time.Second, false},
			{30 * time.Second, "192.0.2.1", greylist.Passed, 0, 30 * time.Second, true},
			{2*h + 30*time.Second + time.Second, "192.0.2.1", greylist.Lapsed, 30 * time.Second, 0, true},
			{4*h + 32*time.Second, "192.0.2.1", greylist.Restarted, 30 * time.Second, 0, true},
		}},
		{"clock set back before first seen", greylist.Config{}, []step{
			{h, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{0, "192.0.2.1", greylist.Restarted, 5 * m, 0, true},
			{5 * m, "192.0.2.1", greylist.Passed, 0, 5 * m, true},
		}},
		{"clock set back before last pass", greylist.Config{}, []step{
			{0, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{10 * m, "192.0.2.1", greylist.Passed, 0, 10 * m, true},
			{6 * m, "192.0.2.1", greylist.Known, 0, 6 * m, true},
			{7 * m, "192.0.2.1", greylist.Known, 0, 7 * m, false},
		}},
		{"sub-second clock is kept to the second", greylist.Config{}, []step{
			{900 * time.Millisecond, "192.0.2.1", greylist.New, 5 * m, 0, true},
			{5*m + 100*time.Millisecond, "192.0.2.1", greylist.Passed, 0, 5 * m, true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{}
			store := &counting{Store: greylist.NewMemory()}
			cfg := tc.cfg
			cfg.Now = clk.now
			p, err := greylist.NewPolicy(store, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				clk.t = base.Add(s.at)
				before := store.writes
				o, err := p.Decide(ctx, netip.MustParseAddr(s.addr))
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				wrote := store.writes != before
				if o.State != s.want || o.RetryIn != s.retry || o.Age != s.age || wrote != s.write {
					t.Fatalf("step %d (%v, %s): got %v retry %v age %v wrote %v; want %v retry %v age %v wrote %v",
						i, s.at, s.addr, o.State, o.RetryIn, o.Age, wrote, s.want, s.retry, s.age, s.write)
				}
				if o.Greylisted() != (s.retry > 0) {
					t.Fatalf("step %d: Greylisted() = %v for %v", i, o.Greylisted(), o.State)
				}
				want, _ := p.Network(netip.MustParseAddr(s.addr))
				if o.Network != want {
					t.Fatalf("step %d: network %v, want %v", i, o.Network, want)
				}
				if got := o.FirstSeen.Add(o.Age); !got.Equal(time.Unix(clk.t.Unix(), 0)) {
					t.Fatalf("step %d: first seen %v + age %v is not now", i, o.FirstSeen, o.Age)
				}
			}
		})
	}
}

func TestNetwork(t *testing.T) {
	p, err := greylist.NewPolicy(greylist.NewMemory(), greylist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"192.0.2.1":                "192.0.2.0/24",
		"::ffff:192.0.2.1":         "192.0.2.0/24",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"fe80::1%eth0":             "fe80::/64",
		"0.0.0.0":                  "0.0.0.0/24",
		"::1":                      "::/64",
		"255.255.255.255":          "255.255.255.0/24",
		"::ffff:255.255.255.255":   "255.255.255.0/24",
		"64:ff9b::c000:201":        "64:ff9b::/64",
		"2001:db8:ffff:ffff::ffff": "2001:db8:ffff:ffff::/64",
	} {
		n, err := p.Network(netip.MustParseAddr(addr))
		if err != nil || n.String() != want {
			t.Errorf("Network(%s) = %v, %v; want %s", addr, n, err, want)
		}
	}
	if _, err := p.Network(netip.Addr{}); err == nil {
		t.Error("Network of the zero address succeeded")
	}
}

func TestParseNetwork(t *testing.T) {
	p, err := greylist.NewPolicy(greylist.NewMemory(), greylist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.0/24",
		"192.0.2.0/24":         "192.0.2.0/24",
		"192.0.2.7/24":         "192.0.2.0/24",
		"2001:db8:1:2::/64":    "2001:db8:1:2::/64",
		"2001:db8:1:2::9":      "2001:db8:1:2::/64",
		"::ffff:192.0.2.7":     "192.0.2.0/24",
		"192.0.0.0/16":         "",
		"2001:db8::/48":        "",
		"::ffff:192.0.2.0/120": "",
		"example.org":          "",
		"192.0.2.0/33":         "",
		"":                     "",
	} {
		n, err := p.ParseNetwork(in)
		switch {
		case want == "" && err == nil:
			t.Errorf("ParseNetwork(%q) = %v, want an error", in, n)
		case want != "" && (err != nil || n.String() != want):
			t.Errorf("ParseNetwork(%q) = %v, %v; want %s", in, n, err, want)
		}
	}
}

func TestNewPolicyRejects(t *testing.T) {
	for name, c := range map[string]greylist.Config{
		"delay not shorter than window": {Delay: h, Window: h},
		"negative lifetime":             {Lifetime: -h},
		"IPv4 prefix 33":                {V4Prefix: 33},
		"IPv4 prefix -1":                {V4Prefix: -1},
		"IPv6 prefix 129":               {V6Prefix: 129},
	} {
		if _, err := greylist.NewPolicy(greylist.NewMemory(), c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := greylist.NewPolicy(nil, greylist.Config{}); err == nil {
		t.Error("no store: accepted")
	}
}

func newPolicy(t *testing.T, s greylist.Store) (*greylist.Policy, *clock) {
	t.Helper()
	clk := &clock{t: base}
	p, err := greylist.NewPolicy(s, greylist.Config{Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return p, clk
}

func decide(t *testing.T, p *greylist.Policy, addr string) greylist.Outcome {
	t.Helper()
	o, err := p.Decide(ctx, netip.MustParseAddr(addr))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestPeekNeverWrites(t *testing.T) {
	store := &counting{Store: greylist.NewMemory()}
	p, clk := newPolicy(t, store)
	peek := func(addr string) greylist.State {
		o, err := p.Peek(ctx, netip.MustParseAddr(addr))
		if err != nil {
			t.Fatal(err)
		}
		return o.State
	}
	if s := peek("192.0.2.1"); s != greylist.New {
		t.Fatalf("Peek of an unknown network: %v", s)
	}
	decide(t, p, "192.0.2.1")
	clk.t = base.Add(time.Minute)
	if s := peek("192.0.2.1"); s != greylist.Early {
		t.Fatalf("Peek of an early retry: %v", s)
	}
	clk.t = base.Add(10 * time.Minute)
	for range 3 {
		if s := peek("192.0.2.1"); s != greylist.Passed {
			t.Fatalf("Peek after the delay: %v", s)
		}
	}
	if store.writes != 1 {
		t.Fatalf("%d writes, want only Decide's", store.writes)
	}
	if s := decide(t, p, "192.0.2.1").State; s != greylist.Passed {
		t.Fatalf("Decide after Peeks: %v", s)
	}
}

func TestForget(t *testing.T) {
	p, clk := newPolicy(t, greylist.NewMemory())
	addr := netip.MustParseAddr("192.0.2.1")
	decide(t, p, "192.0.2.1")
	if err := p.Forget(ctx, addr); err != nil {
		t.Fatal(err)
	}
	// A bogus client retrying after the delay is new again, for ever.
	clk.t = base.Add(10 * time.Minute)
	if o := decide(t, p, "192.0.2.1"); o.State != greylist.New {
		t.Fatalf("after Forget: %v, want new", o.State)
	}
	clk.t = base.Add(20 * time.Minute)
	if o := decide(t, p, "192.0.2.1"); o.State != greylist.Passed {
		t.Fatalf("honest retry: %v", o.State)
	}
	if err := p.Forget(ctx, addr); err != nil {
		t.Fatal(err)
	}
	clk.t = base.Add(21 * time.Minute)
	if o := decide(t, p, "192.0.2.2"); o.State != greylist.Known {
		t.Fatalf("Forget dropped a passed network: %v", o.State)
	}
	if err := p.Forget(ctx, netip.MustParseAddr("198.51.100.1")); err != nil {
		t.Fatalf("Forget of an unknown network: %v", err)
	}
}

// broken fails as a store can.
type broken struct {
	greylist.Store
	getErr, casErr error
	casFalse       bool
}

func (b *broken) Get(ctx context.Context, n netip.Prefix) (greylist.Record, error) {
	if b.getErr != nil {
		return greylist.Record{}, b.getErr
	}
	return b.Store.Get(ctx, n)
}

func (b *broken) CompareAndSwap(ctx context.Context, n netip.Prefix, old, new greylist.Record) (bool, error) {
	if b.casErr != nil || b.casFalse {
		return false, b.casErr
	}
	return b.Store.CompareAndSwap(ctx, n, old, new)
}

func TestStoreFailureIsNoDecision(t *testing.T) {
	failure := errors.New("disk on fire")
	for name, s := range map[string]*broken{
		"read fails":          {getErr: failure},
		"write fails":         {casErr: failure},
		"record keeps moving": {casFalse: true},
	} {
		t.Run(name, func(t *testing.T) {
			s.Store = greylist.NewMemory()
			p, _ := newPolicy(t, s)
			o, err := p.Decide(ctx, netip.MustParseAddr("192.0.2.1"))
			if err == nil {
				t.Fatalf("no error; outcome %v", o.State)
			}
			if s.getErr != nil || s.casErr != nil {
				if !errors.Is(err, failure) {
					t.Fatalf("error %v does not wrap the store's", err)
				}
			}
			if o.State != greylist.Unknown || o.Greylisted() {
				t.Fatalf("on error the state is %v, greylisted %v", o.State, o.Greylisted())
			}
			if o.Network.String() != "192.0.2.0/24" {
				t.Fatalf("on error the network is %v", o.Network)
			}
		})
	}
}
