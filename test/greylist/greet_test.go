package greylist_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

const greetDelay = time.Second

// --greet-delay through each launcher: a client that speaks before the
// greeting ends is refused 5xx in the dialogue (whose greeting ends the
// multi-line one begun, never a second one) and logged; a silent client
// reaches the server, whose own 220 completes the multi-line greeting,
// and a client that sends EHLO right after the wait, before that 220, has
// it received intact by the server.
func TestGreetDelay(t *testing.T) {
	for _, l := range launchers {
		t.Run(l.name, func(t *testing.T) {
			b := build(t)
			spool := filepath.Join(t.TempDir(), "spool")
			addr, p := l.start(t, b, spool, "--greet-delay", greetDelay.String())

			// The early talker: everything at once, on connect.
			in := "EHLO early.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u@example.test>\r\nQUIT\r\n"
			got := testpeer.Session(t, addr, "127.0.4.2", []byte(in), 20*time.Second)
			want := "220-mx.example.test ESMTP\r\n220 mx.example.test ESMTP\r\n250-mx.example.test\r\n"
			if !strings.HasPrefix(got, want) {
				t.Fatalf("early talker was told %q, want it to begin %q", got, want)
			}
			if !strings.Contains(got, "554 5.5.1 Error: protocol violation: you spoke before the greeting ended\r\n221 2.0.0 Bye\r\n") {
				t.Fatalf("early talker not refused 5xx at RCPT: %q", got)
			}
			waitOutput(t, p, "msg=refused ip=127.0.4.2 ")
			if line := logLine(p.Output(), "msg=refused ip=127.0.4.2 "); !strings.Contains(line, "early talker: spoke") || !strings.Contains(line, "helo=early.example") {
				t.Fatalf("log line: %s", line)
			}

			// swaks waits for the whole greeting, as honest clients do.
			start := time.Now()
			out, code := swaks(t, addr, "127.0.4.3")
			mustPass(t, out, code, "a silent client")
			if took := time.Since(start); took < greetDelay {
				t.Errorf("the session took %v, less than the delay", took)
			}
			if !strings.Contains(out, "<-  220-mx.example.test ESMTP\n<-  220 mx.example.test ESMTP mxsink") {
				t.Fatalf("the server's greeting did not complete mxfront's:\n%s", out)
			}
			if n := len(spooled(t, spool)); n != 1 {
				t.Fatalf("%d messages in the sink", n)
			}

			// EHLO right after the wait, before the server's 220 is read:
			// the server must get it whole (mxfront read nothing). The end
			// of the wait is the server's 220 arriving, not a sleep: a
			// client sending a moment after the delay by its own clock may
			// still be inside it by mxfront's on a loaded machine.
			c := testpeer.Dial(t, addr, "127.0.4.4")
			if line := c.Line(t); line != "220-mx.example.test ESMTP" {
				t.Fatalf("first greeting line %q", line)
			}
			c.Arrived(t)
			c.Send(t, "EHLO fast.example.org\r\nQUIT\r\n")
			rest := c.Rest(t)
			if want := "220 mx.example.test ESMTP mxsink\r\n250-mx.example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n221 2.0.0 Bye\r\n"; rest != want {
				t.Fatalf("after the wait the client got %q, want the server's greeting and its answer to the whole EHLO %q", rest, want)
			}
		})
	}
}

// With greylisting on, a client of a network that passed skips the delay
// (no 220- line; the server greets at once); a greylisted early talker is
// refused for good and forgotten, so it never earns a pass.
func TestGreetDelayWithGreylist(t *testing.T) {
	b := build(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "greylist.db")
	addr, _ := tcpserver(t, b.mxfront, "--greylist", "--greylist-db", db, "--greylist-delay", "1s",
		"--greet-delay", "3s", "--hostname", "mx.example.test", "--", b.mxsink)
	if _, code := admin(t, b, db, "allow", "127.0.5.0/24"); code != 0 {
		t.Fatal("allow failed")
	}
	got := testpeer.Session(t, addr, "127.0.5.2", []byte("QUIT\r\n"), 10*time.Second)
	// No "220-" line first: the delay was skipped (how fast is not asked).
	if got != "220 mxsink.local ESMTP mxsink\r\n221 2.0.0 Bye\r\n" {
		t.Fatalf("a passed client got %q; want the server at once", got)
	}
	got = testpeer.Session(t, addr, "127.0.6.2", []byte("EHLO early.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u@example.test>\r\nQUIT\r\n"), 10*time.Second)
	if !strings.Contains(got, "554 5.5.1 ") {
		t.Fatalf("greylisted early talker: %q", got)
	}
	if got := listed(t, b, db); got["127.0.6.0/24"] != "" {
		t.Fatalf("the early talker's network was remembered: %v", got)
	}
}
