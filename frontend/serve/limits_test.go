package serve

import (
	"net/netip"
	"testing"
)

// The per-IP count is by /32 and /64, and the map forgets a network whose
// last connection ended, so its size follows the connections.
func TestTally(t *testing.T) {
	var ta tally
	ip := netip.MustParseAddr
	for _, a := range []string{"192.0.2.1", "192.0.2.1", "2001:db8::1", "2001:db8::ffff:1"} {
		if !ta.takeNet(ip(a), 2) {
			t.Fatalf("%s refused under the limit", a)
		}
	}
	if ta.takeNet(ip("::ffff:192.0.2.1"), 2) {
		t.Error("a third connection of 192.0.2.1 (IPv4-mapped) passed a limit of 2")
	}
	if ta.takeNet(ip("2001:db8::2"), 2) {
		t.Error("a third connection of 2001:db8::/64 passed a limit of 2")
	}
	if !ta.takeNet(ip("192.0.2.2"), 2) || !ta.takeNet(ip("2001:db8:0:1::1"), 2) {
		t.Error("another /32 or /64 was refused")
	}
	for _, a := range []string{"192.0.2.1", "192.0.2.1", "2001:db8::1", "2001:db8::ffff:1", "192.0.2.2", "2001:db8:0:1::1"} {
		ta.dropNet(ip(a))
	}
	if n := ta.nets(); n != 0 {
		t.Errorf("%d networks still counted after every connection ended", n)
	}
	if !ta.takeNet(ip("192.0.2.1"), 0) {
		t.Error("0 is no limit")
	}

	for i := 0; i < 3; i++ {
		if !ta.takeConn(3) || !ta.takeChild(3) {
			t.Fatal("refused under the limit")
		}
	}
	if ta.takeConn(3) || ta.takeChild(3) {
		t.Error("over the limit")
	}
	ta.dropConn()
	ta.dropChild()
	if !ta.takeConn(3) || !ta.takeChild(3) {
		t.Error("a freed place was not given again")
	}
}

func TestClientNet(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7/32",
		"::ffff:192.0.2.7":     "192.0.2.7/32",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
	} {
		if got := clientNet(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("clientNet(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestCeilings(t *testing.T) {
	for _, tc := range []struct {
		fds             uint64
		pidfds          bool
		conns, children int
	}{
		{1024, true, 480, 0},
		{100, true, 18, 0},
		{10, true, 1, 0},
		{1 << 40, true, (1<<30 - fdReserve) / 2, 0},
		{1 << 20, false, (1<<20 - fdReserve) / 2, threadCeiling},
	} {
		if c, ch := ceilings(tc.fds, tc.pidfds); c != tc.conns || ch != tc.children {
			t.Errorf("ceilings(%d, %v) = %d, %d; want %d, %d", tc.fds, tc.pidfds, c, ch, tc.conns, tc.children)
		}
	}
	for _, tc := range []struct {
		configured, ceiling, want int
		hard                      bool
	}{
		{0, 0, 0, false}, {500, 0, 500, false}, {0, 18, 18, true}, {500, 18, 18, true}, {10, 18, 10, false}, {18, 18, 18, false},
	} {
		if got, hard := limit(tc.configured, tc.ceiling); got != tc.want || hard != tc.hard {
			t.Errorf("limit(%d, %d) = %d, %v; want %d, %v", tc.configured, tc.ceiling, got, hard, tc.want, tc.hard)
		}
	}
}
