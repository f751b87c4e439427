package greylist_test

import (
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mxfront/mxfront/greylist"
)

const benchNets = 10000

// BenchmarkKeptOpenDecideKnown is one KeepOpen store, decisions from many
// goroutines for networks that passed (reads only).
func BenchmarkKeptOpenDecideKnown(b *testing.B) {
	benchDecide(b, greylist.BoltOptions{KeepOpen: true}, false)
}

// BenchmarkKeptOpenDecideNew is a KeepOpen store for networks never seen:
// every decision writes, and concurrent writes share transactions.
func BenchmarkKeptOpenDecideNew(b *testing.B) {
	benchDecide(b, greylist.BoltOptions{KeepOpen: true}, true)
}

// BenchmarkSharedDecideKnown is serve mode: the file opened per decision
// (no KeepOpen), leaving it usable by chain-mode processes and the admin
// commands (serve's PassCache spares most known clients even that).
func BenchmarkSharedDecideKnown(b *testing.B) {
	benchDecide(b, greylist.BoltOptions{}, false)
}

func benchDecide(b *testing.B, o greylist.BoltOptions, fresh bool) {
	db := filepath.Join(b.TempDir(), "greylist.db")
	populate(b, db, benchNets, 1, 0)
	populate(b, db, benchNets, 1, 6*time.Minute)
	store := openBolt(b, db, o)
	defer store.Close()
	now := base.Add(7 * time.Minute)
	p, err := greylist.NewPolicy(store, greylist.Config{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	next := benchNets
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := rand.IntN(benchNets)
			if fresh {
				mu.Lock()
				i, next = next, next+1
				mu.Unlock()
			}
			o, err := p.Decide(ctx, helperAddr(i))
			if err != nil {
				b.Error(err)
				return
			}
			if want := map[bool]greylist.State{false: greylist.Known, true: greylist.New}[fresh]; o.State != want {
				b.Errorf("state %v, want %v", o.State, want)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkChainKnown is one chain-mode process's work for a network that
// passed: open the store, decide (one read-only open, one read, close).
func BenchmarkChainKnown(b *testing.B) {
	db := filepath.Join(b.TempDir(), "greylist.db")
	populate(b, db, benchNets, 1, 0)
	populate(b, db, benchNets, 1, 6*time.Minute)
	now := base.Add(7 * time.Minute)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		store, err := greylist.OpenBolt(db, greylist.BoltOptions{})
		if err != nil {
			b.Fatal(err)
		}
		p, err := greylist.NewPolicy(store, greylist.Config{Now: func() time.Time { return now }})
		if err != nil {
			b.Fatal(err)
		}
		o, err := p.Decide(ctx, helperAddr(i%benchNets))
		if err != nil || o.State != greylist.Known {
			b.Fatalf("%v, %v", o.State, err)
		}
		store.Close()
	}
}

const million = 1_000_000

var (
	millionOnce sync.Once
	millionPath string
	millionSize int64
)

// millionNetworks builds, once, a file of a million networks in random
// order as traffic would: half of them passed, half abandoned a week ago.
func millionNetworks(b *testing.B) {
	millionOnce.Do(func() {
		dir, err := os.MkdirTemp("", "greylist-million-")
		if err != nil {
			b.Fatal(err)
		}
		millionPath = filepath.Join(dir, "greylist.db")
		db, err := bolt.Open(millionPath, 0o600, &bolt.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		now := base.Add(8 * 24 * time.Hour)
		order := rand.Perm(million)
		for start := 0; start < million; start += 50000 {
			err := db.Update(func(tx *bolt.Tx) error {
				bk, err := tx.CreateBucketIfNotExists([]byte("networks"))
				if err != nil {
					return err
				}
				for _, i := range order[start:min(start+50000, million)] {
					n := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i >> 16), byte(i >> 8), byte(i), 0}), 24)
					if i%4 == 0 { // and a quarter IPv6
						n = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, byte(i >> 16), byte(i >> 8), byte(i)}), 64)
					}
					r := greylist.Record{FirstSeen: base, LastPass: now.Add(-time.Hour)}
					if i%2 == 1 {
						r = greylist.Record{FirstSeen: base}
					}
					if err := bk.Put(greylist.Encode(n, r)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := db.Sync(); err != nil {
			b.Fatal(err)
		}
		db.Close()
		fi, _ := os.Stat(millionPath)
		millionSize = fi.Size()
	})
}

// BenchmarkExpireMillion times Expire on a file of a million networks, half
// of them due, and reports the file's size before and after compaction.
func BenchmarkExpireMillion(b *testing.B) {
	millionNetworks(b)
	now := base.Add(8 * 24 * time.Hour)
	var compacted int64
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "greylist.db")
		copyFile(b, millionPath, path)
		store := openBolt(b, path, greylist.BoltOptions{})
		p, err := greylist.NewPolicy(store, greylist.Config{Now: func() time.Time { return now }})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		e, err := p.Expire(ctx)
		b.StopTimer()
		if err != nil || e.Abandoned != million/2 {
			b.Fatalf("Expire = %+v, %v", e, err)
		}
		c, err := store.Compact(ctx)
		if err != nil {
			b.Fatal(err)
		}
		compacted = c.After
		b.StartTimer()
	}
	b.ReportMetric(float64(millionSize)/1e6, "MB-1M")
	b.ReportMetric(float64(compacted)/1e6, "MB-500k-compacted")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s-expire")
}

func copyFile(b *testing.B, from, to string) {
	in, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}
