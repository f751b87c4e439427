package testpeer

import (
	"strconv"
	"testing"
)

// Ports handed out stay reserved until the test ends: another claim of one
// fails (as it does from another process), and none repeats or falls in
// the ephemeral range, where the kernel's own choices would collide.
func TestFreePortReserves(t *testing.T) {
	low, high := portRange()
	seen := map[int]bool{}
	for i := 0; i < 50; i++ {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < low || p >= high {
			t.Fatalf("port %d outside [%d, %d)", p, low, high)
		}
		if lock, ok := claim(strconv.Itoa(p)); ok {
			release(lock)
			t.Fatalf("port %d claimed again while reserved", p)
		}
	}
	var released int
	t.Run("released", func(t *testing.T) { released = FreePort(t) })
	lock, ok := claim(strconv.Itoa(released))
	if !ok {
		t.Fatalf("port %d still reserved after its test ended", released)
	}
	release(lock)
}

// A loopback address for port 53 is reserved as a port is.
func TestFreeDNSAddrReserves(t *testing.T) {
	a, b := FreeDNSAddr(t), FreeDNSAddr(t)
	if a == b {
		t.Fatalf("%s handed out twice", a)
	}
	if lock, ok := claim(a + ":53"); ok {
		release(lock)
		t.Fatalf("%s:53 claimed again while reserved", a)
	}
}
