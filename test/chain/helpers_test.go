// Package chain_test is the end-to-end suite of mxfront's chain mode and
// basic serve mode: the real launchers (tcpserver, systemd-socket-activate,
// xinetd), a real client (swaks) and a real SMTP server (exim4 -bs) on
// loopback. Each test reads like a runbook: start this, connect like that,
// see this.
package chain_test

import (
	"path/filepath"
	"testing"

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

// The SMTP-side helpers are shared with the other end-to-end packages.
var (
	waitOutput = testpeer.WaitOutput
	tcpserver  = testpeer.TCPServer
	swaks      = testpeer.Swaks
	session    = testpeer.Session
	envOf      = testpeer.EnvOf
	spooled    = testpeer.Spooled
)

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:1000]) + " ... " + string(b[len(b)-1000:])
	}
	return string(b)
}
