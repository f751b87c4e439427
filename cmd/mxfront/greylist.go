package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/greylist"
	"github.com/urfave/cli/v2"
)

// greylistSpecs are the greylisting, early-talker and HELO flags.
var greylistSpecs = []flagSpec{
	{"greylist", kindBool, "", "greylist clients by network: the first attempt gets 451 at RCPT, a retry after the delay passes", "Greylisting"},
	{"greylist-db", kindString, "/var/lib/mxfront/greylist.db", "the greylist database `PATH` (bbolt; shared by every mxfront process and `mxfront greylist`)", "Greylisting"},
	{"greylist-delay", kindDuration, "5m", "a retry passes only `D` after the first attempt", "Greylisting"},
	{"greylist-window", kindDuration, "24h", "a retry later than `D` after the first attempt starts over", "Greylisting"},
	{"greylist-lifetime", kindDuration, "36d", "a network that passed keeps passing `D` after its last pass", "Greylisting"},
	{"greylist-v4-prefix", kindInt, "24", "judge IPv4 clients by their /`N` network", "Greylisting"},
	{"greylist-v6-prefix", kindInt, "64", "judge IPv6 clients by their /`N` network", "Greylisting"},
	{"greylist-skip-file", kindList, "", "never greylist the networks in `FILE` (the format of --allow-file); repeatable", "Greylisting"},
	{"greet-delay", kindDuration, "0s", "send \"220-NAME\" and refuse (5xx) a client that speaks within `D` (early talker); 0: off", "Greeting and HELO"},
	{"helo-check", kindString, "log", "bogus HELO/EHLO names in the refusal dialogue: `MODE` off, log, or refuse (5xx, and a greylisted client never passes)", "Greeting and HELO"},
	{"helo-deny-file", kindList, "", "HELO names matching a pattern of `FILE` are bogus (one shell pattern a line, e.g. *.dyn.example.net, then a reason); repeatable", "Greeting and HELO"},
}

// Serve mode's greylist housekeeping: networks known to pass are kept in
// memory this long (so `mxfront greylist remove` takes effect within it),
// at most this many, and old records are expired this often.
const (
	passCacheTTL  = 60 * time.Second
	passCacheMax  = 100000
	expireEvery   = time.Hour
	adminLockWait = 10 * time.Second
)

// loadGreylist sets up the greeting delay and the HELO check on
// cfg.dialogue, and with --greylist, cfg.policy.Greylist. Without
// --greylist nothing of the greylist is touched: no database is opened.
func loadGreylist(c options, cfg *config) error {
	cfg.dialogue.GreetDelay = c.Duration("greet-delay")
	mode, err := frontend.ParseHELOMode(c.String("helo-check"))
	if err != nil {
		return usageErr("--helo-check takes off, log or refuse", "%v", err)
	}
	cfg.dialogue.HELO.Mode = mode
	if files := c.StringSlice("helo-deny-file"); len(files) > 0 {
		pats := &frontend.HELOPatterns{}
		for _, f := range files {
			if err := pats.ReadFile(f); err != nil {
				return usageErr("each line of --helo-deny-file is \"PATTERN [reason]\" (*, ? and [a-z] as in the shell); # starts a comment", "--helo-deny-file: %v", err)
			}
		}
		cfg.dialogue.HELO.Deny = pats
	}
	if !c.Bool("greylist") {
		return nil
	}
	policy, store, err := openGreylist(c, greylist.DefaultLockTimeout)
	if err != nil {
		return err
	}
	g := &frontend.Greylisting{Policy: policy}
	if files := c.StringSlice("greylist-skip-file"); len(files) > 0 {
		g.Skip = &frontend.NetList{}
		for _, f := range files {
			if err := g.Skip.ReadFile(f); err != nil {
				return usageErr("each line of --greylist-skip-file is \"NET [comment]\", as in --allow-file", "--greylist-skip-file: %v", err)
			}
		}
	}
	cfg.policy.Greylist = g
	if cfg.mode != modeServe {
		return nil
	}
	// Serve mode opens the file per decision, as chain mode does, so that
	// chain-mode processes and `mxfront greylist` can share it; the cache
	// spares known clients the file.
	if dir := filepath.Dir(store.Path()); !isDir(dir) {
		return usageErr("create the directory, writable by mxfront's user, or give another --greylist-db",
			"--greylist-db %s: directory %s does not exist", store.Path(), dir)
	}
	g.Known = frontend.NewPassCache(passCacheTTL, passCacheMax)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = policy.ExpireEvery(ctx, expireEvery, func(e greylist.Expired, err error) {
			if err != nil {
				cfg.log.Error("greylist expire failed", "db", store.Path(), "error", err.Error())
				return
			}
			if e != (greylist.Expired{}) {
				cfg.log.Info("greylist expired", "db", store.Path(), "abandoned", e.Abandoned, "lapsed", e.Lapsed, "unreadable", e.Unreadable)
			}
		})
	}()
	cfg.closers = append(cfg.closers, func() { cancel(); wg.Wait(); store.Close() })
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// openGreylist opens the store of --greylist-db (without touching the
// file) and the policy of the duration and prefix flags.
func openGreylist(c options, lockWait time.Duration) (*greylist.Policy, *greylist.Bolt, error) {
	path := c.String("greylist-db")
	if path == "" {
		return nil, nil, usageErr("e.g. --greylist-db /var/lib/mxfront/greylist.db", "--greylist-db is empty")
	}
	store, err := greylist.OpenBolt(path, greylist.BoltOptions{LockTimeout: lockWait})
	if err != nil {
		return nil, nil, &exitError{code: frontend.ExitTemp, err: err}
	}
	policy, err := greylist.NewPolicy(store, greylist.Config{
		Delay:    c.Duration("greylist-delay"),
		Window:   c.Duration("greylist-window"),
		Lifetime: c.Duration("greylist-lifetime"),
		V4Prefix: c.Int("greylist-v4-prefix"),
		V6Prefix: c.Int("greylist-v6-prefix"),
	})
	if err != nil {
		return nil, nil, usageErr("--greylist-delay must be shorter than --greylist-window; prefixes are 1..32 (IPv4) and 1..128 (IPv6)", "%v", err)
	}
	return policy, store, nil
}

// greylistAdminSpecs are the flags every `mxfront greylist` command takes:
// the database and the policy it is judged by.
func greylistAdminSpecs() []flagSpec {
	var out []flagSpec
	for _, s := range greylistSpecs {
		switch s.name {
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
				return usageErr("e.g. mxfront greylist list --greylist-db /var/lib/mxfront/greylist.db", "no command given")
			}
			return usageErr("run 'mxfront greylist --help' for the commands", "unknown command %q", frontend.Sanitize(c.Args().First(), 64))
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
					return usageErr("run 'mxfront greylist "+gc.name+" --help'", "%s takes no arguments", gc.name)
				}
				return usageErr("NET is an address (192.0.2.7) or a network of the configured length (192.0.2.0/24)", "%s takes one NET", gc.name)
			}
			p, s, err := openGreylist(cliOptions{c}, adminLockWait)
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
		return usageErr("run '"+app.HelpName+" --help' for the flags", "%v", err)
	}
	args := permute(parent.Args().Slice(), flags)
	return app.RunContext(parent.Context, append([]string{app.HelpName}, args...))
}

// dbErr is a failure of the database: exit 111, as for any temporary error.
func dbErr(err error) error {
	return &exitError{code: frontend.ExitTemp, err: err,
		hint: "the database may be locked by a long operation, damaged or unwritable; mxfront passes clients meanwhile"}
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
		return n, usageErr("NET is an address (192.0.2.7) or a network of the configured length (192.0.2.0/24)", "%v", err)
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
		return &exitError{code: 1}
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
