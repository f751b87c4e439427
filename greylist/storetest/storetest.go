// Package storetest is the conformance suite every greylist.Store must pass.
package storetest

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
)

// Run checks the store that newStore returns, a fresh and empty one for
// each subtest; Run closes it.
func Run(t *testing.T, newStore func(t *testing.T) greylist.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, greylist.Store)
	}{
		{"Empty", testEmpty},
		{"CreateAndGet", testCreateAndGet},
		{"CompareFails", testCompareFails},
		{"SwapToZeroDeletes", testSwapToZeroDeletes},
		{"Delete", testDelete},
		{"NetworksAreDistinct", testDistinct},
		{"Times", testTimes},
		{"Scan", testScan},
		{"ScanStops", testScanStops},
		{"ScanMayUseStore", testScanMayUseStore},
		{"ScanCanceled", testScanCanceled},
		{"Expire", testExpire},
		{"Stats", testStats},
		{"OneCreatorWins", testOneCreatorWins},
		{"NoLostUpdates", testNoLostUpdates},
		{"Closed", testClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
}

var (
	ctx  = context.Background()
	base = time.Unix(1_750_000_000, 0)
	v4   = netip.MustParsePrefix("192.0.2.0/24")
	v6   = netip.MustParsePrefix("2001:db8:1:2::/64")
)

func rec(first, last int) greylist.Record {
	r := greylist.Record{FirstSeen: base.Add(time.Duration(first) * time.Second)}
	if last != 0 {
		r.LastPass = base.Add(time.Duration(last) * time.Second)
	}
	return r
}

// network returns the i-th of many (up to 65536) distinct networks, both
// families.
func network(i int) netip.Prefix {
	if i%2 == 0 {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
	}
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 16), byte(i >> 8), byte(i)}
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

func get(t *testing.T, s greylist.Store, n netip.Prefix) greylist.Record {
	t.Helper()
	r, err := s.Get(ctx, n)
	if err != nil {
		t.Fatalf("Get(%v): %v", n, err)
	}
	return r
}

func cas(t *testing.T, s greylist.Store, n netip.Prefix, old, new greylist.Record) bool {
	t.Helper()
	ok, err := s.CompareAndSwap(ctx, n, old, new)
	if err != nil {
		t.Fatalf("CompareAndSwap(%v, %v, %v): %v", n, old, new, err)
	}
	return ok
}

func mustEqual(t *testing.T, n netip.Prefix, got, want greylist.Record) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("record of %v = %+v, want %+v", n, got, want)
	}
}

func testEmpty(t *testing.T, s greylist.Store) {
	if r := get(t, s, v4); !r.IsZero() {
		t.Fatalf("empty store: Get = %+v", r)
	}
	if found, err := s.Delete(ctx, v4); err != nil || found {
		t.Fatalf("empty store: Delete = %v, %v", found, err)
	}
	n, err := s.Expire(ctx, func(netip.Prefix, greylist.Record) bool { return true })
	if err != nil || n != 0 {
		t.Fatalf("empty store: Expire = %d, %v", n, err)
	}
}

func testCreateAndGet(t *testing.T, s greylist.Store) {
	r := rec(0, 0)
	if !cas(t, s, v4, greylist.Record{}, r) {
		t.Fatal("creating a record failed")
	}
	mustEqual(t, v4, get(t, s, v4), r)
	if r := get(t, s, v6); !r.IsZero() {
		t.Fatalf("another network has record %+v", r)
	}
}

func testCompareFails(t *testing.T, s greylist.Store) {
	r1, r2, r3 := rec(0, 0), rec(0, 400), rec(5, 0)
	cas(t, s, v4, greylist.Record{}, r1)
	if cas(t, s, v4, greylist.Record{}, r2) {
		t.Fatal("creating over an existing record succeeded")
	}
	if cas(t, s, v4, r3, r2) {
		t.Fatal("swap from a wrong old record succeeded")
	}
	mustEqual(t, v4, get(t, s, v4), r1)
	if !cas(t, s, v4, r1, r2) {
		t.Fatal("swap from the right old record failed")
	}
	mustEqual(t, v4, get(t, s, v4), r2)
	if cas(t, s, v6, r2, r1) {
		t.Fatal("swap of an absent record succeeded")
	}
	if r := get(t, s, v6); !r.IsZero() {
		t.Fatalf("failed swap created %+v", r)
	}
}

func testSwapToZeroDeletes(t *testing.T, s greylist.Store) {
	r := rec(0, 0)
	cas(t, s, v4, greylist.Record{}, r)
	if !cas(t, s, v4, r, greylist.Record{}) {
		t.Fatal("swap to zero failed")
	}
	if got := get(t, s, v4); !got.IsZero() {
		t.Fatalf("after swap to zero: %+v", got)
	}
	if !cas(t, s, v4, greylist.Record{}, r) {
		t.Fatal("record cannot be created again after deletion")
	}
}

func testDelete(t *testing.T, s greylist.Store) {
	cas(t, s, v4, greylist.Record{}, rec(0, 0))
	cas(t, s, v6, greylist.Record{}, rec(1, 0))
	if found, err := s.Delete(ctx, v4); err != nil || !found {
		t.Fatalf("Delete = %v, %v; want true", found, err)
	}
	if found, err := s.Delete(ctx, v4); err != nil || found {
		t.Fatalf("second Delete = %v, %v; want false", found, err)
	}
	if r := get(t, s, v4); !r.IsZero() {
		t.Fatalf("deleted record still there: %+v", r)
	}
	mustEqual(t, v6, get(t, s, v6), rec(1, 0))
}

func testDistinct(t *testing.T, s greylist.Store) {
	nets := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("192.0.2.0/25"),
		netip.MustParsePrefix("192.0.3.0/24"),
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("::/64"),
		netip.MustParsePrefix("::/96"),
		netip.MustParsePrefix("::ffff:192.0.2.0/120"),
		netip.MustParsePrefix("2001:db8::/64"),
		netip.MustParsePrefix("2001:db8::/48"),
	}
	for i, n := range nets {
		if !cas(t, s, n, greylist.Record{}, rec(i, 0)) {
			t.Fatalf("creating %v failed: it collides with another network", n)
		}
	}
	for i, n := range nets {
		mustEqual(t, n, get(t, s, n), rec(i, 0))
	}
	seen := map[netip.Prefix]bool{}
	err := s.Scan(ctx, func(n netip.Prefix, _ greylist.Record) error {
		seen[n] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		if !seen[n] {
			t.Errorf("Scan did not return %v as it was stored; got %v", n, seen)
		}
	}
}

func testTimes(t *testing.T, s greylist.Store) {
	for i, r := range []greylist.Record{
		{FirstSeen: time.Unix(1, 0)},
		{FirstSeen: time.Unix(1, 0), LastPass: time.Unix(2, 0)},
		{FirstSeen: time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC), LastPass: time.Date(2106, 2, 1, 0, 0, 0, 0, time.UTC)},
		{FirstSeen: base.Add(time.Hour), LastPass: base},
	} {
		n := network(i)
		cas(t, s, n, greylist.Record{}, r)
		mustEqual(t, n, get(t, s, n), r)
	}
}

func fill(t *testing.T, s greylist.Store, count int) {
	t.Helper()
	for i := range count {
		cas(t, s, network(i), greylist.Record{}, rec(i, 0))
	}
}

func testScan(t *testing.T, s greylist.Store) {
	const count = 600 // more than one chunk of a store that works in chunks
	fill(t, s, count)
	seen := make(map[netip.Prefix]int)
	err := s.Scan(ctx, func(n netip.Prefix, r greylist.Record) error {
		seen[n]++
		i := int(r.FirstSeen.Sub(base) / time.Second)
		if network(i) != n {
			t.Errorf("Scan gave %v with the record of %v", n, network(i))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != count {
		t.Fatalf("Scan saw %d networks, want %d", len(seen), count)
	}
	for n, c := range seen {
		if c != 1 {
			t.Errorf("Scan gave %v %d times", n, c)
		}
	}
}

func testScanStops(t *testing.T, s greylist.Store) {
	fill(t, s, 20)
	stop := errors.New("stop")
	calls := 0
	err := s.Scan(ctx, func(netip.Prefix, greylist.Record) error {
		calls++
		if calls == 5 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 5 {
		t.Fatalf("Scan returned %v after %d calls; want fn's error after 5", err, calls)
	}
}

func testScanMayUseStore(t *testing.T, s greylist.Store) {
	fill(t, s, 50)
	done := make(chan error, 1)
	go func() {
		done <- s.Scan(ctx, func(n netip.Prefix, r greylist.Record) error {
			if _, err := s.Delete(ctx, n); err != nil {
				return err
			}
			_, err := s.CompareAndSwap(ctx, v6, greylist.Record{}, rec(0, 0))
			return err
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Scan deadlocked when fn used the store")
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records > 1 {
		t.Fatalf("%d records left after deleting each in Scan", st.Records)
	}
}

func testScanCanceled(t *testing.T, s greylist.Store) {
	fill(t, s, 3)
	c, cancel := context.WithCancel(ctx)
	cancel()
	err := s.Scan(c, func(netip.Prefix, greylist.Record) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Scan with a canceled context = %v", err)
	}
}

func testExpire(t *testing.T, s greylist.Store) {
	const count = 600
	fill(t, s, count)
	said := 0
	n, err := s.Expire(ctx, func(n netip.Prefix, r greylist.Record) bool {
		i := int(r.FirstSeen.Sub(base) / time.Second)
		if network(i) != n {
			t.Errorf("Expire judged %v with the record of %v", n, network(i))
		}
		if i%3 == 0 {
			said++
			return true
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	want := (count + 2) / 3
	if n != want || said != want {
		t.Fatalf("Expire deleted %d (stale said yes %d times), want %d", n, said, want)
	}
	for i := range count {
		r := get(t, s, network(i))
		if i%3 == 0 && !r.IsZero() {
			t.Fatalf("stale %v survived", network(i))
		}
		if i%3 != 0 {
			mustEqual(t, network(i), r, rec(i, 0))
		}
	}
}

func testStats(t *testing.T, s greylist.Store) {
	fill(t, s, 123)
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 123 || st.Bytes <= 0 {
		t.Fatalf("Stats = %+v, want 123 records and some bytes", st)
	}
}

func testOneCreatorWins(t *testing.T, s greylist.Store) {
	const workers = 16
	var wg sync.WaitGroup
	wins := make(chan int, workers)
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			ok, err := s.CompareAndSwap(ctx, v4, greylist.Record{}, rec(i+1, 0))
			if err != nil {
				errs <- err
			}
			if ok {
				wins <- i
			}
		})
	}
	wg.Wait()
	close(wins)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var winners []int
	for w := range wins {
		winners = append(winners, w)
	}
	if len(winners) != 1 {
		t.Fatalf("%d creators won: %v", len(winners), winners)
	}
	mustEqual(t, v4, get(t, s, v4), rec(winners[0]+1, 0))
}

func testNoLostUpdates(t *testing.T, s greylist.Store) {
	// Each worker moves LastPass on by a second, by reading and swapping,
	// as the policy does; a lost update would show as a smaller total.
	const workers, each = 6, 5
	cas(t, s, v4, greylist.Record{}, rec(0, 1))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for done := 0; done < each; {
				cur, err := s.Get(ctx, v4)
				if err != nil {
					errs <- err
					return
				}
				next := cur
				next.LastPass = cur.LastPass.Add(time.Second)
				ok, err := s.CompareAndSwap(ctx, v4, cur, next)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					done++
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	mustEqual(t, v4, get(t, s, v4), rec(0, 1+workers*each))
}

func testClosed(t *testing.T, s greylist.Store) {
	cas(t, s, v4, greylist.Record{}, rec(0, 0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, v4); err == nil {
		t.Error("Get after Close succeeded")
	}
	if _, err := s.CompareAndSwap(ctx, v4, greylist.Record{}, rec(0, 0)); err == nil {
		t.Error("CompareAndSwap after Close succeeded")
	}
	if err := s.Scan(ctx, func(netip.Prefix, greylist.Record) error { return nil }); err == nil {
		t.Error("Scan after Close succeeded")
	}
}
