package run

import (
	"os"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// ToClient ends chain mode under inetd, where fd 2 is the client's
// connection: the error goes to syslog, as a log line, and an error that
// came before any byte was written to the client (a usage or
// configuration error, a greylist store that cannot be opened) answers 421
// so that the client retries later. Other failures (PROGRAM could not
// run, an internal error) have answered the client already. It returns
// the exit code. Both executables use it: mxfront, and mxfront-cli when
// mxfront execs it for chain mode with a Redis store.
func ToClient(err error) int {
	code, msg, hint := Describe(err)
	if code == 0 {
		return 0
	}
	if log, lerr := logline.Open("syslog-or-none"); lerr == nil {
		log.Error("not started", "error", msg, "hint", hint, "exit", code)
	}
	if !Answered(err) {
		host, _ := os.Hostname()
		_, _ = os.Stdout.WriteString(frontend.Unavailable(sanitize.Text(host, 255)).Wire())
	}
	return code
}
