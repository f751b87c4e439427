package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// duration is a Go duration ("500ms", "5m", "24h") that also takes days
// ("36d", "1d12h"), as every duration flag of mxfront does.
type duration time.Duration

func (d *duration) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

func (d *duration) String() string { return time.Duration(*d).String() }

// parseDuration parses a Go duration with an optional leading count of days.
func parseDuration(s string) (time.Duration, error) {
	orig := s
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: want e.g. 500ms, 5m, 24h or 36d", orig)
		}
		days, s = time.Duration(n)*24*time.Hour, s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad duration %q: want e.g. 500ms, 5m, 24h or 36d", orig)
	}
	return days + v, nil
}

func fmtDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// kind is the type of a flag's value.
type kind uint8

const (
	kindBool kind = iota
	kindString
	kindList // repeatable
	kindInt
	kindDuration
)

// flagSpec declares one flag once: urfave/cli's flags and chain mode's
// fast parser are both built from these tables.
type flagSpec struct {
	name     string
	kind     kind
	def      string // default value as written on the command line
	usage    string
	category string
}

// policySpecs are the flags of every mode (chain, serve, check).
var policySpecs = []flagSpec{
	{"allow", kindList, "", "trust `NET` (IP or CIDR, IPv4 or IPv6): pass at once; repeatable", "Lists"},
	{"deny", kindList, "", "refuse `NET` (IP or CIDR; text after a space is the reply); repeatable", "Lists"},
	{"allow-file", kindList, "", "trust the networks in `FILE` (one \"NET [reason]\" a line); repeatable", "Lists"},
	{"deny-file", kindList, "", "refuse the networks in `FILE`; the text after NET is the reply; repeatable", "Lists"},
	{"temp", kindBool, "", "refusals are temporary (4xx) unless a rule says permanent", "Refusal"},
	{"refuse-at", kindString, "rcpt", "give the verdict at `WHEN`: rcpt (every RCPT) or greeting", "Refusal"},
	{"hostname", kindString, "", "`NAME` in the greeting and replies (default: the system's host name)", "Refusal"},
	{"command-timeout", kindDuration, "60s", "refusal dialogue: wait at most `D` for each command", "Refusal"},
	{"session-timeout", kindDuration, "5m", "refusal dialogue: end it after `D` in all", "Refusal"},
	{"max-errors", kindInt, "10", "refusal dialogue: close with 421 after `N` bad commands", "Refusal"},
	{"max-commands", kindInt, "100", "refusal dialogue: close with 421 after `N` commands", "Refusal"},
	{"max-rcpts", kindInt, "50", "refusal dialogue: answer 452 to RCPTs beyond `N`", "Refusal"},
	{"log", kindString, "", "log to `WHERE`: stderr, syslog, journal or none (default: stderr, or syslog when fd 2 is the client's connection)", "Logging"},
}

// flagAliases maps a short name (rblsmtpd's -r, -a, ...) to the flag it
// stands for; both parsers accept either.
var flagAliases = map[string]string{}

// allSpecs is every flag of chain mode: the base table and each check's.
func allSpecs() [][]flagSpec { return [][]flagSpec{policySpecs, dnsSpecs, greylistSpecs} }

func aliasesOf(name string) []string {
	var out []string
	for short, long := range flagAliases {
		if long == name {
			out = append(out, short)
		}
	}
	sort.Strings(out)
	return out
}

// cliFlags turns specs into urfave/cli flags.
func cliFlags(specs []flagSpec) []cli.Flag {
	var out []cli.Flag
	for _, f := range specs {
		al := aliasesOf(f.name)
		switch f.kind {
		case kindBool:
			out = append(out, &cli.BoolFlag{Name: f.name, Aliases: al, Usage: f.usage, Category: f.category})
		case kindString:
			out = append(out, &cli.StringFlag{Name: f.name, Aliases: al, Value: f.def, Usage: f.usage, Category: f.category})
		case kindList:
			out = append(out, &cli.StringSliceFlag{Name: f.name, Aliases: al, Usage: f.usage, Category: f.category})
		case kindInt:
			n, _ := strconv.Atoi(f.def)
			out = append(out, &cli.IntFlag{Name: f.name, Aliases: al, Value: n, Usage: f.usage, Category: f.category})
		case kindDuration:
			v, _ := parseDuration(f.def)
			d := duration(v)
			out = append(out, &cli.GenericFlag{Name: f.name, Aliases: al, Value: &d, Usage: f.usage, DefaultText: fmtDuration(v), Category: f.category})
		}
	}
	return out
}

func policyFlags() []cli.Flag {
	var out []cli.Flag
	for _, specs := range allSpecs() {
		out = append(out, cliFlags(specs)...)
	}
	return out
}

// options is what the configuration is read from: urfave/cli's context, or
// chain mode's fast parser.
type options interface {
	String(name string) string
	StringSlice(name string) []string
	Bool(name string) bool
	Int(name string) int
	Duration(name string) time.Duration
}

// cliOptions adapts a cli.Context.
type cliOptions struct{ *cli.Context }

func (c cliOptions) Duration(name string) time.Duration {
	if d, ok := c.Generic(name).(*duration); ok {
		return time.Duration(*d)
	}
	return 0
}
