package serve_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// haproxy (send-proxy-v2, and send-proxy for v1) in front of mxfront serve
// --proxy-protocol: PROGRAM sees the client's address, not haproxy's, and
// the deny list applies to the client's address. haproxy listens on
// 127.0.0.2 and connects to mxfront from 127.0.0.1, the only --proxy-from.
func TestHAProxy(t *testing.T) {
	b := build(t)
	bin := testpeer.Need(t, "haproxy")
	for _, tc := range []struct{ name, option string }{{"v2", "send-proxy-v2"}, {"v1", "send-proxy"}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			spool := filepath.Join(dir, "spool")
			addr, p := serve(t, func(addr string) *exec.Cmd {
				return exec.Command(b.mxfront, "serve", "--listen", addr, "--hostname", "mx.example.test",
					"--proxy-protocol", "--proxy-from", "127.0.0.1/32", "--deny", "127.0.0.66 Denied behind the proxy",
					"--", b.mxsink, "-spool", spool)
			})
			front := fmt.Sprintf("127.0.0.2:%d", testpeer.FreePort(t))
			cfg := testpeer.WriteFile(t, dir, "haproxy.cfg", fmt.Sprintf(`global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend smtp
    bind %s
    default_backend mx
backend mx
    server mx %s %s
`, front, addr, tc.option))
			h := testpeer.Start(t, exec.Command(bin, "-db", "-f", cfg))
			waitTCPFrom(t, front, "127.0.0.4")
			_ = h

			if out, code := testpeer.Swaks(t, front, "127.0.0.5"); code != 0 {
				t.Fatalf("client through haproxy: swaks exit %d\n%s", code, out)
			}
			msgs := testpeer.Spooled(t, spool)
			if len(msgs) != 1 {
				t.Fatalf("sink holds %d messages", len(msgs))
			}
			for _, want := range []string{"TCPREMOTEIP=127.0.0.5", "TCPLOCALIP=127.0.0.2", "MXFRONT_VERDICT=pass"} {
				if !strings.Contains(msgs[0], "X-Mxsink-Env: "+want+"\n") {
					t.Errorf("PROGRAM's environment lacks %s:\n%s", want, msgs[0])
				}
			}
			out, code := testpeer.Swaks(t, front, "127.0.0.66")
			if code != 24 || !strings.Contains(out, "554 5.7.1 Denied behind the proxy") {
				t.Fatalf("denied client through haproxy: swaks exit %d\n%s", code, out)
			}
			testpeer.WaitOutput(t, p, "msg=refused ip=127.0.0.66")
			if strings.Contains(p.Output(), "pass ip=127.0.0.1 ") || strings.Contains(p.Output(), "refused ip=127.0.0.1 ") {
				t.Errorf("haproxy's address reached the log:\n%s", p.Output())
			}
			// The proxy a client came through is logged as via=.
			for _, prefix := range []string{"msg=pass ip=127.0.0.5 ", "msg=refused ip=127.0.0.66 "} {
				if line := logLine(p.Output(), prefix); !strings.Contains(line, " via=127.0.0.1 ") {
					t.Errorf("no via=127.0.0.1 in the line %q", line)
				}
			}
			// haproxy's own address without a header is refused (a header
			// from an unlisted peer is pinned by frontend's TestServeProxy).
			if got := testpeer.Session(t, addr, "127.0.0.1", []byte("EHLO no.header.example\r\n"), 10*time.Second); !strings.HasPrefix(got, "421 4.7.0 mx.example.test Error: no valid PROXY header") {
				t.Errorf("the proxy's address without a header: %q", got)
			}
			// Direct clients of an unlisted address are served as they are.
			if out, code := testpeer.Swaks(t, addr, "127.0.0.3"); code != 0 {
				t.Fatalf("direct client: swaks exit %d\n%s", code, out)
			}
			if msgs := testpeer.Spooled(t, spool); len(msgs) != 2 || !strings.Contains(strings.Join(msgs, ""), "TCPREMOTEIP=127.0.0.3\n") {
				t.Errorf("direct client's message: %v", msgs)
			}
			testpeer.WaitOutput(t, p, "msg=pass ip=127.0.0.3 ")
			if line := logLine(p.Output(), "msg=pass ip=127.0.0.3 "); line == "" || strings.Contains(line, "via=") {
				t.Errorf("direct client's line %q: want one, without via=", line)
			}
		})
	}
}

// logLine returns the first line of out that contains prefix, or "".
func logLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, prefix) {
			return l
		}
	}
	return ""
}
