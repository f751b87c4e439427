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

// TestTwoClamds: of two clamd addresses the first is stopped; the second
// answers within the time bound, finds EICAR, and the log line names it.
func TestTwoClamds(t *testing.T) {
	first := startClamd(t)
	second := clamd(t)
	first.Proc.Stop()
	out, log, code := check(t, eicarMessage(), nil, "--clamd", first.Addr+","+second, "--scanner-timeout", "60s")
	if code != 20 || !strings.HasPrefix(lastLine(out), "554 5.7.1 message contains a virus: Eicar-Test-Signature") {
		t.Fatalf("exit %d %q\n%s", code, out, log)
	}
	if !strings.Contains(log, " clamd="+second) {
		t.Errorf("the log line does not name the clamd that answered (%s):\n%s", second, log)
	}
	// Both down: a deferral that names both.
	out, log, code = check(t, cleanMessage("x"), nil, "--clamd", first.Addr, "--clamd", first.Addr, "--scanner-timeout", "30s")
	if code != 75 || strings.Count(log, first.Addr) < 2 {
		t.Fatalf("both down: exit %d %q\n%s", code, out, log)
	}
}

// TestObserveScanners: with --observe a virus and spam are accepted, every
// scanner ran (none skipped after the first finding), and the log line says
// what would have been done.
func TestObserveScanners(t *testing.T) {
	clamdAddr, spamdAddr := clamd(t), spamd(t)
	msg := strings.Replace(eicarMessage(), "see attached\n", "see attached\n"+gtube+"\n", 1)
	out, log, code := check(t, msg, nil, "--clamd", clamdAddr, "--spamd", spamdAddr, "--observe")
	if code != 0 || lastLine(out) != "250 2.0.0 message accepted" {
		t.Fatalf("exit %d %q\n%s", code, out, log)
	}
	for _, want := range []string{"virus=found(message contains a virus: Eicar-Test-Signature", "spam=found(message looks like spam", "observe=reject", `would="554 5.7.1 message contains a virus`, "level=WARN"} {
		if !strings.Contains(log, want) {
			t.Errorf("log line lacks %q:\n%s", want, log)
		}
	}
}
