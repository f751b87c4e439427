// Command mxfront is a connection-time SMTP frontend: it decides on the
// connecting client (allow/deny lists, DNS lists, greylisting, ...) and
// then execs the real SMTP server on the same connection, or refuses the
// client itself.
//
// In chain mode (tcpserver, inetd, systemd Accept=yes) mxfront starts once
// per connection, and on a small VM every page a process touches at start
// costs microseconds: this command is kept lean. It parses chain mode's
// flags with internal/config's table-driven parser and links neither
// urfave/cli nor anything else only the other commands need. Everything
// else (serve, check, greylist, --help, version, and any usage error) is
// mxfront-cli's, the full urfave/cli application installed beside it:
// mxfront execs it with the same arguments in the same process, so a
// systemd unit's notify socket and passed sockets stay valid.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/logline"
)

// libexecDir is where `make install` puts mxfront-cli, set at link time.
// mxfront-cli beside mxfront's own executable is looked for first.
var libexecDir = ""

// cliName is the full command-line application's executable.
const cliName = "mxfront-cli"

func main() {
	args := os.Args
	if len(args) > 1 && subcommand(args[1]) {
		os.Exit(run.Report(execCLI(args), os.Stderr))
	}
	opts, argv, ok := config.ParseChain(args[1:])
	if ok && len(argv) > 0 && (config.WantsNetworkStore(opts) || opts.Bool("inspect")) {
		// A Redis greylist: mxfront-cli links its client, which would
		// cost every connection's start here (about 0.4 ms) on the sites
		// that greylist in a bbolt file, or not at all. So for the
		// inspecting relay (net, crypto/tls).
		err := execCLI(args)
		var ee *run.ExitError
		if errors.As(err, &ee) && ee.Code == run.ExitUsage {
			ee.Hint = "chain mode with a Redis store (--greylist-store redis://...) runs " + cliName +
				", which links the Redis client: install it beside mxfront (make install, or go install ./cmd/...)"
			if opts.Bool("inspect") {
				ee.Hint = "chain mode with --inspect runs " + cliName + ", which links the relay: install it beside mxfront (make install, or go install ./cmd/...)"
			}
		}
		if logline.IsInetSocket(2) {
			os.Exit(run.ToClient(err))
		}
		os.Exit(run.Report(err, os.Stderr))
	}
	if logline.IsInetSocket(2) {
		// inetd gives the client's connection as fds 0, 1 and 2: an error
		// must reach syslog, not the client, and the client must hear an
		// SMTP answer that makes it retry.
		err := fail.Usage("run 'mxfront --help' for the flags", "bad command line %q", args[1:])
		if ok && len(argv) > 0 {
			err = run.Chain(opts, argv)
		}
		os.Exit(run.ToClient(err))
	}
	if ok && len(argv) > 0 {
		os.Exit(run.Report(run.Chain(opts, argv), os.Stderr))
	}
	os.Exit(run.Report(execCLI(args), os.Stderr))
}

// subcommand reports whether arg, the first argument, is one of
// mxfront-cli's commands: only the first argument can be one, so a
// PROGRAM named like a subcommand runs in chain mode after flags or --.
func subcommand(arg string) bool {
	switch arg {
	case "serve", "check", "greylist", "version", "--version":
		return true
	}
	return false
}

// execCLI replaces this process by mxfront-cli with the same arguments
// and environment. It returns only if that fails.
func execCLI(args []string) error {
	tried := cliPaths()
	for _, p := range tried {
		if err := syscall.Access(p, 1 /* X_OK */); err != nil {
			continue
		}
		err := syscall.Exec(p, args, os.Environ())
		return &run.ExitError{Code: run.ExitTemp, Err: fmt.Errorf("exec %s: %v", p, err)}
	}
	return &run.ExitError{Code: run.ExitUsage,
		Err:  fmt.Errorf("%s not found (looked for %q)", cliName, tried),
		Hint: "mxfront runs chain mode itself; serve, check, greylist and --help are " + cliName + "'s: install it beside mxfront (make install, or go install ./cmd/...)"}
}

// cliPaths are the places mxfront-cli may be, in order.
func cliPaths() []string {
	var out []string
	if exe, err := os.Executable(); err == nil {
		out = append(out, filepath.Join(filepath.Dir(exe), cliName))
	}
	if libexecDir != "" {
		out = append(out, filepath.Join(libexecDir, cliName))
	}
	return out
}
