package filter_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// TestEximPeer proves the exim helper itself: a session as root with -C
// accepts mail for the local domain into the maildir, refuses relaying,
// and its DATA ACL runs (here a deny on a header) with its own text.
func TestEximPeer(t *testing.T) {
	e := testpeer.NewExim(t, testpeer.EximOptions{DataACL: `  deny condition = ${if match{$h_subject:}{bad}}
    message = 554 5.7.1 bad subject
  accept`})
	session := "HELO client.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<user@example.test>\r\nRCPT TO:<x@elsewhere.test>\r\nDATA\r\n" +
		"From: a@b.test\r\nSubject: good\r\n\r\nbody one\r\n.\r\n" +
		"MAIL FROM:<a@b.test>\r\nRCPT TO:<user@example.test>\r\nDATA\r\nFrom: a@b.test\r\nSubject: bad\r\n\r\nbody two\r\n.\r\nQUIT\r\n"
	cmd := e.Command("192.0.2.7")
	cmd.Stdin = strings.NewReader(session)
	out, code := testpeer.Run(t, 30*time.Second, cmd)
	if code != 0 {
		t.Fatalf("exim exit %d:\n%s\n%s", code, out, e.Log())
	}
	for _, want := range []string{"550 relay not permitted", "554 5.7.1 bad subject"} {
		if !strings.Contains(out, want) {
			t.Errorf("session lacks %q:\n%s", want, out)
		}
	}
	msgs := e.Messages(t)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "body one") || !strings.Contains(msgs[0], "[192.0.2.7]") {
		t.Fatalf("delivered %d messages, want the good one from 192.0.2.7:\n%q\n%s", len(msgs), msgs, e.Log())
	}
}
