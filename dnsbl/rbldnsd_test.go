package dnsbl

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// The lists as a real DNSBL server, rbldnsd, serves them.
func startRbldnsd(t *testing.T) *testpeer.Rbldnsd {
	return testpeer.StartRbldnsd(t,
		testpeer.RbldnsdZone{Name: "bl4.test", Type: "ip4set", Data: `
:127.0.0.2:Listed by bl4, see https://bl4.test/?$
127.0.0.2
192.0.2.0/24
!192.0.2.7
198.51.100.9 :127.0.0.10:Open proxy $
203.0.113.254 :127.255.255.254:Query refused: public resolver
`},
		testpeer.RbldnsdZone{Name: "trie4.test", Type: "ip4trie", Data: `
:127.0.0.4:trie lists $
127.0.0.2/32
203.0.113.0/25
!203.0.113.5/32
`},
		testpeer.RbldnsdZone{Name: "six.test", Type: "ip4set", Data: "127.0.0.2 :127.0.0.2:v4 test point\n"},
		testpeer.RbldnsdZone{Name: "six.test", Type: "ip6trie", Data: `
:127.0.0.2:IPv6 listed
2001:db8:1::/48
::1
::ffff:7f00:2
`},
		testpeer.RbldnsdZone{Name: "wl.test", Type: "ip4set", Data: ":127.0.2.0:\n127.0.0.2\n192.0.2.0/24\n"},
		testpeer.RbldnsdZone{Name: "all.test", Type: "ip4trie", Data: ":127.0.0.2:everyone\n0/0\n"},
		testpeer.RbldnsdZone{Name: "public.test", Type: "ip4trie", Data: ":127.255.255.254:public resolver\n0/0\n"},
		testpeer.RbldnsdZone{Name: "empty.test", Type: "ip4set", Data: "# nothing listed\n"},
	)
}

func TestRbldnsd(t *testing.T) {
	rbl := startRbldnsd(t)
	checker := func(t *testing.T, specs ...string) *Checker {
		return newChecker(t, Config{Zones: zones(t, specs...), Servers: []string{rbl.Addr}, Timeout: 2 * time.Second})
	}
	ask := func(c *Checker, ip string) *Result {
		return c.Check(context.Background(), netip.MustParseAddr(ip))
	}

	t.Run("ip4set", func(t *testing.T) {
		c := checker(t, "bl4.test")
		r := ask(c, "192.0.2.1")
		if !r.Zones[0].Listed || r.Score != 1 || r.Text != "Listed by bl4, see https://bl4.test/?192.0.2.1" {
			t.Errorf("192.0.2.1: listed %v score %d text %q err %v", r.Zones[0].Listed, r.Score, r.Text, r.Zones[0].Err)
		}
		for _, ip := range []string{"192.0.2.7", "10.1.2.3"} {
			if r := ask(c, ip); r.Zones[0].Listed || r.Failed() || r.Score != 0 {
				t.Errorf("%s: listed %v err %v", ip, r.Zones[0].Listed, r.Zones[0].Err)
			}
		}
		// IPv4-mapped IPv6 is asked as IPv4.
		if r := ask(c, "::ffff:192.0.2.1"); !r.Zones[0].Listed || r.Zones[0].Query != "1.2.0.192.bl4.test" {
			t.Errorf("mapped: listed %v query %s", r.Zones[0].Listed, r.Zones[0].Query)
		}
	})

	t.Run("filter and weight", func(t *testing.T) {
		c := checker(t, "bl4.test=127.0.0.10*3")
		if r := ask(c, "198.51.100.9"); r.Score != 3 || r.Text != "Open proxy 198.51.100.9" {
			t.Errorf("proxy: score %d text %q", r.Score, r.Text)
		}
		if r := ask(c, "192.0.2.1"); r.Zones[0].Listed {
			t.Errorf("127.0.0.2 answer passed the filter 127.0.0.10")
		}
	})

	t.Run("error entry", func(t *testing.T) {
		r := ask(checker(t, "bl4.test"), "203.0.113.254")
		e := r.Zones[0].Err
		if r.Zones[0].Listed || r.Score != 0 || e == nil || e.Cause != ErrorCode ||
			e.Error() != "dnsbl: bl4.test: query 254.113.0.203.bl4.test: error answer 127.255.255.254" {
			t.Errorf("error entry: listed %v score %d err %v", r.Zones[0].Listed, r.Score, e)
		}
	})

	t.Run("ip4trie", func(t *testing.T) {
		c := checker(t, "trie4.test")
		if r := ask(c, "203.0.113.1"); !r.Zones[0].Listed || r.Text != "trie lists 203.0.113.1" ||
			!slices.Equal(r.Zones[0].Answers, []netip.Addr{netip.MustParseAddr("127.0.0.4")}) {
			t.Errorf("203.0.113.1: listed %v text %q answers %v", r.Zones[0].Listed, r.Text, r.Zones[0].Answers)
		}
		for _, ip := range []string{"203.0.113.5", "203.0.113.200"} {
			if r := ask(c, ip); r.Zones[0].Listed || r.Failed() {
				t.Errorf("%s: listed %v err %v", ip, r.Zones[0].Listed, r.Zones[0].Err)
			}
		}
	})

	t.Run("ip6trie", func(t *testing.T) {
		c := checker(t, "six.test")
		for _, ip := range []string{"2001:db8:1::25", "::1"} {
			if r := ask(c, ip); !r.Zones[0].Listed || r.Text != "IPv6 listed" {
				t.Errorf("%s: listed %v text %q err %v", ip, r.Zones[0].Listed, r.Text, r.Zones[0].Err)
			}
		}
		if r := ask(c, "2001:db8:2::1"); r.Zones[0].Listed || r.Failed() {
			t.Errorf("2001:db8:2::1: listed %v err %v", r.Zones[0].Listed, r.Zones[0].Err)
		}
	})

	t.Run("weights summed and allow list", func(t *testing.T) {
		r := ask(checker(t, "bl4.test*2", "trie4.test"), "127.0.0.2")
		if r.Score != 3 || r.Outcome(3, -1) != Blocked || r.TextZone != "bl4.test" {
			t.Errorf("two lists: score %d outcome %v text from %s", r.Score, r.Outcome(3, -1), r.TextZone)
		}
		r = ask(checker(t, "bl4.test*2", "trie4.test", "wl:wl.test*5"), "127.0.0.2")
		if r.Score != -2 || r.Outcome(1, -1) != Trusted || !slices.Equal(r.AllowedBy(), []string{"wl.test"}) {
			t.Errorf("allowed: score %d outcome %v allowed %v", r.Score, r.Outcome(1, -1), r.AllowedBy())
		}
	})

	t.Run("zone not served", func(t *testing.T) {
		// rbldnsd refuses zones it does not serve.
		r := ask(checker(t, "other.test"), "127.0.0.2")
		if e := r.Zones[0].Err; r.Zones[0].Listed || e == nil || e.Cause != Refused {
			t.Errorf("unserved zone: %v", e)
		}
	})

	t.Run("health", func(t *testing.T) {
		names := []string{"bl4.test", "trie4.test", "six.test", "empty.test", "all.test", "public.test", "other.test"}
		want := []Status{OK, OK, OK, Dead, AnsweringAll, Refusing, Refusing}
		hs := checker(t, names...).Health(context.Background())
		for i, h := range hs {
			if h.Zone != names[i] || h.Status != want[i] {
				t.Errorf("%s: %v (%s), want %v", h.Zone, h.Status, h.Detail, want[i])
			}
			// rbldnsd answers ::FFFF:7F00:2 from IPv4 data too.
			if h.IPv6 != slices.Contains([]string{"bl4.test", "trie4.test", "six.test", "all.test"}, h.Zone) {
				t.Errorf("%s: IPv6 %v (%s)", h.Zone, h.IPv6, h.Detail)
			}
		}
	})
}

// A list server that is gone: the zone is dead and the client passes
// within the deadline.
func TestRbldnsdGone(t *testing.T) {
	rbl := startRbldnsd(t)
	rbl.Stop()
	c := newChecker(t, Config{Zones: zones(t, "bl4.test"), Servers: []string{rbl.Addr},
		Timeout: 500 * time.Millisecond})
	r := c.Check(context.Background(), netip.MustParseAddr("192.0.2.1"))
	if r.Zones[0].Listed || !r.Failed() || r.Outcome(1, -1) != Neutral {
		t.Errorf("gone: listed %v failed %v", r.Zones[0].Listed, r.Failed())
	}
	if h := c.Health(context.Background()); h[0].Status != Dead {
		t.Errorf("health %v (%s)", h[0].Status, h[0].Detail)
	}
}
