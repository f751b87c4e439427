// Package greylist_test is the end-to-end suite of greylisting, the
// greeting delay and the HELO check: real launchers (tcpserver, mxfront
// serve), a real client (swaks, from several loopback addresses), the demo
// server mxsink as PROGRAM, and `mxfront greylist` run beside them. Each
// test reads like a runbook.
package greylist_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

type bins struct{ mxfront, mxsink string }

// Shared with the other end-to-end packages.
var (
	waitOutput = testpeer.WaitOutput
	spooled    = testpeer.Spooled
)

func build(t *testing.T) bins {
	dir := testpeer.Binaries(t)
	return bins{mxfront: filepath.Join(dir, "mxfront"), mxsink: filepath.Join(dir, "mxsink")}
}

// tcpserver starts `tcpserver -v -HRl0 -c 60 127.0.0.1 PORT argv...` and
// returns the address it listens on.
func tcpserver(t *testing.T, argv ...string) (string, *testpeer.Proc) {
	t.Helper()
	bin := testpeer.Need(t, "tcpserver")
	port := testpeer.FreePort(t)
	args := append([]string{"-v", "-HRl0", "-c", "60", "127.0.0.1", fmt.Sprint(port)}, argv...)
	p := testpeer.Start(t, exec.Command(bin, args...))
	waitOutput(t, p, "status: 0/")
	return fmt.Sprintf("127.0.0.1:%d", port), p
}

// serve starts `mxfront serve --listen 127.0.0.1:PORT args...`.
func serve(t *testing.T, b bins, args ...string) (string, *testpeer.Proc) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	p := testpeer.Start(t, exec.Command(b.mxfront, append([]string{"serve", "--listen", addr}, args...)...))
	waitOutput(t, p, "addr="+addr)
	return addr, p
}

// swaks sends one message from src with HELO client.example.org (or the
// --helo in extra) and returns its transcript and exit code (0 delivered,
// 24 RCPT refused).
func swaks(t *testing.T, server, src string, extra ...string) (string, int) {
	t.Helper()
	bin := testpeer.Need(t, "swaks")
	host, port, _ := net.SplitHostPort(server)
	args := []string{"--server", host, "--port", port, "--to", "user@example.test",
		"--from", "sender@example.org", "--timeout", "20", "--local-interface", src}
	if !contains(extra, "--helo") {
		args = append(args, "--helo", "client.example.org")
	}
	return testpeer.Run(t, 60*time.Second, exec.Command(bin, append(args, extra...)...))
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// mustGreylisted checks that a swaks run met greylisting's 451 at RCPT.
func mustGreylisted(t *testing.T, out string, code int, who string) {
	t.Helper()
	if code != 24 || !strings.Contains(out, "451 4.7.1 Greylisted: please try again in") {
		t.Fatalf("%s: want 451 4.7.1 Greylisted at RCPT (swaks exit 24), got exit %d:\n%s", who, code, out)
	}
}

func mustPass(t *testing.T, out string, code int, who string) {
	t.Helper()
	if code != 0 {
		t.Fatalf("%s: want delivery (swaks exit 0), got exit %d:\n%s", who, code, out)
	}
}

// admin runs `mxfront greylist ARGS... --greylist-db DB` and returns its
// output and exit code.
func admin(t *testing.T, b bins, db string, args ...string) (string, int) {
	t.Helper()
	return testpeer.Run(t, 30*time.Second, exec.Command(b.mxfront, append(append([]string{"greylist"}, args...), "--greylist-db", db)...))
}

type entry struct {
	Network   string    `json:"network"`
	FirstSeen time.Time `json:"first_seen"`
	LastPass  time.Time `json:"last_pass"`
	Status    string    `json:"status"`
}

// listed returns `mxfront greylist list --json` as network → status.
func listed(t *testing.T, b bins, db string, extra ...string) map[string]string {
	t.Helper()
	out, code := admin(t, b, db, append([]string{"list", "--json"}, extra...)...)
	if code != 0 {
		t.Fatalf("greylist list --json: exit %d\n%s", code, out)
	}
	var es []entry
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatalf("greylist list --json: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, e := range es {
		if e.FirstSeen.IsZero() {
			t.Errorf("%s: no first_seen: %s", e.Network, out)
		}
		m[e.Network] = e.Status
	}
	return m
}

// envHeader returns the value of NAME in a spooled message's environment.
func envHeader(msg, name string) string {
	for _, line := range strings.Split(msg, "\n") {
		if v, ok := strings.CutPrefix(line, "X-Mxsink-Env: "+name+"="); ok {
			return v
		}
	}
	return ""
}

// sleepUntil sleeps until t.
func sleepUntil(when time.Time) { time.Sleep(time.Until(when)) }
