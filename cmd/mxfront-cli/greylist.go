package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/sanitize"
	"github.com/urfave/cli/v2"
)

// adminLockWait is how long a `mxfront greylist` command waits for the
// database's lock (chain mode waits far less, and passes the client).
const adminLockWait = 10 * time.Second

// greylistAdminSpecs are the flags every `mxfront greylist` command takes:
// the database and the policy it is judged by.
func greylistAdminSpecs() []config.Spec {
	var out []config.Spec
	for _, s := range config.GreylistSpecs {
		switch s.Name {
		case "greylist-db", "greylist-delay", "greylist-window", "greylist-lifetime", "greylist-v4-prefix", "greylist-v6-prefix":
			out = append(out, s)
		}
	}
	return out
}

// greylistCommand is one `mxfront greylist` command.
type greylistCommand struct {
	name, args, usage string
	nargs             int
	flags             []cli.Flag
	run               func(c *cli.Context, p *greylist.Policy, s *greylist.Bolt) error
}

var greylistCommands = []greylistCommand{
	{name: "list", usage: "print every recorded network: its status (pending, passing, stale), first seen, last pass",
		flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON array of {network, first_seen, last_pass, status}"}},
		run:   greylistList},
	{name: "allow", args: "NET", nargs: 1, usage: "record NET (an address, or a network of the configured length) as passed now", run: greylistAllow},
	{name: "remove", args: "NET", nargs: 1, usage: "delete NET's record: its next client is greylisted as new (exit 1: there was none)", run: greylistRemove},
	{name: "expire", usage: "delete the records past the window or the lifetime, and unreadable ones", run: greylistExpire},
	{name: "compact", usage: "rewrite the database file without its free pages (needs room for a copy)", run: greylistCompact},
	{name: "stats", usage: "count the networks by status and tell the file's size", run: greylistStats},
}

const greylistUsage = `Every command takes --greylist-db and the durations and prefixes mxfront runs
with (a status and a NET are judged by them), and is safe while mxfront runs:
each operation takes the database's lock for a moment, as mxfront does. A
mxfront serve process keeps networks known to pass in memory for up to 60s,
so a remove takes effect there within a minute.

Exit codes: 0 done; 1 remove found no record; 100 usage error; 111 the
database failed (locked beyond 10s, damaged, unwritable).`

// greylistApp is `mxfront greylist list|allow|remove|expire|compact|stats`.
func greylistApp() *cli.App {
	var cmds []*cli.Command
	for _, gc := range greylistCommands {
		cmds = append(cmds, &cli.Command{
			Name: gc.name, Usage: gc.usage, ArgsUsage: gc.args,
			// Each command parses its own arguments, flags after NET too.
			SkipFlagParsing: true,
			Action:          func(c *cli.Context) error { return runGreylistCommand(c, gc) },
		})
	}
	return &cli.App{
		Name:        "greylist",
		HelpName:    "mxfront greylist",
		Usage:       "inspect and manage the greylist database",
		UsageText:   "mxfront greylist list|allow NET|remove NET|expire|compact|stats [flags]",
		Description: greylistUsage,
		Commands:    cmds,
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fail.Usage("e.g. mxfront greylist list --greylist-db /var/lib/mxfront/greylist.db", "no command given")
			}
			return fail.Usage("run 'mxfront greylist --help' for the commands", "unknown command %q", sanitize.Text(c.Args().First(), 64))
		},
	}
}

func runGreylistCommand(parent *cli.Context, gc greylistCommand) error {
	flags := append(cliFlags(greylistAdminSpecs()), gc.flags...)
	app := &cli.App{
		Name:        gc.name,
		HelpName:    "mxfront greylist " + gc.name,
		Usage:       gc.usage,
		UsageText:   "mxfront greylist " + gc.name + " [flags] " + gc.args,
		Description: greylistUsage,
		Flags:       flags,
		Action: func(c *cli.Context) error {
			if c.NArg() != gc.nargs {
				if gc.nargs == 0 {
					return fail.Usage("run 'mxfront greylist "+gc.name+" --help'", "%s takes no arguments", gc.name)
				}
				return fail.Usage("NET is an address (192.0.2.7) or a network of the configured length (192.0.2.0/24)", "%s takes one NET", gc.name)
			}
			p, s, err := config.OpenGreylist(cliOptions{c}, adminLockWait)
			if err != nil {
				return err
			}
			defer s.Close()
			return gc.run(c, p, s)
		},
	}
	app.Writer, app.ErrWriter = parent.App.Writer, parent.App.ErrWriter
	app.HideHelpCommand = true
	app.DisableSliceFlagSeparator = true
	app.ExitErrHandler = func(*cli.Context, error) {}
	app.OnUsageError = func(c *cli.Context, err error, _ bool) error {
		return fail.Usage("run '"+app.HelpName+" --help' for the flags", "%v", err)
	}
	args := permute(parent.Args().Slice(), flags)
	return app.RunContext(parent.Context, append([]string{app.HelpName}, args...))
}

// dbErr is a failure of the database: exit 111, as for any temporary error.
func dbErr(err error) error {
	return &run.ExitError{Code: run.ExitTemp, Err: err,
		Hint: "the database may be locked by a long operation, damaged or unwritable; mxfront passes clients meanwhile"}
}

func greylistList(c *cli.Context, p *greylist.Policy, _ *greylist.Bolt) error {
	w := c.App.Writer
	if c.Bool("json") {
		return listJSON(c.Context, w, p)
	}
	fmt.Fprintf(w, "%-44s %-8s %-20s %s\n", "NETWORK", "STATUS", "FIRST_SEEN", "LAST_PASS")
	err := p.List(c.Context, func(e greylist.Entry) error {
		last := "-"
		if !e.LastPass.IsZero() {
			last = e.LastPass.UTC().Format(time.RFC3339)
		}
		_, err := fmt.Fprintf(w, "%-44s %-8s %-20s %s\n", e.Network, e.Status, e.FirstSeen.UTC().Format(time.RFC3339), last)
		return err
	})
	if err != nil {
		return dbErr(err)
	}
	return nil
}

// listJSON streams the array, so that a million networks need no memory.
func listJSON(ctx context.Context, w io.Writer, p *greylist.Policy) error {
	first := true
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	err := p.List(ctx, func(e greylist.Entry) error {
		e.FirstSeen, e.LastPass = e.FirstSeen.UTC(), e.LastPass.UTC()
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		sep := ",\n"
		if first {
			sep, first = "\n", false
		}
		_, err = io.WriteString(w, sep+string(b))
		return err
	})
	if err != nil {
		return dbErr(err)
	}
	_, err = io.WriteString(w, "\n]\n")
	return err
}

func parseNET(c *cli.Context, p *greylist.Policy) (netip.Prefix, error) {
	n, err := p.ParseNetwork(c.Args().First())
	if err != nil {
		return n, fail.Usage("NET is an address (192.0.2.7) or a network of the configured length (192.0.2.0/24)", "%v", err)
	}
	return n, nil
}

func greylistAllow(c *cli.Context, p *greylist.Policy, _ *greylist.Bolt) error {
	n, err := parseNET(c, p)
	if err != nil {
		return err
	}
	if err = p.Allow(c.Context, n); err != nil {
		return dbErr(err)
	}
	fmt.Fprintf(c.App.Writer, "allowed %v\n", n)
	return nil
}

func greylistRemove(c *cli.Context, p *greylist.Policy, _ *greylist.Bolt) error {
	n, err := parseNET(c, p)
	if err != nil {
		return err
	}
	found, err := p.Remove(c.Context, n)
	if err != nil {
		return dbErr(err)
	}
	if !found {
		fmt.Fprintf(c.App.Writer, "%v: no record\n", n)
		return &run.ExitError{Code: 1}
	}
	fmt.Fprintf(c.App.Writer, "removed %v\n", n)
	return nil
}

func greylistExpire(c *cli.Context, p *greylist.Policy, _ *greylist.Bolt) error {
	e, err := p.Expire(c.Context)
	if err != nil {
		return dbErr(err)
	}
	fmt.Fprintf(c.App.Writer, "expired %d: abandoned %d, lapsed %d, unreadable %d\n",
		e.Abandoned+e.Lapsed+e.Unreadable, e.Abandoned, e.Lapsed, e.Unreadable)
	return nil
}

func greylistCompact(c *cli.Context, _ *greylist.Policy, s *greylist.Bolt) error {
	r, err := s.Compact(c.Context)
	if err != nil {
		return dbErr(err)
	}
	fmt.Fprintf(c.App.Writer, "compacted %s: %d bytes before, %d after\n", s.Path(), r.Before, r.After)
	return nil
}

func greylistStats(c *cli.Context, p *greylist.Policy, _ *greylist.Bolt) error {
	st, err := p.Stats(c.Context)
	if err != nil {
		return dbErr(err)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "pending: %d\npassing: %d\nstale: %d\nnetworks: %d\nbytes: %d\n",
		st.Pending, st.Passing, st.Stale, st.Pending+st.Passing+st.Stale, st.Bytes)
	return nil
}
