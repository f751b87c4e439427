package relay

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzPath: MAIL and RCPT arguments never crash the parser; a path it
// takes is a part of the argument, and its domain a suffix of the path.
func FuzzPath(f *testing.F) {
	for _, s := range []string{"FROM:<a@example.org>", "FROM: <a@example.org> SIZE=10", "TO:<\"q>\\\"x\"@example.org>",
		"FROM:<@r1,@r2:a@b.c>", "FROM:<>", "to:<a@[IPv6:2001:db8::1]>", "FROM:<a@[192.0.2.1]> BODY=8BITMIME", "FROM:<a@b", "FROM:<\xff@\xfe.example>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		for _, kw := range []string{"FROM:", "TO:"} {
			path, _, ok := parsePath(arg, kw)
			if !ok {
				continue
			}
			if !strings.Contains(arg, path) {
				t.Fatalf("%q: path %q is not in the argument", arg, path)
			}
			domain, why := mailbox(path)
			if why == "" && !strings.HasSuffix(path, "@"+domain) {
				t.Fatalf("%q: domain %q is not the path's", path, domain)
			}
		}
	})
}

// FuzzReply: whatever a server sends, reading a reply ends with a reply
// whose lines share one code, the last one final, within the bounds, or
// with an error.
func FuzzReply(f *testing.F) {
	for _, s := range []string{"220 ok\r\n", "250-a\r\n250-b\r\n250 c\r\n", "250-a\r\n251 b\r\n", "2500\r\n", "abc\r\n", "354\r\n",
		"250-" + strings.Repeat("x", 3000) + "\r\n250 y\r\n", "250 x\n", "199 low\r\n", "250-x"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &server{r: bufio.NewReaderSize(bytes.NewReader(b), serverBuffer)}
		for i := 0; i < 4; i++ {
			rp, err := s.readFrom()
			if err != nil {
				return
			}
			if len(rp.lines) == 0 || len(rp.lines) > maxReplyLines || rp.code < 200 || rp.code > 599 {
				t.Fatalf("reply %+v", rp)
			}
			for j, l := range rp.lines {
				code, last, ok := parseReplyLine(l)
				if !ok || code != rp.code || last != (j == len(rp.lines)-1) || len(l) > maxReplyLine {
					t.Fatalf("line %q of %+v", l, rp)
				}
			}
		}
	})
}

// FuzzDataScanner: the end of a message is found where a plain reading of
// the whole message finds it, however the octets are split into reads.
func FuzzDataScanner(f *testing.F) {
	for _, s := range []string{".\r\n", "a\r\n.\r\n", "a\n.\n", "a\r\n.\nb", "a\n.\r\n", "..\r\n.\r\n", "a\r.\r\n", "x\r\n.x\r\n.\r\n"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, b []byte, cut uint8) {
		wantAt, wantBare := referenceEnd(b)
		var sc dataScanner
		fed := min(int(cut), len(b))
		buf := append([]byte(nil), b[:fed]...)
		total := 0
		for {
			n, end, bare := sc.scan(buf)
			if n < 0 || n > len(buf) {
				t.Fatalf("scan returned %d of %d", n, len(buf))
			}
			total += n
			buf = buf[n:]
			if end || bare {
				if bare != wantBare || (end && total != wantAt) || (bare && total != wantAt) {
					t.Fatalf("%q: end=%v bare=%v at %d; want bare=%v at %d", b, end, bare, total, wantBare, wantAt)
				}
				return
			}
			if fed == len(b) {
				break
			}
			buf = append(buf, b[fed:]...)
			fed = len(b)
		}
		if wantAt >= 0 {
			t.Fatalf("%q: no end found; want one at %d (bare=%v)", b, wantAt, wantBare)
		}
		if len(buf) > 2 {
			t.Fatalf("%q: %d octets held back", b, len(buf))
		}
	})
}

// referenceEnd reads a whole message plainly: at each line's start (the
// message's, and after every LF) a dot, then CRLF, after a CRLF (or at the
// start) ends it, past the CRLF; a dot line next to a bare LF is bare, at
// the dot. -1: neither.
func referenceEnd(b []byte) (int, bool) {
	for p := 0; p < len(b); p++ {
		if !(p == 0 || b[p-1] == '\n') || b[p] != '.' {
			continue
		}
		bareBefore := p > 0 && (p < 2 || b[p-2] != '\r')
		switch {
		case p+1 < len(b) && b[p+1] == '\n':
			return p, true
		case p+2 < len(b) && b[p+1] == '\r' && b[p+2] == '\n':
			if bareBefore {
				return p, true
			}
			return p + 3, false
		}
	}
	return -1, false
}

// FuzzSession: whatever a client sends, the relay answers and ends (the
// fake server behind it), and nothing it refused reaches the server.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO a.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
		"HELO x\r\nAUTH PLAIN\r\n=\r\nSTARTTLS\r\n", "\x00\xff\r\n", "MAIL FROM:<\r\n", "EHLO a\r\nDATA\r\n", "BDAT 5\r\n12345",
		"EHLO a\r\nMAIL FROM:<s@x.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n\n.\nRCPT TO:<nobody@example.test>\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		fake := &fakeServer{}
		res := run{rules: rcptRules(t, "alice@example.test\n"), cfg: Config{Rcpt: Refuse}, fake: fake, in: in}.go_(t)
		if !strings.HasPrefix(res.out, "220 mx.example.test ESMTP\r\n") {
			t.Fatalf("no greeting: %q", res.out)
		}
		for _, l := range fake.heardLines() {
			f := strings.Fields(strings.ToLower(l))
			if len(f) > 0 && f[0] == "rcpt" && strings.Contains(strings.ToLower(l), "nobody@example.test") {
				t.Fatalf("the server heard a refused recipient: %q", l)
			}
			if i := strings.IndexByte(l, '\r'); i >= 0 && i != len(l)-2 {
				t.Fatalf("the server heard a bare CR: %q", l)
			}
		}
	})
}
