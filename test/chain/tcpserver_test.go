package chain_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// tcpserver > mxfront > mxsink: a client from an address on no list passes
// and its message reaches the server with the environment contract; a
// client on the deny list is refused at RCPT with the list's text, never
// reaches the server, and its attempt is logged in one line.
func TestTcpserverPassAndRefuse(t *testing.T) {
	b := build(t)
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	deny := testpeer.WriteFile(t, dir, "deny", "# test deny list\n127.0.0.66 Go away, 66\n127.0.0.128/25\n")
	addr, ts := tcpserver(t, "127.0.0.1", b.mxfront, "--deny-file", deny, "--hostname", "mx.example.test",
		"--", b.mxsink, "-spool", spool)

	out, code := swaks(t, addr, "127.0.0.2")
	if code != 0 {
		t.Fatalf("pass client: swaks exit %d:\n%s", code, out)
	}
	msgs := spooled(t, spool)
	if len(msgs) != 1 {
		t.Fatalf("want 1 message in the sink, got %d", len(msgs))
	}
	for _, want := range []string{"X-Mxsink-Env: TCPREMOTEIP=127.0.0.2", "X-Mxsink-Env: MXFRONT_VERDICT=pass",
		"X-Mxsink-Env: PROTO=TCP", "X-Mxsink-Env: TCPLOCALIP=127.0.0.1", "X-Mxsink-From: FROM:<sender@example.org>"} {
		if !strings.Contains(msgs[0], want) {
			t.Errorf("message lacks %q:\n%s", want, msgs[0])
		}
	}

	out, code = swaks(t, addr, "127.0.0.66")
	if code != 24 || !strings.Contains(out, "554 5.7.1 Go away, 66") {
		t.Fatalf("denied client: swaks exit %d (want 24, RCPT refused):\n%s", code, out)
	}
	out, code = swaks(t, addr, "127.0.0.200")
	if code != 24 || !strings.Contains(out, "554 5.7.1 Client host [127.0.0.200] is on our local deny list") {
		t.Fatalf("denied /25 client: swaks exit %d:\n%s", code, out)
	}
	if n := len(spooled(t, spool)); n != 1 {
		t.Fatalf("a refused client reached the server: %d messages", n)
	}
	waitOutput(t, ts, "ip=127.0.0.200")
	log := ts.Output()
	for _, want := range []string{
		`msg=pass ip=127.0.0.2 `,
		`msg=refused ip=127.0.0.66 `,
		`reply="554 5.7.1 Go away, 66"`,
		`helo=client.example.org mail=sender@example.org rcpt=user@example.test end=quit`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// Everything after PROGRAM is PROGRAM's, flags that look like mxfront's
// included, with and without "--".
func TestArgumentPassThrough(t *testing.T) {
	b := build(t)
	script := `printf '[%s]' "$@"`
	for _, tc := range []struct {
		name string
		argv []string
	}{
		{"without --", []string{b.mxfront, "--deny", "10.0.0.0/8", "/bin/sh", "-c", script, "sh", "-x", "--deny", "y", "--"}},
		{"with --", []string{b.mxfront, "--deny", "10.0.0.0/8", "--", "/bin/sh", "-c", script, "sh", "-x", "--deny", "y", "--"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _ := tcpserver(t, "127.0.0.1", tc.argv...)
			got := session(t, addr, "127.0.0.2", nil, 10*time.Second)
			if got != "[-x][--deny][y][--]" {
				t.Fatalf("PROGRAM got arguments %q", got)
			}
		})
	}
}

// A hostile client meets a bounded answer and a 421, and tcpserver goes on
// serving the next client.
func TestHostileInput(t *testing.T) {
	b := build(t)
	dir := t.TempDir()
	addr, ts := tcpserver(t, "127.0.0.1", b.mxfront, "--deny", "127.0.0.66", "--hostname", "mx.example.test",
		"--command-timeout", "1s", "--", b.mxsink, "-spool", filepath.Join(dir, "spool"))
	rcpts := "EHLO flood.example\r\nMAIL FROM:<s@example.org>\r\n" + strings.Repeat("RCPT TO:<v@example.test>\r\n", 10000)
	cases := []struct {
		name, in, want string
	}{
		{"100 KB line", "EHLO x.example\r\n" + strings.Repeat("A", 100*1024) + "\r\nQUIT\r\n", "500 5.5.2 Error: line too long\r\n221 2.0.0 Bye\r\n"},
		{"NUL bytes", "EHLO x.example\r\nMAIL FROM:<a\x00b@example.org>\r\nQUIT\r\n", "500 5.5.2 Error: NUL character in command\r\n221 2.0.0 Bye\r\n"},
		{"10000 pipelined RCPTs", rcpts, "421 4.7.0 mx.example.test Error: too many errors\r\n"},
		{"silent client", "", "421 4.4.2 mx.example.test Error: timeout exceeded\r\n"},
		{"garbage", strings.Repeat("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", 20), "421 4.7.0 mx.example.test Error: too many errors\r\n"},
		{"HTTP request", "GET / HTTP/1.1\r\nHost: mx\r\n\r\n", "421 4.7.0 mx.example.test Error: this is an SMTP server\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := session(t, addr, "127.0.0.66", []byte(tc.in), 30*time.Second)
			if !strings.HasPrefix(got, "220 mx.example.test ESMTP\r\n") || !strings.HasSuffix(got, tc.want) {
				t.Fatalf("said %q, want it to end in %q", truncate([]byte(got)), tc.want)
			}
		})
	}
	if out, code := swaks(t, addr, "127.0.0.2"); code != 0 {
		t.Fatalf("the next client after the hostile ones: swaks exit %d\n%s", code, out)
	}
	if strings.Contains(ts.Output(), "panic") {
		t.Fatalf("mxfront panicked:\n%s", ts.Output())
	}
}

// A PROGRAM that cannot be run: the client gets 421, mxfront exits 111.
func TestExecFailure(t *testing.T) {
	b := build(t)
	addr, ts := tcpserver(t, "127.0.0.1", b.mxfront, "--hostname", "mx.example.test", "--", "/nonexistent/smtpd")
	got := session(t, addr, "127.0.0.2", nil, 10*time.Second)
	if got != "421 4.3.0 mx.example.test Service temporarily unavailable\r\n" {
		t.Fatalf("client got %q", got)
	}
	// tcpserver -v reports the exit status as a wait status: 111<<8.
	waitOutput(t, ts, fmt.Sprintf("status %d", 111<<8))
	if !strings.Contains(ts.Output(), `msg="exec failed"`) {
		t.Fatalf("no exec failure logged:\n%s", ts.Output())
	}
}

// --refuse-at greeting: the verdict is the greeting.
func TestRefuseAtGreeting(t *testing.T) {
	b := build(t)
	addr, _ := tcpserver(t, "127.0.0.1", b.mxfront, "--deny", "127.0.0.66", "--refuse-at", "greeting",
		"--hostname", "mx.example.test", "--", b.mxsink)
	got := session(t, addr, "127.0.0.66", []byte("EHLO x.example\r\nQUIT\r\n"), 10*time.Second)
	want := "554 5.7.1 mx.example.test Client host [127.0.0.66] is on our local deny list\r\n503 5.5.1 Error: Client host [127.0.0.66] is on our local deny list\r\n221 2.0.0 Bye\r\n"
	if got != want {
		t.Fatalf("said %q, want %q", got, want)
	}
	addr2, _ := tcpserver(t, "127.0.0.1", b.mxfront, "--deny", "127.0.0.66", "--refuse-at", "greeting", "--temp",
		"--hostname", "mx.example.test", "--", b.mxsink)
	if got := session(t, addr2, "127.0.0.66", nil, 10*time.Second); got != "421 4.7.1 mx.example.test Client host [127.0.0.66] is on our local deny list\r\n" {
		t.Fatalf("temporary greeting refusal said %q", got)
	}
}

// tcpserver's rules set RELAYCLIENT and RBLSMTPD per client, as
// administrators of qmail do; mxfront honours them as rblsmtpd does.
func TestTcprulesEnvironment(t *testing.T) {
	b := build(t)
	tcprules := testpeer.Need(t, "tcprules")
	dir := t.TempDir()
	rules := "127.0.0.5:allow,RELAYCLIENT=\"\"\n" +
		"127.0.0.6:allow,RBLSMTPD=\"-You are blocked by rule\"\n" +
		"127.0.0.7:allow,RBLSMTPD=\"Try later, rule\"\n" +
		"127.0.0.8:allow,RBLSMTPD=\"\"\n" +
		":allow\n"
	cdb := filepath.Join(dir, "rules.cdb")
	cmd := exec.Command(tcprules, cdb, cdb+".tmp")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tcprules: %v\n%s", err, out)
	}
	bin := testpeer.Need(t, "tcpserver")
	port := testpeer.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ts := testpeer.Start(t, exec.Command(bin, "-v", "-HRl0", "-x", cdb, "127.0.0.1", fmt.Sprint(port),
		b.mxfront, "--deny", "127.0.0.0/8", "--hostname", "mx.example.test", "--", "/usr/bin/env"))
	waitOutput(t, ts, "status: 0/")

	env := envOf(session(t, addr, "127.0.0.5", nil, 10*time.Second))
	if env["MXFRONT_VERDICT"] != "trusted" || !strings.Contains(env["MXFRONT_REASON"], "RELAYCLIENT") {
		t.Errorf("RELAYCLIENT client: %v", env)
	}
	if _, ok := env["RELAYCLIENT"]; !ok {
		t.Errorf("RELAYCLIENT not handed on to PROGRAM: %v", env)
	}
	if env := envOf(session(t, addr, "127.0.0.8", nil, 10*time.Second)); env["MXFRONT_VERDICT"] != "trusted" {
		t.Errorf("empty RBLSMTPD client: %v", env)
	}
	in := []byte("HELO x.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nQUIT\r\n")
	if got := session(t, addr, "127.0.0.6", in, 10*time.Second); !strings.Contains(got, "553 5.7.1 You are blocked by rule\r\n") {
		t.Errorf("RBLSMTPD=-text client: %q", got)
	}
	if got := session(t, addr, "127.0.0.7", in, 10*time.Second); !strings.Contains(got, "451 4.7.1 Try later, rule\r\n") {
		t.Errorf("RBLSMTPD=text client: %q", got)
	}
	if got := session(t, addr, "127.0.0.9", in, 10*time.Second); !strings.Contains(got, "554 5.7.1 Client host [127.0.0.9]") {
		t.Errorf("client under no rule: %q", got)
	}
}
