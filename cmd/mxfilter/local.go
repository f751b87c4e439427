package main

import (
	"os"
	"strings"
	"time"

	"github.com/mxfront/mxfront/filter"
	"github.com/mxfront/mxfront/internal/recipients"
	"github.com/urfave/cli/v2"
)

// The local-addresses check's flags: the site's local domains and its
// recipient sources, as mxfront --inspect takes them.
func localFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "local-header-addresses", Usage: "an address in From, Sender or Reply-To in one of --local-domains must be a valid recipient (--rcpt-file, --rcpt-cdb, --rcpt-command)"},
		&cli.StringSliceFlag{Name: "local-domains", Usage: "the local domains, one a line of `FILE` (.example.org: every domain below); repeatable"},
		&cli.StringSliceFlag{Name: "rcpt-file", Usage: "valid recipients, one address a line of `FILE` (@domain: all of it; !address: not this one); repeatable"},
		&cli.StringSliceFlag{Name: "rcpt-cdb", Usage: "valid recipients in the cdb `FILE` (validrcptto.cdb); repeatable"},
		&cli.StringFlag{Name: "rcpt-command", Usage: "ask `CMD` (split at blanks, no shell) about each address, as qmail's RCPTCHECK: exit 100 invalid, 111 try later, else valid"},
		&cli.DurationFlag{Name: "rcpt-command-timeout", Value: 10 * time.Second, Usage: "kill --rcpt-command after `D`; the address then counts as valid"},
	}
}

// localAddresses builds the check's sources; nil without
// --local-header-addresses.
func localAddresses(c *cli.Context) (*filter.LocalAddresses, error) {
	if !c.Bool("local-header-addresses") {
		return nil, nil
	}
	files := c.StringSlice("local-domains")
	if len(files) == 0 {
		return nil, usage("--local-header-addresses needs --local-domains FILE: which domains are ours")
	}
	d, err := recipients.ReadDomains(files...)
	if err != nil {
		return nil, usage("--local-domains: %v", err)
	}
	set := &recipients.Set{}
	for _, f := range c.StringSlice("rcpt-file") {
		l, err := recipients.ReadList(f)
		if err != nil {
			return nil, usage("--rcpt-file: %v", err)
		}
		set.Lists = append(set.Lists, l)
	}
	for _, f := range c.StringSlice("rcpt-cdb") {
		if _, err := (recipients.ValidRcptTo{Path: f}).Lookup("postmaster"); err != nil {
			return nil, usage("--rcpt-cdb: %v", err)
		}
		set.CDBs = append(set.CDBs, recipients.ValidRcptTo{Path: f})
	}
	if cmd := strings.Fields(c.String("rcpt-command")); len(cmd) > 0 {
		set.Command = &recipients.Command{Argv: cmd, Environ: os.Environ(), Timeout: c.Duration("rcpt-command-timeout")}
	}
	if set.Empty() {
		return nil, usage("--local-header-addresses needs a recipient source: --rcpt-file, --rcpt-cdb or --rcpt-command")
	}
	return &filter.LocalAddresses{Domains: d, Recipients: set}, nil
}
