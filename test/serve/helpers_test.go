// Package serve_test is the end-to-end suite of production serve mode:
// `mxfront serve` with its limits, signals (SIGHUP reload, SIGTERM stop),
// the PROXY protocol behind a real haproxy, systemd's named sockets and
// PROGRAM's user, against real clients (swaks, raw sockets) on loopback.
package serve_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

type bins struct{ mxfront, mxsink string }

func build(t *testing.T) bins {
	dir := testpeer.Binaries(t)
	return bins{mxfront: filepath.Join(dir, "mxfront"), mxsink: filepath.Join(dir, "mxsink")}
}

// echoProgram is a PROGRAM that greets with what it was told and echoes the
// first line it reads, then ends.
const echoProgram = `echo "220 child ip=$TCPREMOTEIP local=$TCPLOCALIP socket=$MXFRONT_SOCKET uid=$(id -u) gid=$(id -g)"; read x; echo "250 got $x"`

// serve starts `mxfront serve --listen ADDR args...` on a free port and
// waits until it listens.
func serve(t *testing.T, cmd func(addr string) *exec.Cmd) (string, *testpeer.Proc) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	p := testpeer.Start(t, cmd(addr))
	testpeer.WaitOutput(t, p, "addr="+addr)
	return addr, p
}

// waitCount waits until s occurs n times in p's output.
func waitCount(t *testing.T, p *testpeer.Proc, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for strings.Count(p.Output(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%q printed %d times, want %d:\n%s", s, strings.Count(p.Output(), s), n, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rss returns the resident set size of pid in KiB.
func rss(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

const dialogue = "EHLO client.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"

// waitTCPFrom waits until addr accepts connections from src.
func waitTCPFrom(t *testing.T, addr, src string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := d.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
