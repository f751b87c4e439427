package greylist_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
)

// adminFixture records: a pending network, a passing one, an abandoned one
// (never retried within the window) and a lapsed one (passed long ago).
func adminFixture(t *testing.T, s greylist.Store) (*greylist.Policy, *clock) {
	p, clk := newPolicy(t, s)
	at := func(off time.Duration, addr string) {
		clk.t = base.Add(off)
		decide(t, p, addr)
	}
	at(0, "198.51.100.1")       // lapsed: passes at 10m, then silent for 40 days
	at(10*m, "198.51.100.1")    //
	at(39*d, "203.0.113.1")     // abandoned: never retried
	at(40*d, "192.0.2.1")       // passing
	at(40*d+6*m, "192.0.2.1")   //
	at(40*d+7*m, "2001:db8::1") // pending
	clk.t = base.Add(40*d + 8*m)
	return p, clk
}

func TestListAndStats(t *testing.T) {
	p, _ := adminFixture(t, greylist.NewMemory())
	got := map[string]greylist.Status{}
	err := p.List(ctx, func(e greylist.Entry) error {
		got[e.Network.String()] = e.Status
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]greylist.Status{
		"198.51.100.0/24": greylist.Stale,
		"203.0.113.0/24":  greylist.Stale,
		"192.0.2.0/24":    greylist.Passing,
		"2001:db8::/64":   greylist.Pending,
	}
	if len(got) != len(want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	for n, s := range want {
		if got[n] != s {
			t.Errorf("%s: %v, want %v", n, got[n], s)
		}
	}
	st, err := p.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 1 || st.Passing != 1 || st.Stale != 2 || st.Bytes <= 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestEntryJSON(t *testing.T) {
	e := greylist.Entry{
		Network:   netip.MustParsePrefix("192.0.2.0/24"),
		FirstSeen: time.Unix(0, 0).UTC(),
		Status:    greylist.Pending,
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"network":"192.0.2.0/24","first_seen":"1970-01-01T00:00:00Z","status":"pending"}`
	if string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
}

func TestExpire(t *testing.T) {
	store := greylist.NewMemory()
	p, _ := adminFixture(t, store)
	e, err := p.Expire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if e != (greylist.Expired{Abandoned: 1, Lapsed: 1}) {
		t.Fatalf("Expire = %+v", e)
	}
	st, _ := store.Stats(ctx)
	if st.Records != 2 {
		t.Fatalf("%d records left, want 2", st.Records)
	}
	if e, _ := p.Expire(ctx); e != (greylist.Expired{}) {
		t.Fatalf("second Expire = %+v", e)
	}
	// What Expire left decides as before.
	if o := decide(t, p, "192.0.2.9"); o.State != greylist.Known {
		t.Fatalf("passing network after Expire: %v", o.State)
	}
}

func TestAllowAndRemove(t *testing.T) {
	p, clk := newPolicy(t, greylist.NewMemory())
	n, err := p.ParseNetwork("192.0.2.0/24")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Allow(ctx, n); err != nil {
		t.Fatal(err)
	}
	if o := decide(t, p, "192.0.2.1"); o.State != greylist.Known {
		t.Fatalf("allowed network: %v", o.State)
	}
	clk.t = base.Add(36 * d)
	if o := decide(t, p, "192.0.2.1"); o.State != greylist.Known {
		t.Fatalf("allowed network within its lifetime: %v", o.State)
	}
	// Allow of a greylisted network keeps its first-seen time.
	decide(t, p, "203.0.113.1")
	clk.t = clk.t.Add(time.Minute)
	if err := p.Allow(ctx, netip.MustParsePrefix("203.0.113.0/24")); err != nil {
		t.Fatal(err)
	}
	o := decide(t, p, "203.0.113.1")
	if o.State != greylist.Known || o.Age != time.Minute {
		t.Fatalf("allowed greylisted network: %v age %v", o.State, o.Age)
	}
	if found, err := p.Remove(ctx, n); err != nil || !found {
		t.Fatalf("Remove = %v, %v", found, err)
	}
	if found, err := p.Remove(ctx, n); err != nil || found {
		t.Fatalf("second Remove = %v, %v", found, err)
	}
	if o := decide(t, p, "192.0.2.1"); o.State != greylist.New {
		t.Fatalf("removed network: %v", o.State)
	}
}

func TestExpireEvery(t *testing.T) {
	store := greylist.NewMemory()
	p, _ := adminFixture(t, store)
	c, cancel := context.WithCancel(ctx)
	reports := make(chan greylist.Expired, 10)
	done := make(chan error, 1)
	go func() {
		done <- p.ExpireEvery(c, time.Millisecond, func(e greylist.Expired, err error) {
			if err != nil {
				t.Error(err)
			}
			reports <- e
		})
	}()
	if e := <-reports; e != (greylist.Expired{Abandoned: 1, Lapsed: 1}) {
		t.Fatalf("first run: %+v", e)
	}
	if e := <-reports; e != (greylist.Expired{}) {
		t.Fatalf("second run: %+v", e)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("ExpireEvery returned %v", err)
	}
	if err := p.ExpireEvery(ctx, 0, nil); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Fatalf("zero interval: %v", err)
	}
}
