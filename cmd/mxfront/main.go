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
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/config"
)

// libexecDir is where `make install` puts mxfront-cli, set at link time.
// mxfront-cli beside mxfront's own executable is looked for first.
var libexecDir = ""

// cliName is the full command-line application's executable.
const cliName = "mxfront-cli"

func main() {
	args := os.Args
	if len(args) > 1 && !subcommand(args[1]) {
		if opts, argv, ok := config.ParseChain(args[1:]); ok && len(argv) > 0 {
			os.Exit(config.Exit(config.RunChain(opts, argv), os.Stderr))
		}
	}
	os.Exit(config.Exit(execCLI(args), os.Stderr))
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
		return &config.ExitError{Code: frontend.ExitTemp, Err: fmt.Errorf("exec %s: %v", p, err)}
	}
	return &config.ExitError{Code: frontend.ExitUsage,
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
