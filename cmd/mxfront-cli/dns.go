package main

import (
	"context"
	"fmt"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/urfave/cli/v2"
)

// checkLists is `mxfront check --lists`: every configured zone's health by
// its RFC 5782 test points; exit 0 only when all are ok.
func checkLists(c *cli.Context) error {
	if c.NArg() > 0 {
		return fail.Usage("mxfront check --lists --dnsbl ZONE ... takes no IP", "--lists takes no IP address")
	}
	cfg, err := config.Load(cliOptions{c}, config.Check)
	if err != nil {
		return err
	}
	if cfg.Policy.DNS == nil {
		return fail.Usage("configure lists with --dnsbl/--dnswl", "no DNS lists configured")
	}
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	bad := 0
	w := c.App.Writer
	for _, h := range cfg.Policy.DNS.Checker.Health(ctx) {
		v6 := "no"
		if h.IPv6 {
			v6 = "yes"
		}
		fmt.Fprintf(w, "%s: %s (%s; IPv6 queries answered: %s)\n", h.Zone, h.Status, h.Detail, v6)
		if h.Status != dnsbl.OK {
			bad++
		}
	}
	if bad > 0 {
		fmt.Fprintf(w, "lists: %d not ok\n", bad)
		return &run.ExitError{Code: 1}
	}
	fmt.Fprintln(w, "lists: all ok")
	return nil
}
