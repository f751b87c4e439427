package filter_test

import (
	"strings"
	"testing"
)

// TestClamdFindsEICAR: the real clamd, given only the EICAR MD5 signature,
// finds the EICAR attachment; mxfilter refuses it with clamd's name for it
// and accepts a clean message through the same clamd.
func TestClamdFindsEICAR(t *testing.T) {
	addr := clamd(t)
	out, log, code := check(t, eicarMessage(), []string{"MAIL_FROM=alice@example.org", "RCPT_TO=bob@example.test"}, "--clamd", addr)
	if code != 20 || !strings.HasPrefix(lastLine(out), "554 5.7.1 message contains a virus: Eicar-Test-Signature") {
		t.Fatalf("EICAR: exit %d, %q\n%s", code, out, log)
	}
	if !strings.Contains(log, "virus=found(message contains a virus: Eicar-Test-Signature") {
		t.Errorf("log line lacks the finding:\n%s", log)
	}
	out, log, code = check(t, cleanMessage("clean"), nil, "--clamd", addr)
	if code != 0 || lastLine(out) != "250 2.0.0 message accepted" || !strings.Contains(log, "virus=pass") {
		t.Fatalf("clean: exit %d, %q\n%s", code, out, log)
	}
}

// TestClamdStopped: a clamd that answered and then stopped makes mxfilter
// defer with 451, or accept with --scanner-fail accept.
func TestClamdStopped(t *testing.T) {
	c := startClamd(t)
	if out, log, code := check(t, cleanMessage("before"), nil, "--clamd", c.Addr); code != 0 {
		t.Fatalf("clamd running: exit %d %q\n%s", code, out, log)
	}
	c.Proc.Stop()
	out, log, code := check(t, cleanMessage("after"), nil, "--clamd", c.Addr, "--scanner-timeout", "5s")
	if code != 75 || lastLine(out) != "451 4.3.0 content scanner unavailable, try again later" {
		t.Fatalf("clamd stopped: exit %d %q\n%s", code, out, log)
	}
	out, _, code = check(t, cleanMessage("after"), nil, "--clamd", c.Addr, "--scanner-fail", "accept")
	if code != 0 {
		t.Fatalf("clamd stopped, --scanner-fail accept: exit %d %q", code, out)
	}
	// EICAR with clamd down is deferred, never accepted.
	if out, _, code = check(t, eicarMessage(), nil, "--clamd", c.Addr); code != 75 {
		t.Fatalf("EICAR, clamd stopped: exit %d %q", code, out)
	}
}

// TestSpamdFlagsGTUBE: the real spamd scores GTUBE far above its
// threshold; mxfilter refuses it, and adds X-Spam headers to a clean one.
func TestSpamdFlagsGTUBE(t *testing.T) {
	addr := spamd(t)
	out, log, code := check(t, gtubeMessage(), nil, "--spamd", addr)
	if code != 20 || !strings.HasPrefix(lastLine(out), "554 5.7.1 message looks like spam (score 1") {
		t.Fatalf("GTUBE: exit %d, %q\n%s", code, out, log)
	}
	out, log, code = check(t, cleanMessage("lunch"), nil, "--spamd", addr, "--spam-headers", "--headers")
	if code != 0 || !strings.Contains(out, "X-Spam-Flag: NO\n") || lastLine(out) != "250 2.0.0 message accepted" {
		t.Fatalf("clean: exit %d, %q\n%s", code, out, log)
	}
}
