// Package config turns mxfront's flags into the configurations of the
// packages that do the work: the policy, the dialogue and the logger of
// every mode. It runs nothing, prints nothing and never exits: its errors
// (package fail) carry a hint, and cmd/ turns them into exit codes. The flags are declared once, in tables: the
// full command-line application (mxfront-cli, built on urfave/cli) makes
// its flags from them, and chain mode's lean start path (cmd/mxfront)
// parses them with ParseChain, without linking urfave/cli at all.
package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DurationValue is a Go duration ("500ms", "5m", "24h") that also takes days
// ("36d", "1d12h"), as every duration flag of mxfront does.
type DurationValue time.Duration

func (d *DurationValue) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = DurationValue(v)
	return nil
}

func (d *DurationValue) String() string { return time.Duration(*d).String() }

// ParseDuration parses a Go duration with an optional leading count of days.
func ParseDuration(s string) (time.Duration, error) {
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

// FormatDuration writes d as ParseDuration reads it, whole days as "36d".
func FormatDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// Kind is the type of a flag's value.
type Kind uint8

const (
	KindBool Kind = iota
	KindString
	KindList // repeatable
	KindInt
	KindDuration
)

// Spec declares one flag once: urfave/cli's flags and chain mode's
// fast parser are both built from these tables.
// The first argument of each usage text in backquotes names the value.
type Spec struct {
	Name     string
	Kind     Kind
	Default  string // default value as written on the command line
	Usage    string
	Category string
}

// PolicySpecs are the flags of every mode (chain, serve, check).
var PolicySpecs = []Spec{
	{"allow", KindList, "", "trust `NET` (IP or CIDR, IPv4 or IPv6): pass at once; repeatable", "Lists"},
	{"deny", KindList, "", "refuse `NET` (IP or CIDR; text after a space is the reply); repeatable", "Lists"},
	{"allow-file", KindList, "", "trust the networks in `FILE` (one \"NET [reason]\" a line); repeatable", "Lists"},
	{"deny-file", KindList, "", "refuse the networks in `FILE`; the text after NET is the reply; repeatable", "Lists"},
	{"temp", KindBool, "", "refusals are temporary (4xx) unless a rule says permanent", "Refusal"},
	{"refuse-at", KindString, "rcpt", "give the verdict at `WHEN`: rcpt (every RCPT) or greeting", "Refusal"},
	{"hostname", KindString, "", "`NAME` in the greeting and replies (default: the system's host name)", "Refusal"},
	{"command-timeout", KindDuration, "60s", "refusal dialogue: wait at most `D` for each command", "Refusal"},
	{"session-timeout", KindDuration, "5m", "refusal dialogue: end it after `D` in all", "Refusal"},
	{"max-errors", KindInt, "10", "refusal dialogue: close with 421 after `N` bad commands", "Refusal"},
	{"max-commands", KindInt, "100", "refusal dialogue: close with 421 after `N` commands", "Refusal"},
	{"max-rcpts", KindInt, "50", "answer 452 to RCPTs beyond `N` (the refusal dialogue; with --inspect, per transaction)", "Refusal"},
	{"log", KindString, "", "log to `WHERE`: stderr, syslog, journal or none (default: stderr, or syslog when fd 2 is the client's connection)", "Logging"},
}

// AllSpecs is every flag of chain mode: the base table and each check's.
func AllSpecs() [][]Spec {
	return [][]Spec{PolicySpecs, DNSSpecs, RDNSSpecs, GreylistSpecs, ObserveSpecs, RelaySpecs}
}

// AliasesOf lists the short names of the flag name, sorted.
func AliasesOf(name string) []string {
	var out []string
	for _, a := range Aliases {
		if a.Long == name {
			out = append(out, a.Short)
		}
	}
	sort.Strings(out)
	return out
}

// Options is what the configuration is read from: urfave/cli's context, or
// chain mode's fast parser.
type Options interface {
	String(name string) string
	StringSlice(name string) []string
	Bool(name string) bool
	Int(name string) int
	Duration(name string) time.Duration
}
