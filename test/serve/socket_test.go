package serve_test

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// Two named sockets from systemd (Accept=no): PROGRAM learns which one its
// client came in on from MXFRONT_SOCKET.
func TestSocketName(t *testing.T) {
	b := build(t)
	ssa := testpeer.Need(t, "systemd-socket-activate")
	smtp := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	submission := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	p := testpeer.Start(t, exec.Command(ssa, "-l", smtp, "-l", submission, "--fdname=smtp:submission",
		b.mxfront, "serve", "--", "/bin/sh", "-c", echoProgram))
	testpeer.WaitOutput(t, p, "Listening on "+submission)
	for addr, name := range map[string]string{smtp: "smtp", submission: "submission"} {
		c := testpeer.Dial(t, addr, "127.0.0.2")
		c.Await(t, "220 child ip=127.0.0.2 local=127.0.0.1 socket="+name+" ")
	}
}
