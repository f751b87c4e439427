package testpeer

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SMTP-side helpers shared by the end-to-end packages: a launcher
// (tcpserver), a client (swaks), a raw session, and readers of what
// PROGRAM saw.

// WaitOutput waits (30 s at most) until the process has printed s.
func WaitOutput(t testing.TB, p *Proc, s string) {
	t.Helper()
	WaitCount(t, p, s, 1)
}

// WaitCount waits (30 s at most: a loaded machine) until p has printed s
// n times or more. A log line is written once the client is answered, so
// a test counts lines after waiting for them, never right after the
// client's session.
func WaitCount(t testing.TB, p *Proc, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(p.Output(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s printed %q %d times, want %d; it printed:\n%s", p.Cmd.Path, s, strings.Count(p.Output(), s), n, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TCPServer starts `tcpserver -v -HRl0 IP PORT argv...` on a free port and
// returns the address it listens on (IP may be an IPv6 address such as ::1).
func TCPServer(t testing.TB, ip string, argv ...string) (string, *Proc) {
	t.Helper()
	bin := Need(t, "tcpserver")
	port := FreePort(t)
	args := append([]string{"-v", "-HRl0", ip, fmt.Sprint(port)}, argv...)
	p := Start(t, exec.Command(bin, args...))
	WaitOutput(t, p, "status: 0/")
	return net.JoinHostPort(ip, fmt.Sprint(port)), p
}

// Swaks sends one message from the source address src to server and
// returns its transcript and exit code (0 delivered, 23 MAIL refused, 24
// RCPT refused, ...).
func Swaks(t testing.TB, server, src string, extra ...string) (string, int) {
	t.Helper()
	bin := Need(t, "swaks")
	host, port, _ := net.SplitHostPort(server)
	args := []string{"--server", host, "--port", port, "--to", "user@example.test",
		"--from", "sender@example.org", "--helo", "client.example.org", "--timeout", "20"}
	if src != "" {
		args = append(args, "--local-interface", src)
	}
	args = append(args, extra...)
	return Run(t, 60*time.Second, exec.Command(bin, args...))
}

// Session connects to server from src, sends in at once (as a pipelining
// client would), and returns everything the server said until it closed.
// The test fails if the server still talks after limit.
func Session(t testing.TB, server, src string, in []byte, limit time.Duration) string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", server)
	if err != nil {
		t.Fatalf("dial %s: %v", server, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(limit))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if len(in) > 0 {
			_, _ = c.Write(in)
		}
	}()
	var out []byte
	buf := make([]byte, 64*1024)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("server still talking after %v; said %q", limit, out)
			}
			break
		}
	}
	<-done
	return string(out)
}

// EnvOf parses the output of env(1) into a map.
func EnvOf(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), "="); ok {
			m[k] = v
		}
	}
	return m
}

// Spooled returns the messages testdata/mxsink wrote into dir.
func Spooled(t testing.TB, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var msgs []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".eml") {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, string(b))
		}
	}
	return msgs
}
