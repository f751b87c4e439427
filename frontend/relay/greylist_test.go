package relay

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/greylist"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func tripletGreylist(t *testing.T, c *clock) (*Greylist, greylist.Store) {
	t.Helper()
	store := greylist.NewMemory()
	cfg := greylist.Config{Delay: 5 * time.Minute, Window: time.Hour, Lifetime: 36 * 24 * time.Hour, Now: c.now}
	nets, err := greylist.NewPolicy(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.V6Prefix = 128
	trip, err := greylist.NewPolicy(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Greylist{Networks: nets, Triplets: trip}, store
}

// First RCPT of a triplet: 451. The same triplet after the delay passes;
// another recipient in that session is still new (451); the next session
// finds the network passing, whatever the triplet.
func TestTripletGreylisting(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	g, store := tripletGreylist(t, c)
	session := func(rcpts ...string) string {
		in := "EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\n"
		for _, r := range rcpts {
			in += "RCPT TO:<" + r + ">\r\n"
		}
		return run{cfg: Config{Greylist: g}, in: in + "QUIT\r\n"}.go_(t).out
	}
	out := session("a@example.test")
	if !strings.Contains(out, "451 4.7.1 Greylisted: please try again in 300s\r\n") {
		t.Fatalf("first attempt:\n%s", out)
	}
	c.add(2 * time.Minute)
	if out = session("a@example.test"); !strings.Contains(out, "451 4.7.1 Greylisted: please try again in 180s") {
		t.Fatalf("too early:\n%s", out)
	}
	c.add(4 * time.Minute)
	out = session("a@example.test", "b@example.test")
	if !strings.Contains(out, "250 2.1.5 Ok\r\n451 4.7.1 Greylisted") {
		t.Fatalf("after the delay:\n%s", out)
	}
	out = session("c@example.test", "d@example.test")
	if strings.Contains(out, "451") {
		t.Fatalf("the network did not pass after its triplet did:\n%s", out)
	}
	// The records: the network (passed) and three triplets under 100::/64.
	var nets, triplets int
	_ = store.Scan(context.Background(), func(n netip.Prefix, r greylist.Record) error {
		if netip.MustParsePrefix("100::/64").Contains(n.Addr()) && n.Bits() == 128 {
			triplets++
		} else if n.String() == "192.0.2.0/24" && !r.LastPass.IsZero() {
			nets++
		}
		return nil
	})
	if nets != 1 || triplets != 2 {
		t.Errorf("%d passed networks and %d triplets in the store, want 1 and 2", nets, triplets)
	}
}

// Trusted clients and those on the skip list are not greylisted; a
// different sender is a different triplet; --greylist-action log records
// nothing.
func TestTripletExemptions(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	g, store := tripletGreylist(t, c)
	in := "EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.test>\r\nQUIT\r\n"
	trusted := frontend.Verdict{Action: frontend.Trusted, By: frontend.ByAllowList}
	if out := (run{cfg: Config{Greylist: g}, verdict: trusted, in: in}).go_(t).out; strings.Contains(out, "451") {
		t.Fatalf("trusted:\n%s", out)
	}
	g.Skip = &frontend.NetList{}
	if err := g.Skip.Add("192.0.2.0/24", "", "test"); err != nil {
		t.Fatal(err)
	}
	if out := (run{cfg: Config{Greylist: g}, in: in}).go_(t).out; strings.Contains(out, "451") {
		t.Fatalf("skipped:\n%s", out)
	}
	g.Skip = nil
	g.LogOnly = true
	res := run{cfg: Config{Greylist: g}, in: in}.go_(t)
	if strings.Contains(res.out, "451") || !strings.Contains(res.log, "greylisted (new") {
		t.Fatalf("log only:\n%s\n%s", res.out, res.log)
	}
	st, _ := store.Stats(context.Background())
	if st.Records != 0 {
		t.Errorf("log only wrote %d records", st.Records)
	}
	if TripletAddr(netip.MustParsePrefix("192.0.2.0/24"), "s@example.org", "a@example.test") ==
		TripletAddr(netip.MustParsePrefix("192.0.2.0/24"), "t@example.org", "a@example.test") {
		t.Error("two senders, one triplet")
	}
}
