package dnsbl

import (
	"context"
	"testing"
	"time"
)

// benchChecker asks three zones of an in-process server on loopback.
func benchChecker(b *testing.B, cache *Cache) *Checker {
	srv := startServer(b, map[string]rule{
		"2.0.0.127.b1.test": {a: []string{"127.0.0.2"}, txt: []string{"b1 listed"}},
		"2.0.0.127.b2.test": {a: []string{"127.0.0.2"}, txt: []string{"b2 listed"}},
		"2.0.0.127.w1.test": {a: []string{"127.0.0.2"}},
		"test":              {rcode: 3, soa: true, ttl: 300},
	})
	return newChecker(b, Config{Zones: zones(b, "b1.test*2", "b2.test", "wl:w1.test"),
		Servers: []string{srv.Addr}, Timeout: 2 * time.Second, Cache: cache})
}

// A clean client: three A queries, all NXDOMAIN (the common case).
func BenchmarkCheckThreeZonesClean(b *testing.B) {
	c := benchChecker(b, nil)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if r := c.Check(ctx, cleanIP); r.Failed() || r.Score != 0 {
			b.Fatalf("score %d errors %v", r.Score, r.Errors())
		}
	}
}

// A listed client: three A queries and three TXT queries.
func BenchmarkCheckThreeZonesListed(b *testing.B) {
	c := benchChecker(b, nil)
	ctx := context.Background()
	for b.Loop() {
		if r := c.Check(ctx, listedIP); r.Failed() || r.Score != 2 {
			b.Fatalf("score %d errors %v", r.Score, r.Errors())
		}
	}
}

// Serve mode with the cache warm: no query leaves the process.
func BenchmarkCheckThreeZonesCached(b *testing.B) {
	c := benchChecker(b, NewCache(1000, time.Hour, nil))
	ctx := context.Background()
	c.Check(ctx, listedIP)
	for b.Loop() {
		if r := c.Check(ctx, listedIP); !r.Zones[0].Cached || r.Score != 2 {
			b.Fatalf("cached %v score %d", r.Zones[0].Cached, r.Score)
		}
	}
}

// A clean client with the Check waiting in Go's network poller, as serve
// mode's do (the others use rawLink on Linux).
func BenchmarkCheckThreeZonesPoller(b *testing.B) {
	withPoller = true
	defer func() { withPoller = false }()
	c := benchChecker(b, nil)
	ctx := context.Background()
	for b.Loop() {
		if r := c.Check(ctx, cleanIP); r.Failed() || r.Score != 0 {
			b.Fatalf("score %d errors %v", r.Score, r.Errors())
		}
	}
}

// The cached Check again with one of the three zones set aside: what the
// set-aside costs the fast path (an atomic load per zone) and saves (the
// zone's lookup). Compare with BenchmarkCheckThreeZonesCached in the same
// run.
func BenchmarkCheckThreeZonesCachedOneAside(b *testing.B) {
	c := benchChecker(b, NewCache(1000, time.Hour, nil))
	c.Watch(Watch{Failures: 10})
	ctx := context.Background()
	c.Check(ctx, listedIP)
	c.SetAside(Aside{Zone: "b2.test", By: ByHealthCheck})
	for b.Loop() {
		if r := c.Check(ctx, listedIP); !r.Zones[0].Cached || r.Score != 1 || r.Zones[1].Aside == nil {
			b.Fatalf("cached %v score %d", r.Zones[0].Cached, r.Score)
		}
	}
}
