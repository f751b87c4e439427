// Command mxfront-cli is mxfront's full command-line application, built on
// urfave/cli: `mxfront serve`, `check`, `greylist`, help, and usage errors.
// Users run mxfront; mxfront (cmd/mxfront, kept lean because chain mode
// starts a process per connection) runs chain mode itself and execs
// mxfront-cli, installed beside it, for everything else. mxfront-cli also
// runs chain mode, so it can stand in for mxfront anywhere.
// This file and its siblings hold only wiring: flags, help, exit codes.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/urfave/cli/v2"
)

const chainUsage = `mxfront [flags] [--] PROGRAM [ARGS...]
   mxfront serve [--listen ADDR]... [flags] [--] PROGRAM [ARGS...]
   mxfront check [flags] IP [--helo NAME]
   mxfront check --lists [flags]
   mxfront greylist list|allow|remove|expire|compact|stats|export|import [flags]`

const chainDescription = `Chain mode (the default) decides on the one connection it was given (fd 0
from tcpserver, inetd/xinetd nowait or systemd Accept=yes with StandardInput=socket;
fd 3 from systemd Accept=yes; pipes with TCPREMOTEIP set), then execs PROGRAM on
it, or speaks a refusal dialogue itself and exits.

Everything after the first argument that is not a flag (or after --) is PROGRAM
and its arguments, untouched. Subcommands (serve, check, greylist) are
recognised only as the first argument: to run a program named like one in chain
mode, put -- before it.

Exit codes: 0 a refusal dialogue ended; 100 usage or configuration error;
111 temporary failure (PROGRAM could not be run: the client got 421).
Under inetd, where fd 2 is the client's connection, errors go to syslog
and the client hears 421. See mxfront(8).`

func main() {
	os.Exit(dispatch(os.Args, os.Stderr))
}

// dispatch dispatches on the first argument, so that a PROGRAM (or its
// arguments) named like a subcommand is never mistaken for one after flags.
func dispatch(args []string, stderr io.Writer) int {
	if len(args) > 1 {
		switch args[1] {
		case "serve":
			return runApp(serveApp(), args[0:1], args[2:], stderr)
		case "check":
			return runApp(checkApp(), args[0:1], permute(args[2:], checkFlags()), stderr)
		case "greylist":
			return runApp(greylistApp(), args[0:1], args[2:], stderr)
		case "version", "--version":
			fmt.Fprintln(os.Stdout, "mxfront", run.Version())
			return 0
		}
	}
	// The fast path: chain mode without building the cli application.
	if opts, argv, ok := config.ParseChain(args[1:]); ok && len(argv) > 0 {
		err := chain(opts, argv)
		if logline.IsInetSocket(2) {
			// inetd: fd 2 is the client (mxfront execs mxfront-cli for
			// chain mode with a Redis store).
			return run.ToClient(err)
		}
		return run.Report(err, stderr)
	}
	return runApp(chainApp(), args[0:1], args[1:], stderr)
}

func runApp(app *cli.App, name, args []string, stderr io.Writer) int {
	app.Writer, app.ErrWriter = os.Stdout, stderr
	app.HideHelpCommand = true
	app.DisableSliceFlagSeparator = true
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.OnUsageError = func(c *cli.Context, err error, _ bool) error {
		return fail.Usage("run '"+app.HelpName+" --help' for the flags", "%v", err)
	}
	return run.Report(app.RunContext(context.Background(), append(name, args...)), stderr)
}

func chainApp() *cli.App {
	return &cli.App{
		Name:        "mxfront",
		HelpName:    "mxfront",
		Usage:       "connection-time SMTP frontend: decide, then exec the real server",
		UsageText:   chainUsage,
		Description: chainDescription,
		Version:     run.Version(),
		Flags:       policyFlags(),
		Action:      chainAction,
	}
}

func chainAction(c *cli.Context) error {
	return chain(cliOptions{c}, c.Args().Slice())
}

// permute moves flags (and their values) after positional arguments to the
// front, so that `mxfront check 192.0.2.7 --deny 192.0.2.0/24` works:
// urfave/cli v2 stops parsing at the first argument. "--" ends flags.
func permute(args []string, flags []cli.Flag) []string {
	takesValue := map[string]bool{}
	for _, f := range flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var fl, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		fl = append(fl, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(args) {
			fl = append(fl, args[i+1])
			i++
		}
	}
	if len(pos) > 0 {
		fl = append(fl, "--")
	}
	return append(fl, pos...)
}
