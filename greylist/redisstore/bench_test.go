package redisstore

import (
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
)

// Serve mode's decisions on the realistic mix (90% of clients from known
// networks, 10% from new ones), from many goroutines, on the Redis store
// and on bbolt side by side in one run: decisions/s and the latency of one
// decision (p50, p99). Run with
//
//	go test -run '^$' -bench . ./greylist/redisstore/

const (
	benchKnown       = 10000
	benchParallelism = 8 // goroutines per CPU: serve mode has many clients at once
)

var benchNow = base.Add(7 * time.Minute)

func BenchmarkDecideMix(b *testing.B) {
	b.Run("store=redis", func(b *testing.B) {
		srv := sharedRedis(b)
		s := open(b, srv.URL(), Options{Timeout: DefaultTimeout})
		fillRedis(b, s)
		benchMix(b, s)
	})
	b.Run("store=bolt-keepopen", func(b *testing.B) {
		// Serve mode: the file held open, writes batched.
		s, err := greylist.OpenBolt(filepath.Join(b.TempDir(), "greylist.db"), greylist.BoltOptions{KeepOpen: true})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		fillStore(b, s)
		benchMix(b, s)
	})
	b.Run("store=bolt-per-decision", func(b *testing.B) {
		// Serve mode before it held the file (chain mode's way): the
		// file opened for each decision.
		path := filepath.Join(b.TempDir(), "greylist.db")
		fill, err := greylist.OpenBolt(path, greylist.BoltOptions{KeepOpen: true})
		if err != nil {
			b.Fatal(err)
		}
		fillStore(b, fill)
		fill.Close()
		s, err := greylist.OpenBolt(path, greylist.BoltOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchMix(b, s)
	})
}

// BenchmarkChainKnown is one chain-mode process's store work for a known
// client, process start aside: open the store, decide, close. For Redis
// that is a new connection each time.
func BenchmarkChainKnown(b *testing.B) {
	b.Run("store=redis", func(b *testing.B) {
		srv := sharedRedis(b)
		prefix := freshPrefix(b)
		fillRedis(b, open(b, srv.URL(), Options{Prefix: prefix}))
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			s, err := Open(srv.URL(), Options{Prefix: prefix, PoolSize: 1})
			if err != nil {
				b.Fatal(err)
			}
			chainDecide(b, s, i)
			s.Close()
		}
	})
	b.Run("store=bolt", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "greylist.db")
		fill, err := greylist.OpenBolt(path, greylist.BoltOptions{KeepOpen: true})
		if err != nil {
			b.Fatal(err)
		}
		fillStore(b, fill)
		fill.Close()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			s, err := greylist.OpenBolt(path, greylist.BoltOptions{})
			if err != nil {
				b.Fatal(err)
			}
			chainDecide(b, s, i)
			s.Close()
		}
	})
}

func chainDecide(b *testing.B, s greylist.Store, i int) {
	p, err := greylist.NewPolicy(s, greylist.Config{Now: func() time.Time { return benchNow }})
	if err != nil {
		b.Fatal(err)
	}
	o, err := p.Decide(ctx, benchAddr(i%benchKnown))
	if err != nil || o.State != greylist.Known {
		b.Fatalf("%v, %v", o.State, err)
	}
}

func benchAddr(i int) netip.Addr {
	if i%4 == 3 {
		return netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 0xff, byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
	}
	return netip.AddrFrom4([4]byte{10 + byte(i>>16), byte(i >> 8), byte(i), 7})
}

// knownRecord is a network that passed a minute before benchNow: its
// decisions only read.
var knownRecord = greylist.Record{FirstSeen: base, LastPass: benchNow.Add(-time.Minute)}

func benchNetwork(b testing.TB, i int) netip.Prefix {
	p, err := greylist.NewPolicy(greylist.NewMemory(), greylist.Config{})
	if err != nil {
		b.Fatal(err)
	}
	n, err := p.Network(benchAddr(i))
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// fillRedis records the known networks with one pipeline.
func fillRedis(b testing.TB, s *Store) {
	v, err := encodeValue(knownRecord)
	if err != nil {
		b.Fatal(err)
	}
	pipe := s.c.Pipeline()
	for i := range benchKnown {
		pipe.Set(ctx, s.key(benchNetwork(b, i)), v, time.Hour)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
}

// fillStore records the known networks from many goroutines, so that a
// KeepOpen bbolt store batches them.
func fillStore(b testing.TB, s greylist.Store) {
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := w; i < benchKnown; i += 64 {
				if ok, err := s.CompareAndSwap(ctx, benchNetwork(b, i), greylist.Record{}, knownRecord); !ok || err != nil {
					b.Error(ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

var benchFresh atomic.Int64

func benchMix(b *testing.B, s greylist.Store) {
	p, err := greylist.NewPolicy(s, greylist.Config{Now: func() time.Time { return benchNow }})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var all []time.Duration
	var failed atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var lat []time.Duration
		for pb.Next() {
			i, want := rand.IntN(benchKnown), greylist.Known
			if rand.IntN(10) == 0 {
				i, want = benchKnown+int(benchFresh.Add(1)), greylist.New
			}
			start := time.Now()
			o, err := p.Decide(ctx, benchAddr(i))
			lat = append(lat, time.Since(start))
			if err != nil {
				// The store failed (bbolt's lock not had in time): the
				// client would pass. Counted, not fatal.
				failed.Add(1)
				continue
			}
			if o.State != want {
				b.Errorf("network %d: %v; want %v", i, o.State, want)
				return
			}
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	b.ReportMetric(100*float64(failed.Load())/float64(b.N), "failed-%")
	if len(all) > 0 {
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
}
