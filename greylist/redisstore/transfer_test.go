package redisstore

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/greylist/transfer"
)

// TestBoltToRedis is a site's migration: a bbolt greylist exported and
// imported into Redis gives the same `list --json` (less the stale records,
// which Redis would only expire), and back again.
func TestBoltToRedis(t *testing.T) {
	srv := sharedRedis(t)
	bolt, err := greylist.OpenBolt(filepath.Join(t.TempDir(), "greylist.db"), greylist.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	now := base.Add(30 * 24 * time.Hour)
	const nets = 240
	old := scanCount
	scanCount = 40 // many SCAN batches
	defer func() { scanCount = old }()
	for i := range nets {
		// Pending, passed, passed long ago (lapsed), abandoned; both families.
		first := now.Add(-time.Duration(i%4) * 20 * 24 * time.Hour).Add(-time.Hour)
		r := greylist.Record{FirstSeen: first}
		if i%2 == 1 {
			r.LastPass = first.Add(10 * time.Minute)
		}
		if ok, err := bolt.CompareAndSwap(ctx, transferNet(i), greylist.Record{}, r); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	from := policyAt(t, bolt, now)
	var out bytes.Buffer
	if n, err := transfer.Export(ctx, from, &out); err != nil || n != nets {
		t.Fatalf("Export = %d, %v", n, err)
	}

	redis := open(t, srv.URL(), Options{})
	to := policyAt(t, redis, now)
	im, err := transfer.Import(ctx, to, bytes.NewReader(out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := slices.DeleteFunc(listJSON(t, from), func(l string) bool { return strings.Contains(l, `"stale"`) })
	if im.Added != len(want) || im.Stale != nets-len(want) || im.Kept != 0 {
		t.Errorf("Import = %+v; want %d added, %d stale", im, len(want), nets-len(want))
	}
	if got := listJSON(t, to); !slices.Equal(got, want) {
		t.Fatalf("Redis lists %d entries, bbolt %d live ones; first difference: %s", len(got), len(want), firstDiff(got, want))
	}
	t.Logf("%d records exported from bbolt, %+v into Redis", nets, im)

	// And back into an empty bbolt file: the same again.
	bolt2, err := greylist.OpenBolt(filepath.Join(t.TempDir(), "back.db"), greylist.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer bolt2.Close()
	out.Reset()
	if _, err := transfer.Export(ctx, to, &out); err != nil {
		t.Fatal(err)
	}
	back := policyAt(t, bolt2, now)
	if _, err := transfer.Import(ctx, back, &out); err != nil {
		t.Fatal(err)
	}
	if got := listJSON(t, back); !slices.Equal(got, want) {
		t.Fatalf("back in bbolt: first difference: %s", firstDiff(got, want))
	}
}

func transferNet(i int) netip.Prefix {
	if i%3 == 0 {
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, byte(i >> 8), byte(i)}), 64)
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
}

func policyAt(t testing.TB, s greylist.Store, now time.Time) *greylist.Policy {
	t.Helper()
	p, err := greylist.NewPolicy(s, greylist.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// listJSON is `list --json`'s entries, one a line, sorted.
func listJSON(t testing.TB, p *greylist.Policy) []string {
	t.Helper()
	var lines []string
	err := p.List(ctx, func(e greylist.Entry) error {
		e.FirstSeen, e.LastPass = e.FirstSeen.UTC(), e.LastPass.UTC()
		b, err := json.Marshal(e)
		lines = append(lines, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	return lines
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return "got " + got[i] + ", want " + want[i]
		}
	}
	return "one list is longer"
}
