package chain_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// mxfront serve on IPv4 and IPv6 loopback: passed clients get PROGRAM with
// the environment contract, refused ones a dialogue (and no process), and
// SIGTERM stops it cleanly.
func TestServe(t *testing.T) {
	b := build(t)
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	port := testpeer.FreePort(t)
	v4, v6 := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port)
	p := testpeer.Start(t, exec.Command(b.mxfront, "serve", "--listen", v4, "--listen", v6,
		"--deny", "127.0.0.66", "--deny", "::1/128 No IPv6 loopback here", "--hostname", "mx.example.test",
		"--", b.mxsink, "-spool", spool))
	waitOutput(t, p, "addr="+v6)

	if out, code := swaks(t, v4, "127.0.0.2"); code != 0 {
		t.Fatalf("IPv4 pass: swaks exit %d\n%s", code, out)
	}
	msgs := spooled(t, spool)
	if len(msgs) != 1 {
		t.Fatalf("sink holds %d messages", len(msgs))
	}
	for _, want := range []string{"TCPREMOTEIP=127.0.0.2", "MXFRONT_VERDICT=pass", "PROTO=TCP", "TCPLOCALPORT=" + fmt.Sprint(port)} {
		if !strings.Contains(msgs[0], "X-Mxsink-Env: "+want+"\n") {
			t.Errorf("PROGRAM's environment lacks %s:\n%s", want, msgs[0])
		}
	}
	if out, code := swaks(t, v4, "127.0.0.66"); code != 24 || !strings.Contains(out, "554 5.7.1 Client host [127.0.0.66]") {
		t.Fatalf("IPv4 refusal: swaks exit %d\n%s", code, out)
	}
	if out, code := swaks(t, v6, "::1"); code != 24 || !strings.Contains(out, "554 5.7.1 No IPv6 loopback here") {
		t.Fatalf("IPv6 refusal: swaks exit %d\n%s", code, out)
	}
	if n := len(spooled(t, spool)); n != 1 {
		t.Fatalf("a refused client reached PROGRAM: %d messages", n)
	}
	waitOutput(t, p, `msg="session ended"`)
	testpeer.WaitCount(t, p, "msg=refused", 2)
	if strings.Count(p.Output(), "msg=refused") != 2 {
		t.Errorf("want two refusal lines:\n%s", p.Output())
	}

	p.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.Cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("mxfront serve after SIGTERM: %v\n%s", err, p.Output())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("mxfront serve did not stop on SIGTERM")
	}
}

// mxfront serve with IPv6 passing: the TCP6 names reach PROGRAM.
func TestServeIPv6Pass(t *testing.T) {
	b := build(t)
	spool := filepath.Join(t.TempDir(), "spool")
	v6 := fmt.Sprintf("[::1]:%d", testpeer.FreePort(t))
	p := testpeer.Start(t, exec.Command(b.mxfront, "serve", "--listen", v6, "--", b.mxsink, "-spool", spool))
	waitOutput(t, p, "addr="+v6)
	if out, code := swaks(t, v6, "::1"); code != 0 {
		t.Fatalf("swaks exit %d\n%s", code, out)
	}
	msgs := spooled(t, spool)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "X-Mxsink-Env: PROTO=TCP6\n") || !strings.Contains(msgs[0], "X-Mxsink-Env: TCP6REMOTEIP=::1\n") {
		t.Fatalf("PROGRAM's environment: %v", msgs)
	}
}

// mxfront check: the verdict and every reason, exit 0/1/100, flags after
// the IP, nothing written.
func TestCheckCommand(t *testing.T) {
	b := build(t)
	dir := t.TempDir()
	deny := testpeer.WriteFile(t, dir, "deny", "192.0.2.0/24 Documentation net\n")
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"check", "--deny-file", deny, "192.0.2.7"}, 1, []string{"verdict: refuse", "reply: 554 5.7.1 Documentation net", "reason: deny list 192.0.2.0/24 (" + deny + ":1): Documentation net"}},
		{[]string{"check", "192.0.2.7", "--deny-file", deny, "--temp"}, 1, []string{"reply: 451 4.7.1 Documentation net"}},
		{[]string{"check", "192.0.2.7", "--deny-file", deny, "--allow", "192.0.2.7"}, 0, []string{"verdict: trusted", "reason: allow list 192.0.2.7 (--allow)"}},
		{[]string{"check", "198.51.100.1", "--deny-file", deny, "--helo", "mail.example.org"}, 0, []string{"verdict: pass", "helo: mail.example.org"}},
		{[]string{"check", "not-an-ip"}, 100, []string{"mxfront: error: bad IP", "mxfront: hint:"}},
		{[]string{"check", "--deny-file", filepath.Join(dir, "missing"), "192.0.2.7"}, 100, []string{"mxfront: error: --deny-file"}},
		{[]string{"check"}, 100, []string{"mxfront: error: check takes one IP address"}},
		{[]string{"--deny", "not/a/net", "/bin/true"}, 100, []string{"mxfront: error:", "mxfront: hint:"}},
		{[]string{"--deny", "192.0.2.0/24"}, 100, []string{"mxfront: error: no PROGRAM given"}},
	} {
		out, code := testpeer.Run(t, 10*time.Second, exec.Command(b.mxfront, tc.args...))
		if code != tc.code {
			t.Errorf("mxfront %s: exit %d, want %d\n%s", strings.Join(tc.args, " "), code, tc.code, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("mxfront %s: output lacks %q:\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
	}
}

// Type=notify: serve tells systemd READY=1 once it accepts, and
// STOPPING=1 on SIGTERM (a NOTIFY_SOCKET listener stands in for systemd).
func TestServeNotify(t *testing.T) {
	b := build(t)
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	cmd := exec.Command(b.mxfront, "serve", "--listen", addr, "--", b.mxsink)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	p := testpeer.Start(t, cmd)
	read := func(want string) {
		t.Helper()
		buf := make([]byte, 4096)
		l.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			n, err := l.Read(buf)
			if err != nil {
				t.Fatalf("no %q from mxfront serve: %v\n%s", want, err, p.Output())
			}
			if strings.Contains(string(buf[:n]), want) {
				return
			}
		}
	}
	read("READY=1")
	// Ready means accepting: a client gets its greeting at once.
	if got := session(t, addr, "127.0.0.2", []byte("QUIT\r\n"), 10*time.Second); !strings.HasPrefix(got, "220 ") {
		t.Fatalf("after READY=1 a client got %q", got)
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	read("STOPPING=1")
}
