package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/greylist/storetest"
	"github.com/mxfront/mxfront/internal/testpeer"
)

func TestMain(m *testing.M) {
	if os.Getenv(racerEnv) != "" {
		os.Exit(racer())
	}
	code := m.Run()
	testpeer.StopSharedRedis()
	os.Exit(code)
}

// The tests run real redis-server (and redis-sentinel) processes, started
// by testpeer on 127.0.0.1 on free ports and stopped by their PIDs. A
// missing program skips a test on a developer's machine and fails it in CI.

// peerWait is the generous deadline for a real server to reach a state (a
// replica in sync, a fail-over done).
const peerWait = testpeer.RedisWait

// debugCommand is in every redis-server these tests start: DEBUG allowed
// to local clients (Redis 7 refuses it by default).
var debugCommand = []string{"--enable-debug-command", "local"}

// startRedis starts a redis-server of the test's own, with extra
// configuration arguments ("--requirepass", "x"), and stops it when the
// test ends.
func startRedis(t testing.TB, extra ...string) *testpeer.Redis {
	t.Helper()
	return testpeer.StartRedis(t, append(slices.Clone(debugCommand), extra...)...)
}

// sharedRedis is one server for the tests that need nothing special of it;
// they keep apart by key prefixes. TestMain stops it.
func sharedRedis(t testing.TB) *testpeer.Redis {
	t.Helper()
	return testpeer.SharedRedis(t, debugCommand...)
}

// writeFile writes a file into dir and returns its path.
func writeFile(t testing.TB, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	ctx      = context.Background()
	base     = time.Unix(1_750_000_000, 0)
	prefixes atomic.Int64
)

// freshPrefix is a key prefix no other test uses, so that tests share one
// server and each sees an empty store.
func freshPrefix(t testing.TB) string {
	name := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	return fmt.Sprintf("test:%s:%d:", name, prefixes.Add(1))
}

// peerTimeout is the store's timeout in tests that are not about the
// timeout: so generous that a slow or loaded machine never turns an answer
// into a timeout. Tests of the timeout give Options.Timeout.
const peerTimeout = 10 * time.Second

// open opens the store at url with o (a fresh prefix unless o has one,
// peerTimeout unless o has a timeout) and closes it when the test ends.
func open(t testing.TB, url string, o Options) *Store {
	t.Helper()
	if o.Prefix == "" {
		o.Prefix = freshPrefix(t)
	}
	if o.Timeout == 0 {
		o.Timeout = peerTimeout
	}
	s, err := Open(url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// raw is a plain client of the server, to look at what the store wrote.
func raw(t testing.TB, srv *testpeer.Redis) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestStoreConformance runs the suite every store passes, bbolt's included,
// against a real redis-server; once more with SCAN batches of a few keys,
// so that Scan, Expire and Stats cross many batches.
func TestStoreConformance(t *testing.T) {
	srv := sharedRedis(t)
	newStore := func(t *testing.T) greylist.Store { return open(t, srv.URL(), Options{}) }
	t.Run("Batches500", func(t *testing.T) { storetest.Run(t, newStore) })
	t.Run("Batches7", func(t *testing.T) {
		old := scanCount
		scanCount = 7
		defer func() { scanCount = old }()
		storetest.Run(t, newStore)
	})
}

// TestPolicyOverRedis is the greylisting sequence on the store: new, early,
// passed, known, with an injected clock.
func TestPolicyOverRedis(t *testing.T) {
	srv := sharedRedis(t)
	s := open(t, srv.URL(), Options{})
	now := base
	p, err := greylist.NewPolicy(s, greylist.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.7")
	for _, step := range []struct {
		at   time.Duration
		want greylist.State
	}{
		{0, greylist.New}, {time.Minute, greylist.Early}, {6 * time.Minute, greylist.Passed},
		{7 * time.Minute, greylist.Known}, {2 * time.Hour, greylist.Known},
	} {
		now = base.Add(step.at)
		o, err := p.Decide(ctx, ip)
		if err != nil || o.State != step.want {
			t.Fatalf("at +%v: %v, %v; want %v", step.at, o.State, err, step.want)
		}
	}
}

// TestKeysAndTTLs: a pending record lives the window, a passed one the
// lifetime, under readable keys and values.
func TestKeysAndTTLs(t *testing.T) {
	srv := sharedRedis(t)
	const window, lifetime = 3 * time.Hour, 40 * 24 * time.Hour
	s := open(t, srv.URL(), Options{Window: window, Lifetime: lifetime})
	c := raw(t, srv)
	v4 := netip.MustParsePrefix("192.0.2.0/24")
	v6 := netip.MustParsePrefix("2001:db8:1:2::/64")
	pending := greylist.Record{FirstSeen: base}
	passed := greylist.Record{FirstSeen: base, LastPass: base.Add(time.Hour)}
	for _, tc := range []struct {
		n     netip.Prefix
		r     greylist.Record
		key   string
		value string
		ttl   time.Duration
	}{
		{v4, pending, "192.0.2.0/24", "1750000000 0", window},
		{v6, passed, "2001:db8:1:2::/64", "1750000000 1750003600", lifetime},
	} {
		if ok, err := s.CompareAndSwap(ctx, tc.n, greylist.Record{}, tc.r); !ok || err != nil {
			t.Fatalf("create %v: %v, %v", tc.n, ok, err)
		}
		key := s.Prefix() + tc.key
		if v, err := c.Get(ctx, key).Result(); err != nil || v != tc.value {
			t.Errorf("GET %s = %q, %v; want %q", key, v, err, tc.value)
		}
		ttl, err := c.PTTL(ctx, key).Result()
		// Set a moment ago: at most the TTL, and far more than half of it
		// (a day at least) however slow the machine.
		if err != nil || ttl > tc.ttl || ttl < tc.ttl/2 {
			t.Errorf("PTTL %s = %v, %v; want about %v", key, ttl, err, tc.ttl)
		}
	}
	// A renewal (the policy's hourly write of a known network) sets the
	// lifetime again; passing from pending switches to it.
	if ok, err := s.CompareAndSwap(ctx, v4, pending, passed); !ok || err != nil {
		t.Fatalf("pass: %v, %v", ok, err)
	}
	if ttl, _ := c.PTTL(ctx, s.Prefix()+"192.0.2.0/24").Result(); ttl <= window {
		t.Errorf("passed record's TTL %v, want the lifetime %v", ttl, lifetime)
	}
}

// TestRenewal: a known network's decisions read only, until its last pass
// is an hour old; then one writes it, and its TTL is the lifetime again.
func TestRenewal(t *testing.T) {
	srv := sharedRedis(t)
	s := open(t, srv.URL(), Options{})
	c := raw(t, srv)
	now := base
	p, err := greylist.NewPolicy(s, greylist.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	n := netip.MustParsePrefix("192.0.2.0/24")
	key := s.Prefix() + n.String()
	if err := p.Allow(ctx, n); err != nil {
		t.Fatal(err)
	}
	shorten := func() {
		if err := c.PExpire(ctx, key, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	}
	shorten()
	ip := netip.MustParseAddr("192.0.2.77")
	now = base.Add(59 * time.Minute)
	if o, err := p.Decide(ctx, ip); err != nil || o.State != greylist.Known {
		t.Fatalf("within the hour: %v, %v", o.State, err)
	}
	if v, _ := c.Get(ctx, key).Result(); v != "1750000000 1750000000" {
		t.Errorf("within the hour the record was written: %q", v)
	}
	if ttl, _ := c.PTTL(ctx, key).Result(); ttl > time.Minute {
		t.Errorf("within the hour the TTL was renewed: %v", ttl)
	}
	now = base.Add(61 * time.Minute)
	if o, err := p.Decide(ctx, ip); err != nil || o.State != greylist.Known {
		t.Fatalf("after the hour: %v, %v", o.State, err)
	}
	if v, _ := c.Get(ctx, key).Result(); v != "1750000000 1750003660" {
		t.Errorf("after the hour the record is %q, want the pass renewed", v)
	}
	if ttl, _ := c.PTTL(ctx, key).Result(); ttl < greylist.DefaultLifetime/2 {
		t.Errorf("after the hour the TTL is %v, want the lifetime", ttl)
	}
}

// TestRecordsExpireInRedis: a record whose TTL ran out is gone, without any
// Expire call. The TTL is tiny; the test only waits, generously, for Redis.
func TestRecordsExpireInRedis(t *testing.T) {
	srv := sharedRedis(t)
	s := open(t, srv.URL(), Options{Window: 20 * time.Millisecond})
	n := netip.MustParsePrefix("198.51.100.0/24")
	if ok, err := s.CompareAndSwap(ctx, n, greylist.Record{}, greylist.Record{FirstSeen: base}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	deadline := time.Now().Add(peerWait)
	for {
		r, err := s.Get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if r.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record with a 20ms TTL still there after %v", peerWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !s.ExpiresItself() {
		t.Error("ExpiresItself = false")
	}
}

// TestDamagedValues: Get and Scan report a foreign value under the prefix
// as damaged; Expire deletes it and counts it.
func TestDamagedValues(t *testing.T) {
	srv := sharedRedis(t)
	s := open(t, srv.URL(), Options{})
	c := raw(t, srv)
	good := netip.MustParsePrefix("192.0.2.0/24")
	if ok, err := s.CompareAndSwap(ctx, good, greylist.Record{}, greylist.Record{FirstSeen: base}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	for k, v := range map[string]string{
		"203.0.113.0/24": "garbage",
		"203.0.113.1/24": "1750000000 0", // not a masked network
		"not-a-network":  "1750000000 0",
	} {
		if err := c.Set(ctx, s.Prefix()+k, v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctx, netip.MustParsePrefix("203.0.113.0/24")); !errors.Is(err, greylist.ErrDamaged) {
		t.Errorf("Get of a damaged value: %v, want ErrDamaged", err)
	}
	if err := s.Scan(ctx, func(netip.Prefix, greylist.Record) error { return nil }); !errors.Is(err, greylist.ErrDamaged) {
		t.Errorf("Scan over damaged keys: %v, want ErrDamaged", err)
	}
	n, err := s.Expire(ctx, func(netip.Prefix, greylist.Record) bool { return false })
	if err != nil || n != 3 {
		t.Fatalf("Expire = %d, %v; want the 3 damaged keys", n, err)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Records != 1 {
		t.Fatalf("Stats after Expire = %+v, %v; want the one good record", st, err)
	}
}

// TestPrefixesKeepApart: two deployments on one Redis, each its prefix,
// even a prefix with SCAN's pattern characters.
func TestPrefixesKeepApart(t *testing.T) {
	srv := sharedRedis(t)
	p := freshPrefix(t)
	a := open(t, srv.URL(), Options{Prefix: p + "a*:"})
	b := open(t, srv.URL(), Options{Prefix: p + "a[b]:"})
	n := netip.MustParsePrefix("192.0.2.0/24")
	if ok, err := a.CompareAndSwap(ctx, n, greylist.Record{}, greylist.Record{FirstSeen: base}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if r, err := b.Get(ctx, n); err != nil || !r.IsZero() {
		t.Fatalf("other prefix sees %+v, %v", r, err)
	}
	for _, s := range []*Store{a, b} {
		st, err := s.Stats(ctx)
		want := 0
		if s == a {
			want = 1
		}
		if err != nil || st.Records != want {
			t.Errorf("%s: Stats = %+v, %v; want %d records", s.Prefix(), st, err, want)
		}
	}
}

func TestValueCodec(t *testing.T) {
	for _, r := range []greylist.Record{
		{FirstSeen: time.Unix(1, 0)},
		{FirstSeen: base, LastPass: base.Add(time.Hour)},
		{FirstSeen: time.Unix(1<<32-1, 0), LastPass: time.Unix(1<<32-1, 0)},
	} {
		v, err := encodeValue(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeValue(v)
		if err != nil || !got.Equal(r) {
			t.Errorf("%+v → %q → %+v, %v", r, v, got, err)
		}
	}
	for _, r := range []greylist.Record{
		{LastPass: base},
		{FirstSeen: time.Unix(-1, 0)},
		{FirstSeen: time.Unix(1<<32, 0)},
		{FirstSeen: base, LastPass: time.Unix(1<<32, 0)},
	} {
		if v, err := encodeValue(r); err == nil {
			t.Errorf("encodeValue(%+v) = %q, want an error", r, v)
		}
	}
	for _, v := range []string{"", "1", "0 0", "1 ", " 1", "01 0", "1 01", "1 -1", "1 2 3", "4294967296 0", "+1 0", "x y"} {
		if r, err := decodeValue(v); !errors.Is(err, greylist.ErrDamaged) {
			t.Errorf("decodeValue(%q) = %+v, %v; want ErrDamaged", v, r, err)
		}
	}
}

func FuzzDecodeValue(f *testing.F) {
	for _, s := range []string{"1750000000 0", "1750000000 1750003600", "1 4294967295", "", "0 0", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, err := decodeValue(v)
		if err != nil {
			return
		}
		back, err := encodeValue(r)
		if err != nil || back != v {
			t.Fatalf("%q decodes to %+v, which encodes to %q, %v", v, r, back, err)
		}
	})
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Target
	}{
		{"redis://127.0.0.1:6379", Target{Addrs: []string{"127.0.0.1:6379"}}},
		{"redis://localhost", Target{Addrs: []string{"localhost:6379"}}},
		{"redis://mx@redis.example.net:6380/2", Target{Addrs: []string{"redis.example.net:6380"}, User: "mx", DB: 2}},
		{"redis://[::1]:6379/0", Target{Addrs: []string{"[::1]:6379"}}},
		{"redis://[::1]", Target{Addrs: []string{"[::1]:6379"}}},
		{"rediss://redis.example.net:6380", Target{Addrs: []string{"redis.example.net:6380"}, TLS: true}},
		{"redis-sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3/mymaster/1",
			Target{Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"}, Master: "mymaster", DB: 1}},
		{"redis-sentinel://a:1/m", Target{Addrs: []string{"a:1"}, Master: "m"}},
		{"redis-sentinel://mx%40site@a:1/m", Target{Addrs: []string{"a:1"}, Master: "m", User: "mx@site"}},
	} {
		got, err := ParseURL(tc.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || got.User != tc.want.User || got.TLS != tc.want.TLS {
			t.Errorf("ParseURL(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
		if again, err := ParseURL(got.String()); err != nil || again.String() != got.String() {
			t.Errorf("%q: String %q does not parse back: %v, %v", tc.in, got.String(), again, err)
		}
	}
	for _, tc := range []struct{ in, err string }{
		{"127.0.0.1:6379", "not a URL"},
		{"http://x:1", "scheme"},
		{"bolt:/var/lib/x", "not a URL"},
		{"redis://user:secret@x:1", "password is never taken"},
		{"redis://:secret@x:1", "password is never taken"},
		{"redis://x:1?password=secret", "no query"},
		{"redis://x:1,y:2", "several hosts"},
		{"redis://x:0", "port"},
		{"redis://x:65536", "port"},
		{"redis://x:port", "port"},
		{"redis://", "no host"},
		{"redis://::1:6379", "brackets"},
		{"redis://x:1/db", "not a number"},
		{"redis://x:1/-1", "not a number"},
		{"redis://x:1/01", "not a number"},
		{"redis://x:1/1/2", "at most a database"},
		{"redis-sentinel://x:1", "no master name"},
		{"redis-sentinel://x:1/", "no master name"},
		{"redis-sentinel://x:1,/m", "no host"},
		{"redis-sentinel://x:1/m/1/2", "at most a database"},
	} {
		_, err := ParseURL(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ParseURL(%q) = %v, want an error with %q", tc.in, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q): the error repeats the password: %v", tc.in, err)
		}
	}
}

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty", "\n", 0o600)
	if _, err := Open("redis://127.0.0.1:1", Options{PasswordFile: empty}); err == nil {
		t.Error("an empty password file was taken")
	}
	if _, err := Open("redis://127.0.0.1:1", Options{PasswordFile: dir + "/missing"}); err == nil {
		t.Error("a missing password file was taken")
	}
	s, err := Open("redis://127.0.0.1:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Prefix() != DefaultPrefix || s.o.Timeout != DefaultTimeout ||
		s.o.Window != greylist.DefaultWindow || s.o.Lifetime != greylist.DefaultLifetime {
		t.Errorf("defaults: %+v", s.o)
	}
}
