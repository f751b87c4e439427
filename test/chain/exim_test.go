package chain_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// tcpserver > mxfront > exim4 -bs: exim, the real server, receives the
// message of a client mxfront passes (and sees the client's address on its
// own stdin), and never hears of a client mxfront refuses.
func TestEximBehindTcpserver(t *testing.T) {
	b := build(t)
	ex := testpeer.NewExim(t, testpeer.EximOptions{})
	exim := ex.Command("") // no -oMa: exim must find the client on fd 0 itself
	argv := append([]string{b.mxfront, "--deny", "127.0.0.66", "--hostname", "mx.example.test", "--"}, exim.Args...)
	addr, _ := tcpserver(t, "127.0.0.1", argv...)

	out, code := swaks(t, addr, "127.0.0.2", "--header", "Subject: through mxfront")
	if code != 0 {
		t.Fatalf("swaks exit %d:\n%s\nexim log:\n%s", code, out, ex.Log())
	}
	msgs := ex.Messages(t)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: through mxfront") {
		t.Fatalf("exim delivered %d messages:\n%v\n%s", len(msgs), msgs, ex.Log())
	}
	if !strings.Contains(msgs[0], "[127.0.0.2]") {
		t.Errorf("exim did not see the client's address on its socket:\n%s", msgs[0])
	}
	out, code = swaks(t, addr, "127.0.0.66", "--header", "Subject: refused")
	if code != 24 {
		t.Fatalf("denied client: swaks exit %d:\n%s", code, out)
	}
	if n := len(ex.Messages(t)); n != 1 {
		t.Fatalf("exim has %d messages after a refused client", n)
	}
	if strings.Contains(ex.Log(), "127.0.0.66") {
		t.Fatalf("exim heard of the refused client:\n%s", ex.Log())
	}
}

// systemd-socket-activate --accept > mxfront > exim4 -bs: the fd 3 socket
// is moved onto fds 0 and 1 before exim starts.
func TestEximBehindSystemdSocket(t *testing.T) {
	b := build(t)
	ssa := testpeer.Need(t, "systemd-socket-activate")
	ex := testpeer.NewExim(t, testpeer.EximOptions{})
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	args := append([]string{"-l", addr, "--accept", b.mxfront, "--log", "stderr", "--"}, ex.Command("").Args...)
	p := testpeer.Start(t, exec.Command(ssa, args...))
	waitOutput(t, p, "Listening on")
	out, code := swaks(t, addr, "127.0.0.3", "--header", "Subject: via fd 3")
	if code != 0 {
		t.Fatalf("swaks exit %d:\n%s\nexim log:\n%s", code, out, ex.Log())
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ex.Messages(t)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if msgs := ex.Messages(t); len(msgs) != 1 || !strings.Contains(msgs[0], "[127.0.0.3]") {
		t.Fatalf("exim delivered %v\n%s", msgs, ex.Log())
	}
}
