package main

import (
	"fmt"
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

func durationFlag(name string, def time.Duration, usage, category string) *cli.GenericFlag {
	d := duration(def)
	return &cli.GenericFlag{Name: name, Value: &d, Usage: usage, DefaultText: fmtDuration(def), Category: category}
}

func fmtDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func getDuration(c *cli.Context, name string) time.Duration {
	if d, ok := c.Generic(name).(*duration); ok {
		return time.Duration(*d)
	}
	return 0
}

// Flag groups shared by chain mode, serve and check.
func policyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "allow", Usage: "trust `NET` (IP or CIDR, IPv4 or IPv6): pass at once; repeatable", Category: "Lists"},
		&cli.StringSliceFlag{Name: "deny", Usage: "refuse `NET` (IP or CIDR); repeatable", Category: "Lists"},
		&cli.StringSliceFlag{Name: "allow-file", Usage: "trust the networks in `FILE` (one \"NET [reason]\" a line); repeatable", Category: "Lists"},
		&cli.StringSliceFlag{Name: "deny-file", Usage: "refuse the networks in `FILE`; the text after NET is the reply; repeatable", Category: "Lists"},
		&cli.BoolFlag{Name: "temp", Usage: "refusals are temporary (4xx) unless a rule says permanent", Category: "Refusal"},
		&cli.StringFlag{Name: "refuse-at", Value: "rcpt", Usage: "give the verdict at `WHEN`: rcpt (every RCPT) or greeting", Category: "Refusal"},
		&cli.StringFlag{Name: "hostname", Usage: "`NAME` in the greeting and replies (default: the system's host name)", Category: "Refusal"},
		durationFlag("command-timeout", 60*time.Second, "refusal dialogue: wait at most `D` for each command", "Refusal"),
		durationFlag("session-timeout", 5*time.Minute, "refusal dialogue: end it after `D` in all", "Refusal"),
		&cli.IntFlag{Name: "max-errors", Value: 10, Usage: "refusal dialogue: close with 421 after `N` bad commands", Category: "Refusal"},
		&cli.IntFlag{Name: "max-commands", Value: 100, Usage: "refusal dialogue: close with 421 after `N` commands", Category: "Refusal"},
		&cli.IntFlag{Name: "max-rcpts", Value: 50, Usage: "refusal dialogue: answer 452 to RCPTs beyond `N`", Category: "Refusal"},
		&cli.StringFlag{Name: "log", Usage: "log to `WHERE`: stderr, syslog, journal or none (default: stderr, or syslog when fd 2 is the client's connection)"},
	}
}
