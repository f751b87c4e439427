package testpeer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// StartUnbound runs unbound in the foreground on a free loopback port and
// returns its HOST:PORT. It answers from zones (lines of unbound.conf's
// server: clause such as local-zone, local-data and local-data-ptr,
// optionally followed by whole stub-zone: or forward-zone: clauses) and
// refuses every other name, so that nothing is ever asked of the outside.
// It is stopped by PID when the test ends.
func StartUnbound(t testing.TB, zones string) string {
	t.Helper()
	bin := Need(t, "unbound")
	dir := t.TempDir()
	port := FreePort(t)
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
  local-zone: "." refuse
%s
remote-control:
  control-enable: no
`, port, dir, dir, zones)
	p := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	proc := Start(t, exec.Command(bin, "-d", "-c", p))
	WaitOutput(t, proc, "start of service")
	return fmt.Sprintf("127.0.0.1:%d", port)
}
