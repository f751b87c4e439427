package testpeer

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// UnboundConfig is an unbound.conf for a resolver in the foreground on
// 127.0.0.1:port (files in dir) that answers from zones (lines of the
// server: clause: local-zone, local-data, local-data-ptr) and from the stub
// zones (zone name → its server's HOST:PORT, on loopback: unbound is told
// it may ask there, and caches what it hears), and refuses every other
// name, so that nothing is ever asked of the outside.
func UnboundConfig(port int, dir, zones string, stubs map[string]string) string {
	names := make([]string, 0, len(stubs))
	for z := range stubs {
		names = append(names, z)
	}
	sort.Strings(names)
	conf := fmt.Sprintf(`server:
  interface: 127.0.0.1
  port: %d
  do-daemonize: no
  use-syslog: no
  logfile: ""
  username: ""
  chroot: ""
  directory: "%s"
  pidfile: "%s/unbound.pid"
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  # Stub servers are on loopback, which unbound never asks by default.
  do-not-query-localhost: no
  local-zone: "." refuse
%s
`, port, dir, dir, zones)
	for _, z := range names {
		// transparent: not the root's refusal, so the stub answers.
		conf += fmt.Sprintf("  local-zone: %q transparent\n", z+".")
	}
	for _, z := range names {
		host, sport, _ := net.SplitHostPort(stubs[z])
		conf += fmt.Sprintf("stub-zone:\n  name: %q\n  stub-addr: %s@%s\n", z+".", host, sport)
	}
	return conf + "remote-control:\n  control-enable: no\n"
}

// StartUnbound runs unbound (UnboundConfig) on a free loopback port and
// returns its HOST:PORT. It is stopped by PID when the test ends.
func StartUnbound(t testing.TB, zones string, stubs map[string]string) string {
	t.Helper()
	bin := Need(t, "unbound")
	dir := t.TempDir()
	port := FreePort(t)
	p := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(p, []byte(UnboundConfig(port, dir, zones, stubs)), 0o644); err != nil {
		t.Fatal(err)
	}
	proc := Start(t, exec.Command(bin, "-d", "-c", p))
	WaitOutput(t, proc, "start of service")
	return fmt.Sprintf("127.0.0.1:%d", port)
}
