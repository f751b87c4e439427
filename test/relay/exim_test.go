package relay_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// relayed starts tcpserver > mxfront --inspect FLAGS > exim4 -bs and
// returns its address.
func relayed(t *testing.T, b bins, ex *testpeer.Exim, flags []string) string {
	t.Helper()
	argv := append(append([]string{b.mxfront}, flags...), "--")
	argv = append(argv, ex.Command("").Args...)
	addr, _ := testpeer.TCPServer(t, "127.0.0.1", argv...)
	return addr
}

// served starts mxfront serve --inspect FLAGS in front of exim4 -bs.
func served(t *testing.T, b bins, ex *testpeer.Exim, flags []string) (string, *testpeer.Proc) {
	t.Helper()
	addr := "127.0.0.1:" + itoa(testpeer.FreePort(t))
	args := append(append([]string{"serve", "--listen", addr}, flags...), "--")
	args = append(args, ex.Command("").Args...)
	p := testpeer.Start(t, exec.Command(b.mxfront, args...))
	testpeer.WaitOutput(t, p, "listening")
	return addr, p
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

// The relay in front of exim, under tcpserver and in serve mode: what
// each check does to a real client (swaks) and what exim sees of it.
func TestEximBehindRelay(t *testing.T) {
	b := build(t)
	for _, mode := range []string{"tcpserver", "serve"} {
		t.Run(mode, func(t *testing.T) {
			s := newSite(t)
			ex := testpeer.NewExim(t, testpeer.EximOptions{})
			flags := s.flags("--helo-check", "refuse", "--max-rcpts", "3", "--max-bad-rcpts", "3")
			var addr string
			if mode == "tcpserver" {
				addr = relayed(t, b, ex, flags)
			} else {
				addr, _ = served(t, b, ex, flags)
			}
			swaks := func(src string, extra ...string) (string, int) { return testpeer.Swaks(t, addr, src, extra...) }

			// A valid recipient is delivered, and exim's environment says
			// the session was inspected.
			out, code := swaks("127.0.0.2", "--to", "alice@example.test", "--header", "Subject: relayed")
			if code != 0 {
				t.Fatalf("valid recipient: swaks exit %d:\n%s\n%s", code, out, ex.Log())
			}
			if msgs := awaitMessages(t, ex, 1); len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: relayed") {
				t.Fatalf("exim delivered %d messages\n%s", len(msgs), ex.Log())
			}
			if !strings.Contains(out, "220 mx.example.test ESMTP") {
				t.Errorf("the greeting is not the relay's:\n%s", out)
			}

			// An invalid recipient is refused by mxfront; exim never
			// hears of it.
			out, code = swaks("127.0.0.2", "--to", "nobody@example.test")
			if code != 24 || !strings.Contains(out, "550 5.1.1 Recipient <nobody@example.test> rejected") {
				t.Fatalf("invalid recipient: exit %d\n%s", code, out)
			}
			if eximLogHas(ex, "nobody@") {
				t.Fatalf("exim heard of the refused recipient:\n%s", ex.Log())
			}
			out, code = swaks("127.0.0.2", "--to", "closed@example.test")
			if code != 24 {
				t.Fatalf("an exception of the file: exit %d\n%s", code, out)
			}

			// A mixed transaction delivers to the valid recipients only.
			out, code = swaks("127.0.0.2", "--to", "alice@example.test,ghost@example.test,bob@example.test", "--header", "Subject: mixed")
			if code != 0 {
				t.Fatalf("mixed: exit %d\n%s", code, out)
			}
			msgs := awaitMessages(t, ex, 3)
			if len(msgs) != 3 {
				t.Fatalf("mixed: exim has %d messages, want 3 (one each for alice and bob... plus the first)\n%s", len(msgs), ex.Log())
			}
			if eximLogHas(ex, "ghost@") {
				t.Fatalf("exim heard of ghost:\n%s", ex.Log())
			}

			// A bogus HELO: 554 at RCPT, from mxfront.
			out, code = swaks("127.0.0.2", "--helo", "localhost", "--to", "alice@example.test")
			if code != 24 || !strings.Contains(out, "554 5.7.1 HELO/EHLO name localhost rejected") {
				t.Fatalf("bogus HELO: exit %d\n%s", code, out)
			}

			// Senders: a domain that does not exist, one without MX or
			// address, a null MX; a domain with only an address passes.
			for _, tc := range []struct{ from, want string }{
				{"s@nowhere.example.org", "550 5.1.8 Sender address <s@nowhere.example.org> rejected: domain nowhere.example.org does not exist"},
				{"s@nodata.example", "550 5.1.8 Sender address <s@nodata.example> rejected: domain nodata.example has no MX or address record"},
				{"s@null.example", "550 5.7.27 Sender address <s@null.example> rejected: null.example accepts no mail (null MX)"},
			} {
				out, code = swaks("127.0.0.2", "--from", tc.from, "--to", "alice@example.test")
				if code != 23 || !strings.Contains(out, tc.want) {
					t.Errorf("MAIL FROM:<%s>: exit %d, want 23 and %q\n%s", tc.from, code, tc.want, out)
				}
				if eximLogHas(ex, tc.from) {
					t.Errorf("exim heard of %s", tc.from)
				}
			}
			if out, code = swaks("127.0.0.2", "--from", "s@addr.example", "--to", "bob@example.test"); code != 0 {
				t.Errorf("a sender domain with an A record: exit %d\n%s", code, out)
			}
			// A domain unbound refuses to answer about: unsure, passes.
			if out, code = swaks("127.0.0.2", "--from", "s@unknown.example.net", "--to", "bob@example.test"); code != 0 {
				t.Errorf("a sender domain DNS cannot tell about: exit %d\n%s", code, out)
			}

			// A relay attempt.
			out, code = swaks("127.0.0.2", "--to", "victim@elsewhere.example")
			if code != 24 || !strings.Contains(out, "553 5.7.1 Recipient <victim@elsewhere.example> rejected: relay not permitted") {
				t.Fatalf("relay attempt: exit %d\n%s", code, out)
			}

			// Too many recipients: the fourth gets 452.
			sess := testpeer.Session(t, addr, "127.0.0.3", []byte("EHLO client.example.org\r\nMAIL FROM:<s@example.org>\r\n"+
				"RCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nQUIT\r\n"), 60*time.Second)
			if !strings.Contains(sess, "452 4.5.3 Error: too many recipients\r\n221") {
				t.Fatalf("too many recipients:\n%s", sess)
			}

			// Too many bad recipients: 421 at the third.
			sess = testpeer.Session(t, addr, "127.0.0.4", []byte("EHLO client.example.org\r\nMAIL FROM:<s@example.org>\r\n"+
				"RCPT TO:<a1@example.test>\r\nRCPT TO:<a2@example.test>\r\nRCPT TO:<a3@example.test>\r\nRCPT TO:<a4@example.test>\r\nQUIT\r\n"), 60*time.Second)
			if !strings.HasSuffix(sess, "421 4.7.0 mx.example.test Error: too many bad recipients\r\n") || strings.Count(sess, "550 5.1.1") != 3 {
				t.Fatalf("too many bad recipients:\n%s", sess)
			}
			if eximLogHas(ex, "a4@") || eximLogHas(ex, "a1@") {
				t.Fatalf("exim heard of the dictionary attack:\n%s", ex.Log())
			}
		})
	}
}

// swaks --pipeline, and several messages in one session from a raw
// client that sends everything at once.
func TestPipelinedSessions(t *testing.T) {
	b := build(t)
	s := newSite(t)
	ex := testpeer.NewExim(t, testpeer.EximOptions{})
	addr := relayed(t, b, ex, s.flags())
	out, code := testpeer.Swaks(t, addr, "127.0.0.2", "--pipeline", "--to", "alice@example.test,nobody@example.test,bob@example.test", "--header", "Subject: pipelined")
	if code != 0 || !strings.Contains(out, "550 5.1.1 Recipient <nobody@example.test>") {
		t.Fatalf("swaks --pipeline: exit %d\n%s", code, out)
	}
	in := "EHLO client.example.org\r\n"
	for _, subj := range []string{"first", "second", "third"} {
		in += "MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<ghost@example.test>\r\nDATA\r\nSubject: " + subj + "\r\n\r\nbody\r\n.\r\n"
	}
	in += "QUIT\r\n"
	sess := testpeer.Session(t, addr, "127.0.0.3", []byte(in), 60*time.Second)
	if n := strings.Count(sess, "550 5.1.1"); n != 3 || strings.Count(sess, "354 ") != 3 || !strings.HasSuffix(sess, "221 mx.example.test closing connection\r\n") {
		t.Fatalf("%d refusals:\n%s", n, sess)
	}
	msgs := awaitMessages(t, ex, 5)
	var subjects []string
	for _, m := range msgs {
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "Subject: ") {
				subjects = append(subjects, strings.TrimSpace(strings.TrimPrefix(l, "Subject: ")))
			}
		}
	}
	// Maildir names do not keep the order of delivery within a second.
	slices.Sort(subjects)
	if strings.Join(subjects, ",") != "first,pipelined,pipelined,second,third" {
		t.Fatalf("exim delivered %q\n%s", subjects, ex.Log())
	}
}
