package relay

import (
	"strings"
	"testing"
)

// BenchmarkDataScanner: finding the end of a 10 MB message in 16 KiB
// reads, the relay's own work per octet of DATA.
func BenchmarkDataScanner(b *testing.B) {
	msg := []byte(strings.Repeat(strings.Repeat("0123456789", 7)+"\r\n", 10<<20/72))
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		var sc dataScanner
		for off := 0; off < len(msg); off += clientBuffer {
			sc.scan(msg[off:min(off+clientBuffer, len(msg))])
		}
	}
}

// BenchmarkSession: one pipelined session through the relay (its
// socketpairs, PROGRAM a goroutine): the relay's cost per session.
func BenchmarkSession(b *testing.B) {
	in := "EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n" + msg + "QUIT\r\n"
	for b.Loop() {
		res := run{in: in}.go_(b)
		if !strings.HasSuffix(res.out, "221 2.0.0 Bye\r\n") {
			b.Fatalf("%q", res.out)
		}
	}
}
