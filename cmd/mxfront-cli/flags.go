package main

import (
	"strconv"
	"time"

	"github.com/mxfront/mxfront/internal/config"
	"github.com/urfave/cli/v2"
)

// cliFlags turns specs into urfave/cli flags.
func cliFlags(specs []config.Spec) []cli.Flag {
	var out []cli.Flag
	for _, f := range specs {
		al := config.AliasesOf(f.Name)
		switch f.Kind {
		case config.KindBool:
			out = append(out, &cli.BoolFlag{Name: f.Name, Aliases: al, Usage: f.Usage, Category: f.Category})
		case config.KindString:
			out = append(out, &cli.StringFlag{Name: f.Name, Aliases: al, Value: f.Default, Usage: f.Usage, Category: f.Category})
		case config.KindList:
			out = append(out, &cli.StringSliceFlag{Name: f.Name, Aliases: al, Usage: f.Usage, Category: f.Category})
		case config.KindInt:
			n, _ := strconv.Atoi(f.Default)
			out = append(out, &cli.IntFlag{Name: f.Name, Aliases: al, Value: n, Usage: f.Usage, Category: f.Category})
		case config.KindDuration:
			v, _ := config.ParseDuration(f.Default)
			d := config.DurationValue(v)
			out = append(out, &cli.GenericFlag{Name: f.Name, Aliases: al, Value: &d, Usage: f.Usage, DefaultText: config.FormatDuration(v), Category: f.Category})
		}
	}
	return out
}

func policyFlags() []cli.Flag {
	var out []cli.Flag
	for _, specs := range config.AllSpecs() {
		out = append(out, cliFlags(specs)...)
	}
	return out
}

// cliOptions adapts a cli.Context.
type cliOptions struct{ *cli.Context }

func (c cliOptions) Duration(name string) time.Duration {
	if d, ok := c.Generic(name).(*config.DurationValue); ok {
		return time.Duration(*d)
	}
	return 0
}
