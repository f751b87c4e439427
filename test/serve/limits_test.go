package serve_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// Per-IP and total limits: 421 4.7.0 and closed, a refused or passed
// connection holding its place until it ends.
func TestLimits(t *testing.T) {
	b := build(t)
	addr, p := serve(t, func(addr string) *exec.Cmd {
		return exec.Command(b.mxfront, "serve", "--listen", addr, "--hostname", "mx.example.test",
			"--deny", "127.0.0.8/29", "--max-conns", "4", "--max-conns-per-ip", "2", "--max-children", "1",
			"--", "/bin/sh", "-c", echoProgram)
	})
	a := testpeer.Dial(t, addr, "127.0.0.2")
	a.Await(t, "220 child ip=127.0.0.2")
	busy := testpeer.Session(t, addr, "127.0.0.3", nil, 10*time.Second)
	if busy != "421 4.7.0 mx.example.test Error: too busy, try again later\r\n" {
		t.Fatalf("over --max-children: %q", busy)
	}
	c := testpeer.Dial(t, addr, "127.0.0.9")
	c.Await(t, "220 mx.example.test ESMTP")
	d := testpeer.Dial(t, addr, "127.0.0.9")
	d.Await(t, "220 mx.example.test ESMTP")
	waitCount(t, p, "reason=max-children", 1)
	perIP := testpeer.Session(t, addr, "127.0.0.9", nil, 10*time.Second)
	if perIP != "421 4.7.0 mx.example.test Error: too many connections from your address\r\n" {
		t.Fatalf("over --max-conns-per-ip: %q", perIP)
	}
	waitCount(t, p, "reason=max-conns-per-ip", 1)
	e := testpeer.Dial(t, addr, "127.0.0.10")
	e.Await(t, "220 mx.example.test ESMTP")
	total := testpeer.Session(t, addr, "127.0.0.11", nil, 10*time.Second)
	if total != "421 4.7.0 mx.example.test Error: too many connections\r\n" {
		t.Fatalf("over --max-conns: %q", total)
	}
	// A refused client ends its dialogue: its place is free again.
	c.Send(t, "QUIT\r\n")
	c.Await(t, "221 ")
	waitCount(t, p, "msg=refused", 1)
	f := testpeer.Dial(t, addr, "127.0.0.9")
	f.Await(t, "220 mx.example.test ESMTP")
	for _, cl := range []*testpeer.Client{a, d, e, f} {
		cl.Close()
	}
}

// A low fd limit never ends serve nor leaves clients hanging: with a hard
// RLIMIT_NOFILE of 40, serve keeps what its ceiling allows (it says so at
// start), every client above it hears 421 4.3.2 at once, and once the held
// ones leave, new clients are served. (The accept loop's own EMFILE
// back-off is TestAcceptBacksOff's, in frontend/serve.)
func TestLowFDLimit(t *testing.T) {
	b := build(t)
	prlimit := testpeer.Need(t, "prlimit")
	addr, p := serve(t, func(addr string) *exec.Cmd {
		return exec.Command(prlimit, "--nofile=40:40", b.mxfront, "serve", "--listen", addr, "--hostname", "mx.example.test",
			"--deny", "127.0.0.9", "--max-conns-per-ip", "0", "--", "/bin/sh", "-c", echoProgram)
	})
	testpeer.WaitOutput(t, p, "connections limited by the fd limit")
	var held []*testpeer.Client
	greeted, turned := 0, 0
	for i := 0; i < 50; i++ {
		c := testpeer.Dial(t, addr, "127.0.0.9")
		switch line := c.Line(t); {
		case strings.HasPrefix(line, "220 mx.example.test ESMTP"):
			greeted++
			held = append(held, c)
		case strings.HasPrefix(line, "421 4.3.2 mx.example.test Too busy"):
			turned++
			c.Close()
		default:
			t.Fatalf("client %d got %q", i, line)
		}
	}
	if greeted == 0 || turned == 0 || greeted+turned != 50 {
		t.Errorf("%d clients greeted, %d turned away", greeted, turned)
	}
	for _, c := range held {
		c.Close()
	}
	waitCount(t, p, "msg=refused", greeted)
	got := testpeer.Session(t, addr, "127.0.0.9", []byte("QUIT\r\n"), 10*time.Second)
	if !strings.HasPrefix(got, "220 mx.example.test ESMTP") {
		t.Fatalf("after the held clients left, a client got %q", got)
	}
	if p.Cmd.ProcessState != nil {
		t.Fatal("mxfront exited")
	}
}

// Memory follows connections: RSS with 5,000 idle clients held open, and
// back after they leave (no growth with time); the figure is logged.
func TestIdleClientsMemory(t *testing.T) {
	b := build(t)
	const n = 5000
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	p := testpeer.Start(t, exec.Command(b.mxfront, "serve", "--listen", addr, "--deny", "127.0.0.0/8", "--log", "none",
		"--max-conns", "0", "--max-conns-per-ip", "0", "--", "/bin/true"))
	testpeer.WaitTCP(t, addr, 10*time.Second)
	pid := p.Cmd.Process.Pid
	before := rss(t, pid)
	var held []*testpeer.Client
	for i := 0; i < n; i++ {
		c := testpeer.Dial(t, addr, fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250))
		held = append(held, c)
	}
	for _, c := range held {
		c.Await(t, "220 ")
	}
	during := rss(t, pid)
	for _, c := range held {
		c.Close()
	}
	t.Logf("mxfront serve RSS: %d KiB idle, %d KiB with %d idle clients (%.1f KiB each)",
		before, during, n, float64(during-before)/n)
	if during > 256*1024 {
		t.Errorf("RSS %d KiB with %d idle clients: over the 256 MiB for 5,000 budget", during, n)
	}
}

// --max-conns 0 is "no limit", not "until serve runs out of fds": under
// an fd limit of 100, serve says at start that it keeps 18 connections,
// holds them, and tells the next client 421 4.3.2 (not the configured
// limit's 4.7.0).
func TestFDCeiling(t *testing.T) {
	b := build(t)
	addr, p := serve(t, func(addr string) *exec.Cmd {
		return exec.Command("/bin/sh", "-c", `ulimit -n 100 && exec "$0" "$@"`, b.mxfront, "serve", "--listen", addr,
			"--hostname", "mx.example.test", "--deny", "127.0.0.0/8", "--max-conns", "0", "--max-conns-per-ip", "0",
			"--", "/bin/sh", "-c", echoProgram)
	})
	testpeer.WaitOutput(t, p, "msg=\"connections limited by the fd limit\" max_conns=0 fd_limit=100 ceiling=18")
	for i := 0; i < 18; i++ {
		testpeer.Dial(t, addr, fmt.Sprintf("127.0.1.%d", i+1)).Await(t, "220 mx.example.test ESMTP")
	}
	over := testpeer.Session(t, addr, "127.0.2.1", nil, 10*time.Second)
	if over != "421 4.3.2 mx.example.test Too busy, try again later\r\n" {
		t.Fatalf("past the fd ceiling: %q", over)
	}
	waitCount(t, p, "reason=fd-ceiling", 1)
}
