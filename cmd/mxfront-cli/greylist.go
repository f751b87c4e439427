package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/greylist/redisstore"
	"github.com/mxfront/mxfront/greylist/transfer"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/sanitize"
	"github.com/urfave/cli/v2"
)

func init() {
	// mxfront-cli links the Redis client; mxfront (chain mode, lean) does
	// not, and execs mxfront-cli when --greylist-store is a Redis URL.
	config.OpenNetworkStore = openRedis
}

// openRedis opens the Redis store of the --greylist-store flags.
func openRedis(o config.NetworkStoreOptions) (config.NetworkStore, error) {
	return redisstore.Open(o.URL, redisstore.Options{
		PasswordFile: o.PasswordFile, Prefix: o.Prefix, Timeout: o.Timeout,
		Window: o.Window, Lifetime: o.Lifetime, PoolSize: o.PoolSize,
	})
}

// greylistAdminSpecs are the flags every `mxfront greylist` command takes:
// the store and the policy it is judged by.
func greylistAdminSpecs() []config.Spec {
	var out []config.Spec
	for _, s := range config.GreylistSpecs {
		switch s.Name {
		case "greylist-db", "greylist-store", "control-socket", "greylist-store-password-file", "greylist-store-prefix",
			"greylist-delay", "greylist-window", "greylist-lifetime", "greylist-v4-prefix", "greylist-v6-prefix":
			out = append(out, s)
		}
	}
	return out
}

// greylistCommand is one `mxfront greylist` command.
type greylistCommand struct {
	name, args, usage string
	nargs             int  // arguments it takes
	optional          bool // nargs at most, not exactly
	flags             []cli.Flag
	run               func(c *cli.Context, g config.GreylistStore) error
}

var greylistCommands = []greylistCommand{
	{name: "list", usage: "print every recorded network: its status (pending, passing, stale), first seen, last pass",
		flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print a JSON array of {network, first_seen, last_pass, status}"}},
		run:   greylistList},
	{name: "allow", args: "NET", nargs: 1, usage: "record NET (an address, or a network of the configured length) as passed now", run: greylistAllow},
	{name: "remove", args: "NET", nargs: 1, usage: "delete NET's record: its next client is greylisted as new (exit 1: there was none)", run: greylistRemove},
	{name: "expire", usage: "delete the records past the window or the lifetime, and unreadable ones (Redis expires them itself)", run: greylistExpire},
	{name: "compact", usage: "rewrite the bbolt file without its free pages (needs room for a copy)", run: greylistCompact},
	{name: "stats", usage: "count the networks by status and tell the store's size", run: greylistStats},
	{name: "export", usage: "print every record as a JSON line (as list --json's entries), for import into another store", run: greylistExport},
	{name: "import", args: "[FILE]", nargs: 1, optional: true,
		usage: "add the records of FILE (or standard input), as export or list --json wrote them, that the store has none of", run: greylistImport},
}

const greylistUsage = `Every command takes --greylist-store URL (or --greylist-db PATH) and the
durations and prefixes mxfront runs with (a status and a NET are judged by
them), and is safe while mxfront runs. A mxfront serve holds its bbolt file
open and answers on its control socket (--control-socket, by default the
file's name and .sock), where the commands find it; with no serve they take
the file's lock for a moment each, as chain mode does. On Redis each
operation is a command or two. A serve keeps networks known to pass in
memory for up to 60s: a remove through its socket takes effect there at
once, on other MX hosts (Redis) within a minute.

Exit codes: 0 done; 1 remove found no record; 100 usage error; 111 the
store failed (locked or unanswered beyond 10s, damaged, unwritable).`

// greylistApp is `mxfront greylist list|allow|remove|expire|compact|stats|export|import`.
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
		Usage:       "inspect and manage the greylist store",
		UsageText:   "mxfront greylist list|allow NET|remove NET|expire|compact|stats|export|import [FILE] [flags]",
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
			if n := c.NArg(); n != gc.nargs && !(gc.optional && n < gc.nargs) {
				switch {
				case gc.nargs == 0:
					return fail.Usage("run 'mxfront greylist "+gc.name+" --help'", "%s takes no arguments", gc.name)
				case gc.optional:
					return fail.Usage("run 'mxfront greylist "+gc.name+" --help'", "%s takes at most one %s", gc.name, gc.args)
				}
				return fail.Usage("NET is an address (192.0.2.7) or a network of the configured length (192.0.2.0/24)", "%s takes one NET", gc.name)
			}
			g, err := config.OpenGreylist(cliOptions{c}, config.Admin)
			if err != nil {
				return err
			}
			defer g.Store.Close()
			return gc.run(c, g)
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
// A bbolt file whose lock was not had is told with who holds it.
func dbErr(g config.GreylistStore, err error) error {
	hint := g.HeldHint(err)
	if hint == "" {
		hint = "the store may be locked by a long operation, unreachable, damaged or unwritable; mxfront passes clients meanwhile"
	}
	return &run.ExitError{Code: run.ExitTemp, Err: g.Explain(err), Hint: hint}
}

func greylistList(c *cli.Context, g config.GreylistStore) error {
	w, p := c.App.Writer, g.Policy
	if c.Bool("json") {
		return listJSON(c.Context, w, g)
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
		return dbErr(g, err)
	}
	return nil
}

// listJSON streams the array, so that a million networks need no memory.
func listJSON(ctx context.Context, w io.Writer, g config.GreylistStore) error {
	p := g.Policy
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
		return dbErr(g, err)
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

func greylistAllow(c *cli.Context, g config.GreylistStore) error {
	p := g.Policy
	n, err := parseNET(c, p)
	if err != nil {
		return err
	}
	if err = p.Allow(c.Context, n); err != nil {
		return dbErr(g, err)
	}
	fmt.Fprintf(c.App.Writer, "allowed %v\n", n)
	return nil
}

func greylistRemove(c *cli.Context, g config.GreylistStore) error {
	p := g.Policy
	n, err := parseNET(c, p)
	if err != nil {
		return err
	}
	found, err := p.Remove(c.Context, n)
	if err != nil {
		return dbErr(g, err)
	}
	if !found {
		fmt.Fprintf(c.App.Writer, "%v: no record\n", n)
		return &run.ExitError{Code: 1}
	}
	fmt.Fprintf(c.App.Writer, "removed %v\n", n)
	return nil
}

func greylistExpire(c *cli.Context, g config.GreylistStore) error {
	if g.ExpiresItself() {
		// Every record carries its TTL (the window, or the lifetime once
		// passed): there is nothing to sweep, and cron may run this anyway.
		fmt.Fprintf(c.App.Writer, "%s expires records itself (by their TTL): nothing to do\n", g.Name)
		return nil
	}
	e, err := g.Policy.Expire(c.Context)
	if err != nil {
		return dbErr(g, err)
	}
	fmt.Fprintf(c.App.Writer, "expired %d: abandoned %d, lapsed %d, unreadable %d\n",
		e.Abandoned+e.Lapsed+e.Unreadable, e.Abandoned, e.Lapsed, e.Unreadable)
	return nil
}

func greylistCompact(c *cli.Context, g config.GreylistStore) error {
	b, ok := g.Store.(greylist.Compacter)
	if !ok {
		return fail.Usage("compact rewrites a bbolt file; Redis frees the memory of deleted and expired keys itself",
			"compact: %s is not a bbolt file", g.Name)
	}
	r, err := b.Compact(c.Context)
	if err != nil {
		return dbErr(g, err)
	}
	fmt.Fprintf(c.App.Writer, "compacted %s: %d bytes before, %d after\n", b.Path(), r.Before, r.After)
	return nil
}

func greylistStats(c *cli.Context, g config.GreylistStore) error {
	st, err := g.Policy.Stats(c.Context)
	if err != nil {
		return dbErr(g, err)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "pending: %d\npassing: %d\nstale: %d\nnetworks: %d\nbytes: %d\n",
		st.Pending, st.Passing, st.Stale, st.Pending+st.Passing+st.Stale, st.Bytes)
	return nil
}

func greylistExport(c *cli.Context, g config.GreylistStore) error {
	if _, err := transfer.Export(c.Context, g.Policy, c.App.Writer); err != nil {
		return dbErr(g, err)
	}
	return nil
}

// greylistImport reads FILE, or standard input without one (or with "-").
// A line that does not read is a usage error (exit 100), a store that
// fails a temporary one (111); either way what came before it is in, and
// importing again is harmless (records the store has are kept).
func greylistImport(c *cli.Context, g config.GreylistStore) error {
	var in io.Reader = os.Stdin
	name := "standard input"
	if f := c.Args().First(); f != "" && f != "-" {
		fh, err := os.Open(f)
		if err != nil {
			return fail.Usage("give a file that mxfront greylist export (or list --json) wrote", "import: %v", err)
		}
		defer fh.Close()
		in, name = fh, f
	}
	p, err := config.NewGreylistPolicy(cliOptions{c}, storeErrors{g.Store})
	if err != nil {
		return err
	}
	im, err := transfer.Import(c.Context, p, in)
	w := c.App.Writer
	fmt.Fprintf(w, "import: added %d, kept %d (the store had them), left out %d stale and %d of another length\n",
		im.Added, im.Kept, im.Stale, im.OtherLength)
	var se storeError
	switch {
	case errors.As(err, &se):
		return dbErr(g, se.err)
	case err != nil:
		return fail.Usage("each line is one JSON object as mxfront greylist export writes it; the records before it were imported, and importing again keeps them",
			"import from %s: %v", name, err)
	}
	return nil
}

// storeErrors marks the errors of a store, so that import tells a store
// that failed from an input that does not read.
type storeErrors struct{ greylist.Store }

type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

func mark(err error) error {
	if err == nil {
		return nil
	}
	return storeError{err}
}

func (s storeErrors) Get(ctx context.Context, n netip.Prefix) (greylist.Record, error) {
	r, err := s.Store.Get(ctx, n)
	return r, mark(err)
}

func (s storeErrors) CompareAndSwap(ctx context.Context, n netip.Prefix, old, new greylist.Record) (bool, error) {
	ok, err := s.Store.CompareAndSwap(ctx, n, old, new)
	return ok, mark(err)
}
