// Package chain_test is the end-to-end suite of mxfront's chain mode and
// basic serve mode: the real launchers (tcpserver, systemd-socket-activate,
// xinetd), a real client (swaks) and a real SMTP server (exim4 -bs) on
// loopback. Each test reads like a runbook: start this, connect like that,
// see this.
package chain_test

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

type bins struct {
	mxfront, mxsink, goexec string
}

func build(t *testing.T) bins {
	dir := testpeer.Binaries(t)
	return bins{
		mxfront: filepath.Join(dir, "mxfront"),
		mxsink:  filepath.Join(dir, "mxsink"),
		goexec:  filepath.Join(dir, "goexec"),
	}
}

// waitOutput waits until the process has printed s.
func waitOutput(t *testing.T, p *testpeer.Proc, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Output(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q; it printed:\n%s", p.Cmd.Path, s, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tcpserver starts `tcpserver -v -HRl0 IP PORT argv...` and returns the
// address it listens on.
func tcpserver(t *testing.T, ip string, argv ...string) (string, *testpeer.Proc) {
	t.Helper()
	bin := testpeer.Need(t, "tcpserver")
	port := testpeer.FreePort(t)
	args := append([]string{"-v", "-HRl0", ip, fmt.Sprint(port)}, argv...)
	p := testpeer.Start(t, exec.Command(bin, args...))
	waitOutput(t, p, "status: 0/")
	return net.JoinHostPort(ip, fmt.Sprint(port)), p
}

// swaks sends one message from the source address src and returns its
// transcript and exit code (0 delivered, 23 MAIL, 24 RCPT refused, ...).
func swaks(t *testing.T, server, src string, extra ...string) (string, int) {
	t.Helper()
	bin := testpeer.Need(t, "swaks")
	host, port, _ := net.SplitHostPort(server)
	args := []string{"--server", host, "--port", port, "--to", "user@example.test",
		"--from", "sender@example.org", "--helo", "client.example.org", "--timeout", "20"}
	if src != "" {
		args = append(args, "--local-interface", src)
	}
	args = append(args, extra...)
	return testpeer.Run(t, 60*time.Second, exec.Command(bin, args...))
}

// session connects from src, sends in (all at once, as a pipelining client
// would), and returns everything the server said until it closed.
func session(t *testing.T, server, src string, in []byte, limit time.Duration) string {
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
	c.SetDeadline(time.Now().Add(limit))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if len(in) > 0 {
			c.Write(in)
		}
	}()
	var out []byte
	buf := make([]byte, 64*1024)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("server still talking after %v; said %q", limit, truncate(out))
			}
			break
		}
	}
	<-done
	return string(out)
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:1000]) + " ... " + string(b[len(b)-1000:])
	}
	return string(b)
}

// envOf parses `env` output into a map.
func envOf(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), "="); ok {
			m[k] = v
		}
	}
	return m
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// spooled returns the messages mxsink wrote into dir.
func spooled(t *testing.T, dir string) []string {
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

// contrib reads a file from contrib/, the very files administrators install.
func contrib(t *testing.T, name string) string {
	t.Helper()
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "contrib", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
