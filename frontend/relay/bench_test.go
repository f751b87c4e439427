package relay

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"time"
)

// BenchmarkDataScanner: finding the end of a 10 MB message in reads of
// the DATA buffer's size, the relay's own work per octet of DATA, for four
// bodies: lines of digits (as test/load sends), base64 (no dot at all:
// the bulk of a big message), English text (a dot every sentence) and
// every line dot-stuffed (each line's start is looked at); "octet" is the
// octet-at-a-time scanner this one replaced, beside it.
func BenchmarkDataScanner(b *testing.B) {
	for _, body := range benchBodies {
		msg := bigMessage(10<<20, body.line)
		b.Run(body.name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				var sc dataScanner
				for off := 0; off < len(msg); off += dataBuffer {
					sc.scan(msg[off:min(off+dataBuffer, len(msg))])
				}
			}
		})
		b.Run(body.name+"/octet", func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				var sc octetScanner
				for off := 0; off < len(msg); off += dataBuffer {
					sc.scan(msg[off:min(off+dataBuffer, len(msg))])
				}
			}
		})
	}
}

var benchBodies = []struct{ name, line string }{
	{"digits", strings.Repeat("0123456789", 7) + "\r\n"},
	{"base64", "TG9yZW0gaXBzdW0gZG9sb3Igc2l0IGFtZXQsIGNvbnNlY3RldHVyIGFkaXBpc2NpbmcgZWxpdC4r\r\n"},
	{"text", "Lorem ipsum dolor sit amet. Consectetur adipiscing elit, sed do eiusmod.\r\n"},
	{"stuffed", "..Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusm\r\n"},
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

// BenchmarkCopyMessage: a 10 MB message from the client's socket to the
// server's (socketpairs; a goroutine writes each message, another reads
// and drops what the server gets): the relay's whole cost per message.
func BenchmarkCopyMessage(b *testing.B) {
	body := bigMessage(10<<20, benchBodies[0].line)
	client, relayEnd := socketpair(b)
	defer client.Close()
	defer relayEnd.Close()
	theirs, ours := socketpair(b)
	defer ours.Close()
	go func() { _, _ = io.Copy(io.Discard, theirs); theirs.Close() }()
	send := make(chan struct{})
	defer close(send)
	go func() {
		for range send {
			if _, err := client.Write(body); err != nil {
				return
			}
		}
	}()
	s := &session{cfg: &Config{DataTimeout: time.Minute}, client: relayEnd, in: clientReader{conn: relayEnd}, srv: &server{conn: ours}}
	s.cr = bufio.NewReaderSize(&s.in, clientBuffer)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		send <- struct{}{}
		if n, err := s.copyMessage(); err != nil || n != int64(len(body)) {
			b.Fatalf("copied %d of %d: %v", n, len(body), err)
		}
	}
}

// bigMessage is a message of about n octets of line, with its end.
func bigMessage(n int, line string) []byte {
	return []byte("Subject: big\r\n\r\n" + strings.Repeat(line, n/len(line)) + ".\r\n")
}
