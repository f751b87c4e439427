package main

import "github.com/urfave/cli/v2"

// greylistSpecs are the greylisting, early-talker and HELO flags.
var greylistSpecs []flagSpec

// loadGreylist sets up cfg.policy.Greylist from the greylist flags.
func loadGreylist(c options, cfg *config) error { return nil }

// greylistApp is `mxfront greylist list|allow|remove|expire|compact|stats`.
func greylistApp() *cli.App {
	return &cli.App{Name: "greylist", HelpName: "mxfront greylist", Usage: "inspect and manage the greylist database"}
}
