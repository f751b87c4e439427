// Package relay_test is the end-to-end suite of the inspecting relay
// (mxfront --inspect): tcpserver and serve mode in front of exim4 -bs,
// swaks and raw clients, an unbound on loopback that serves the sender
// domains' MX records, recipient sources made with tinycdb's cdb tool and
// a RCPTCHECK script. Each test reads like a runbook.
package relay_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testpeer.RemoveBuilds()
	os.Exit(code)
}

type bins struct{ mxfront, cli, mxsink string }

func build(t *testing.T) bins {
	dir := testpeer.Binaries(t)
	return bins{mxfront: filepath.Join(dir, "mxfront"), cli: filepath.Join(dir, "mxfront-cli"), mxsink: filepath.Join(dir, "mxsink")}
}

// zones are the sender domains the tests' unbound knows: static zones
// (NXDOMAIN for names they lack); every other name is REFUSED, so that
// nothing is ever asked of the outside.
const zones = `
  local-zone: "example.org." static
  local-data: "example.org. IN MX 10 mx.example.org."
  local-data: "mx.example.org. IN A 127.0.0.1"
  local-zone: "addr.example." static
  local-data: "addr.example. IN A 192.0.2.1"
  local-zone: "null.example." static
  local-data: "null.example. IN MX 0 ."
  local-zone: "nodata.example." static
  local-data: "nodata.example. IN TXT \"no mail here\""
`

// startUnbound runs unbound on a free loopback port, answering from
// zones only, and returns its HOST:PORT.
func startUnbound(t *testing.T) string { return testpeer.StartUnbound(t, zones, nil) }

// site is what every relay test configures: the recipients of
// example.test, its local domain, and the DNS server.
type site struct {
	dir, rcptFile, domains, dns string
}

func newSite(t *testing.T) site {
	dir := t.TempDir()
	return site{
		dir:      dir,
		rcptFile: testpeer.WriteFile(t, dir, "rcpts", "alice@example.test\nbob@example.test\n# a comment\n!closed@example.test\n"),
		domains:  testpeer.WriteFile(t, dir, "rcpthosts", "example.test\n"),
		dns:      startUnbound(t),
	}
}

// flags are mxfront's flags for the site, then extra.
func (s site) flags(extra ...string) []string {
	return append([]string{"--inspect", "--rcpt-file", s.rcptFile, "--local-domains", s.domains,
		"--dns-server", s.dns, "--hostname", "mx.example.test", "--log", "stderr"}, extra...)
}

// eximLogHas reports whether exim's logs name s.
func eximLogHas(ex *testpeer.Exim, s string) bool { return strings.Contains(ex.Log(), s) }

// awaitMessages waits (30 s at most) until exim's maildir holds n messages.
func awaitMessages(t *testing.T, ex *testpeer.Exim, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msgs := ex.Messages(t)
		if len(msgs) >= n || time.Now().After(deadline) {
			return msgs
		}
		time.Sleep(20 * time.Millisecond)
	}
}
