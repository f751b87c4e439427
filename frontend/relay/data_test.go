package relay

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// lineEnd is the oracle of the DATA scanner: the message read line by
// line, as a plain server reads it. A line ".\r\n" after a line ended by
// CRLF (or first) ends the message, past it; ".\n", or ".\r\n" after a
// line ended by a bare LF, is the bare-LF end, at its dot. -1: neither.
func lineEnd(b []byte) (at int, bare bool) {
	crlf := true // the message's start counts as a CRLF
	for p := 0; p < len(b); {
		e := bytes.IndexByte(b[p:], '\n')
		if e < 0 {
			break
		}
		line := string(b[p : p+e+1])
		switch {
		case line == ".\r\n" && crlf:
			return p + 3, false
		case line == ".\r\n", line == ".\n":
			return p, true
		}
		crlf = strings.HasSuffix(line, "\r\n")
		p += e + 1
	}
	return -1, false
}

// chunked is a client that sends b in reads of sizes (the last one
// repeated), then EOF.
type chunked struct {
	b     []byte
	sizes []int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := len(c.b)
	if len(c.sizes) > 0 {
		n = min(n, c.sizes[0])
		if len(c.sizes) > 1 {
			c.sizes = c.sizes[1:]
		}
	}
	n = copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

func (c *chunked) Write(p []byte) (int, error)      { return len(p), nil }
func (c *chunked) SetReadDeadline(time.Time) error  { return nil }
func (c *chunked) SetWriteDeadline(time.Time) error { return nil }

// dataSession is a session in DATA with client, its server a pipe whose
// far end is read whole; heard closes it and returns what came.
func dataSession(t testing.TB, client *chunked) (s *session, heard func() string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(r); r.Close(); got <- b }()
	s = &session{cfg: &Config{DataTimeout: time.Minute}, client: client, in: clientReader{conn: client}, srv: &server{conn: w}}
	s.cr = bufio.NewReaderSize(&s.in, clientBuffer)
	return s, func() string { w.Close(); return string(<-got) }
}

// relayOnce copies one message of in (read as sizes say) and returns what
// the server heard, the octets copied, the error and what the command
// reader reads after it.
func relayOnce(t testing.TB, in string, sizes []int) (heard, rest string, n int64, err error) {
	t.Helper()
	s, h := dataSession(t, &chunked{b: []byte(in), sizes: sizes})
	n, err = s.copyMessage()
	heard = h()
	if err == nil {
		b, rerr := io.ReadAll(s.cr)
		if rerr != nil {
			t.Fatalf("reading the rest: %v", rerr)
		}
		rest = string(b)
	}
	s.in.drop()
	return heard, rest, n, err
}

// checkRelayed compares one copy of in with what lineEnd says.
func checkRelayed(t *testing.T, in string, sizes []int, heard, rest string, n int64, err error) {
	t.Helper()
	at, bare := lineEnd([]byte(in))
	switch {
	case at >= 0 && !bare:
		if err != nil || heard != in[:at] || n != int64(at) || rest != in[at:] {
			t.Fatalf("%.80q in reads of %v: err %v, heard %.80q (%d), rest %.80q; want the end at %d", in, sizes, err, heard, n, rest, at)
		}
	case bare:
		if !errors.Is(err, errBareLFDot) || heard != in[:at] || n != int64(at) {
			t.Fatalf("%.80q in reads of %v: err %v, heard %.80q (%d); want the bare-LF end at %d", in, sizes, err, heard, n, at)
		}
	default:
		// No end: the client's EOF; all of it went on but a dot and the
		// octet after it, held back.
		held := len(in) - len(heard)
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.HasPrefix(in, heard) || n != int64(len(heard)) || held > 2 ||
			held > 0 && in[len(heard)] != '.' {
			t.Fatalf("%.80q in reads of %v: err %v, heard %.80q (%d); want all but a dot line's start, then EOF", in, sizes, err, heard, n)
		}
	}
}

// The end of a message, a dot line next to a bare LF, or no end, across
// every split of the client's octets into reads of one size: what the
// server hears, and what the command reader reads after the end. Each
// case states its end, and the line-by-line oracle must agree.
func TestCopyMessageSplits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		at   int // where the server's copy stops
		bare bool
	}{
		{".\r\nQUIT\r\n", 3, false},
		{"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n", 23, false},
		{"a\r\n..\r\n.\r\nMAIL FROM:<a@b>\r\n", 10, false},
		{"..\r\n...\r\n.\r\n", 12, false},
		{"a\r\n.x\r\n.\r\n", 10, false},
		{"a\r\r\n.\r\nRSET\r\n", 7, false},
		{"\x00\xff\r\n\x00.\r\n.\r\n", 11, false},
		{"a\r\n.\r\n.\r\n", 6, false},
		{"a\n.\r\nQUIT\r\n", 2, true},
		{"a\r\n.\nQUIT\r\n", 3, true},
		{"a\n.\n", 2, true},
		{"\n.\r\n", 1, true},
		{".\n", 0, true},
		{"a\r.\r\nb\r\n", -1, false},
		{"a\r\n.\r", -1, false},
		{"a\r\n.", -1, false},
		{"a\r\n. \r\n", -1, false},
	} {
		if at, bare := lineEnd([]byte(tc.in)); at != tc.at || bare != tc.bare {
			t.Fatalf("oracle: %q: end at %d bare=%v; the case says %d bare=%v", tc.in, at, bare, tc.at, tc.bare)
		}
		for size := 1; size <= len(tc.in)+1; size++ {
			heard, rest, n, err := relayOnce(t, tc.in, []int{size})
			checkRelayed(t, tc.in, []int{size}, heard, rest, n, err)
		}
		// Every split into two reads.
		for cut := 0; cut <= len(tc.in); cut++ {
			heard, rest, n, err := relayOnce(t, tc.in, []int{cut, len(tc.in)})
			checkRelayed(t, tc.in, []int{cut, len(tc.in)}, heard, rest, n, err)
		}
	}
}

// Around the DATA buffer's edge: a line as long as the buffer, one
// octet shorter and longer, and the end landing at every offset near a
// full buffer, in full reads and in odd ones.
func TestCopyMessageBufferEdges(t *testing.T) {
	// Two fillers: no dot, and text whose dots inside lines make the
	// scanner look for "\n." instead of dots.
	text := strings.Repeat("Text. More text. ..\r\n.x\r\n", 3*dataBuffer/28)
	for _, l := range []int{dataBuffer - 6, dataBuffer - 5, dataBuffer - 4, dataBuffer - 3, dataBuffer - 2, dataBuffer - 1,
		dataBuffer, dataBuffer + 1, 2*dataBuffer - 3, clientBuffer - 1, clientBuffer} {
		for _, filler := range []string{strings.Repeat("x", l), text[:l]} {
			for _, tail := range []string{"\r\n.\r\nQUIT\r\n", "\r\n..\r\n.\r\n", "\n.\r\nQUIT\r\n", "\r\n.\nQUIT\r\n", "\r\n.x"} {
				in := filler + tail
				for _, sizes := range [][]int{{1 << 20}, {dataBuffer}, {7919}, {dataBuffer - 1, 1, 2, dataBuffer}} {
					heard, rest, n, err := relayOnce(t, in, sizes)
					checkRelayed(t, in, sizes, heard, rest, n, err)
				}
			}
		}
	}
	// Where the text's dots switch the scanner over, the end is found.
	for cut := 0; cut < 200; cut++ {
		in := text[:cut] + "\r\n.\r\n"
		heard, rest, n, err := relayOnce(t, in, []int{1 << 20})
		checkRelayed(t, in, []int{1 << 20}, heard, rest, n, err)
	}
}

// What follows a message's end is the next command, read by the command
// reader: a command of the longest length allowed is read whole, a longer
// one is too long; and a second message after a command, with more
// pipelined after it than the command reader holds, is copied from where
// the first one left it.
func TestCopyMessageRest(t *testing.T) {
	long := "NOOP " + strings.Repeat("y", maxCommand-7) + "\r\n" // maxCommand octets
	second := "Subject: two\r\n\r\n" + strings.Repeat("z", 3*clientBuffer) + "\r\n.\r\n"
	in := "one\r\n.\r\n" + long + "NOOP " + strings.Repeat("y", maxCommand-6) + "\r\nRSET\r\n" + second + "QUIT\r\n"
	for _, sizes := range [][]int{{1 << 20}, {5000}, {1}} {
		s, heard := dataSession(t, &chunked{b: []byte(in), sizes: sizes})
		if n, err := s.copyMessage(); err != nil || n != 8 {
			t.Fatalf("reads of %v: first message: %d, %v", sizes, n, err)
		}
		if l, err := readBounded(s.cr, maxCommand); err != nil || string(l) != long {
			t.Fatalf("reads of %v: %q, %v; want the %d-octet command", sizes, l, err, maxCommand)
		}
		if _, err := readBounded(s.cr, maxCommand); err != errTooLong {
			t.Fatalf("reads of %v: a command of %d octets: %v", sizes, maxCommand+1, err)
		}
		if l, err := readBounded(s.cr, maxCommand); err != nil || string(l) != "RSET\r\n" {
			t.Fatalf("reads of %v: %q, %v", sizes, l, err)
		}
		if n, err := s.copyMessage(); err != nil || n != int64(len(second)) {
			t.Fatalf("reads of %v: second message: %d, %v", sizes, n, err)
		}
		if l, err := readBounded(s.cr, maxCommand); err != nil || string(l) != "QUIT\r\n" {
			t.Fatalf("reads of %v: after the second message: %q, %v", sizes, l, err)
		}
		if s.in.buf != nil || len(s.in.rest) != 0 {
			t.Errorf("reads of %v: the DATA buffer is still held after its rest was read", sizes)
		}
		if h := heard(); h != "one\r\n.\r\n"+second {
			t.Fatalf("reads of %v: the server heard %d octets, not the two messages", sizes, len(h))
		}
	}
}

// A message is never held whole: a line longer than every buffer, with
// no end in sight, reaches the server before the client sends more.
func TestCopyMessageStreams(t *testing.T) {
	client, relayEnd := socketpair(t)
	defer client.Close()
	defer relayEnd.Close()
	theirs, ours := socketpair(t)
	defer theirs.Close()
	s := &session{cfg: &Config{DataTimeout: time.Minute}, client: relayEnd, in: clientReader{conn: relayEnd}, srv: &server{conn: ours}}
	s.cr = bufio.NewReaderSize(&s.in, clientBuffer)
	type copied struct {
		n   int64
		err error
	}
	done := make(chan copied, 1)
	go func() { n, err := s.copyMessage(); ours.Close(); done <- copied{n, err} }()
	line := bytes.Repeat([]byte("w"), 5*dataBuffer)
	_ = client.SetDeadline(time.Now().Add(60 * time.Second))
	_ = theirs.SetDeadline(time.Now().Add(60 * time.Second))
	go func() { _, _ = client.Write(line) }()
	got := make([]byte, len(line))
	if _, err := io.ReadFull(theirs, got); err != nil || !bytes.Equal(got, line) {
		t.Fatalf("the server did not get the line before its end was sent: %v", err)
	}
	if _, err := client.Write([]byte("\r\n.\r\n")); err != nil {
		t.Fatal(err)
	}
	end, err := io.ReadAll(theirs)
	if c := <-done; c.err != nil || c.n != int64(len(line)+5) || err != nil || string(end) != "\r\n.\r\n" {
		t.Fatalf("copied %d, %v; then the server heard %q, %v", c.n, c.err, end, err)
	}
}

// A client that goes quiet mid-message meets the DATA timeout: 421, the
// server takes nothing (its copy has no end), and the log says why; one
// that closes mid-message is gone, and nothing is taken either.
func TestClientQuietInData(t *testing.T) {
	fake := &fakeServer{}
	res := run{cfg: Config{DataTimeout: 50 * time.Millisecond}, fake: fake, talk: func(t *testing.T, c *os.File, r *bufio.Reader) {
		_, _ = c.WriteString("EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n")
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("no 354: %v", err)
			}
			if strings.HasPrefix(l, "354") {
				break
			}
		}
		_, _ = c.WriteString("Subject: x\r\n\r\nhalf a line, then nothing")
	}}.go_(t)
	if !strings.HasSuffix(res.out, "421 4.4.2 mx.example.test Error: timeout exceeded\r\n") || !strings.Contains(res.log, "client-gone-in-data") {
		t.Fatalf("%q\n%s", res.out, res.log)
	}
	if len(fake.messages) != 0 {
		t.Fatalf("the server took %q", fake.messages)
	}
	fake = &fakeServer{}
	res = run{fake: fake, in: "EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.test>\r\nDATA\r\nSubject: x\r\n\r\ncut short\r\n."}.go_(t)
	if !strings.Contains(res.log, "client-gone-in-data") || len(fake.messages) != 0 || strings.Contains(res.out, "250 2.0.0 queued") {
		t.Fatalf("%q\n%s\ntaken: %q", res.out, res.log, fake.messages)
	}
}

// FuzzCopyMessage: whatever the client sends, split into whatever reads,
// the server hears what the line-by-line oracle says it must, the command
// reader reads the rest, and the octet-at-a-time scanner this one
// replaced finds the same end.
func FuzzCopyMessage(f *testing.F) {
	for _, s := range []string{".\r\nQUIT\r\n", "a\r\n.\r\nb", "a\n.\nb", "a\r\n.\nb", "a\n.\r\n", "..\r\n.\r\n", "a\r.\r\n", "x\r\n.x\r\n.\r\n",
		"\x00\r\n.\r\n", "a\r\n.", "a\r\n.\r", "\n.\r\n", "a.b.c.d.e.f.g.h.i.j.\r\n.x\n..\r\n.\n"} {
		f.Add([]byte(s), []byte{1, 2, 3})
	}
	f.Fuzz(func(t *testing.T, in, sizes []byte) {
		var sz []int
		for _, c := range sizes {
			sz = append(sz, 1+int(c))
		}
		heard, rest, n, err := relayOnce(t, string(in), sz)
		checkRelayed(t, string(in), sz, heard, rest, n, err)
		at, bare := lineEnd(in)
		if oat, obare := octetEnd(in, sz); oat != at || obare != bare {
			t.Fatalf("%q: the octet scanner ends at %d bare=%v; the oracle at %d bare=%v", in, oat, obare, at, bare)
		}
	})
}

// octetScanner is the DATA scanner before bytes.IndexByte: a state per
// octet. It stays as a second oracle and as the benchmark's baseline.
type octetScanner struct {
	st int
}

func (sc *octetScanner) scan(b []byte) (n int, end, bare bool) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '.' && (sc.st == atStart || sc.st == atBareStart) {
			if i+1 >= len(b) {
				return i, false, false
			}
			switch b[i+1] {
			case '\n':
				return i, false, true
			case '\r':
				if i+2 >= len(b) {
					return i, false, false
				}
				if b[i+2] == '\n' {
					if sc.st == atBareStart {
						return i, false, true
					}
					return i + 3, true, false
				}
			}
			sc.st = inLine
			continue
		}
		switch {
		case c == '\r':
			sc.st = afterCR
		case c == '\n' && sc.st == afterCR:
			sc.st = atStart
		case c == '\n':
			sc.st = atBareStart
		default:
			sc.st = inLine
		}
	}
	return len(b), false, false
}

// octetEnd runs octetScanner over b in reads of sizes, as copyMessage
// reads: where the end is, as lineEnd says it.
func octetEnd(b []byte, sizes []int) (int, bool) {
	var sc octetScanner
	total, fed := 0, 0
	var buf []byte
	for {
		n := len(b) - fed
		if len(sizes) > 0 {
			n = min(n, sizes[0])
			if len(sizes) > 1 {
				sizes = sizes[1:]
			}
		}
		buf = append(buf, b[fed:fed+n]...)
		fed += n
		k, end, bare := sc.scan(buf)
		total += k
		buf = buf[k:]
		switch {
		case end:
			return total, false
		case bare:
			return total, true
		case fed == len(b):
			return -1, false
		}
	}
}

// Cleartext pipelined after a message's end and a STARTTLS, more of it
// than the command reader holds (the rest stays in the DATA buffer), is
// dropped whole: none of it is read as sent within TLS.
func TestSTARTTLSInjectionAfterMessage(t *testing.T) {
	cert, pool := selfSigned(t)
	fake := &fakeServer{}
	injected := strings.Repeat("NOOP "+strings.Repeat("x", 490)+"\r\n", 40) + "MAIL FROM:<injected@example.org>\r\n"
	cfg := Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}
	res := run{cfg: cfg, fake: fake, talk: func(t *testing.T, c *os.File, r *bufio.Reader) {
		upTo := func(prefix string) {
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("waiting for %q: %v", prefix, err)
				}
				if strings.HasPrefix(l, prefix) {
					return
				}
			}
		}
		_, _ = c.WriteString("EHLO c.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n")
		upTo("354")
		_, _ = c.WriteString("Subject: x\r\n\r\nbody\r\n.\r\nSTARTTLS\r\n" + injected)
		upTo("220 2.0.0")
		tc := tls.Client(clientConn{DialogueConn: c}, &tls.Config{ServerName: "mx.example.test", RootCAs: pool})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		_, _ = tc.Write([]byte("EHLO c.example.org\r\nQUIT\r\n"))
		_, _ = io.ReadAll(tc)
	}}.go_(t)
	if len(fake.messages) != 1 || strings.Contains(fake.heard(), "injected") || strings.Contains(fake.heard(), "NOOP") {
		t.Fatalf("took %d messages; heard %.300q\n%s", len(fake.messages), fake.heard(), res.log)
	}
	if want := fmt.Sprintf("octets=%d", len(injected)); !strings.Contains(res.log, "octets after STARTTLS dropped") || !strings.Contains(res.log, want) {
		t.Fatalf("want %s dropped:\n%s", want, res.log)
	}
}
