package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/frontend"
	"github.com/urfave/cli/v2"
)

// resolvConf is where the DNS servers come from when no --dns-server is
// given. Tests always give --dns-server.
const resolvConf = "/etc/resolv.conf"

// Serve mode's answer cache: bounded in entries and in time, whatever TTL
// a list publishes.
const (
	cacheSize   = 50000
	cacheMaxTTL = time.Hour
)

// dnsSpecs are the DNS list flags, and rblsmtpd's flags with the same
// meaning as in rblsmtpd (see rblsmtpdAliases).
var dnsSpecs = []flagSpec{
	{"dnsbl", kindList, "", "ask a DNS block list, `ZONE[=FILTER][*WEIGHT]` (e.g. zen.spamhaus.org=127.0.0.[2..11]*2); repeatable", "DNS lists"},
	{"dnswl", kindList, "", "ask a DNS allow list, `ZONE[=FILTER][*WEIGHT]`; its weight counts negative; repeatable", "DNS lists"},
	{"dnsbl-threshold", kindInt, "1", "refuse a client whose score is at least `N`", "DNS lists"},
	{"dnswl-threshold", kindInt, "-1", "trust a client whose score is at most `N`: every later check is skipped", "DNS lists"},
	{"dnsbl-reply", kindList, "", "reply `ZONE=TEXT` to clients that ZONE lists (%IP% and %ZONE% expanded; default: the list's TXT); repeatable", "DNS lists"},
	{"dns-server", kindList, "", "ask the DNS server `HOST:PORT` (repeatable; default: the nameservers of /etc/resolv.conf)", "DNS lists"},
	{"dns-timeout", kindDuration, "2s", "one deadline `D` for all lists of a connection", "DNS lists"},
	{"dns-fail", kindString, "pass", "`WHAT` to do when a list cannot be asked: pass (it counts as not listed) or tempfail (451 4.4.3)", "DNS lists"},
	{"rbl", kindList, "", "rblsmtpd -r: block list `ZONE`, refusing with its TXT and 451 (553 with -b); repeatable", "rblsmtpd compatibility"},
	{"antirbl", kindList, "", "rblsmtpd -a: a listing in `ZONE` trusts the client; repeatable", "rblsmtpd compatibility"},
	{"rbl-permanent", kindBool, "", "rblsmtpd -b: --rbl refusals are 553 5.7.1", "rblsmtpd compatibility"},
	{"rbl-temporary", kindBool, "", "rblsmtpd -B (the default): --rbl refusals are 451 4.7.1; wins over -b", "rblsmtpd compatibility"},
	{"dns-fail-closed", kindBool, "", "rblsmtpd -c: as --dns-fail tempfail", "rblsmtpd compatibility"},
	{"dns-fail-open", kindBool, "", "rblsmtpd -C (the default): as --dns-fail pass; wins over -c", "rblsmtpd compatibility"},
	{"rbl-timeout", kindString, "", "rblsmtpd -t: end the refusal dialogue after `N` seconds (0: refuse at the greeting and close)", "rblsmtpd compatibility"},
}

// rblsmtpdAliases are rblsmtpd's option letters, so that
// `rblsmtpd -r zone -a zone -b -C -t 30 prog` works as
// `mxfront -r zone -a zone -b -C -t 30 prog`.
var rblsmtpdAliases = map[string]string{
	"r": "rbl",
	"a": "antirbl",
	"b": "rbl-permanent",
	"B": "rbl-temporary",
	"c": "dns-fail-closed",
	"C": "dns-fail-open",
	"t": "rbl-timeout",
}

func init() {
	for short, long := range rblsmtpdAliases {
		flagAliases[short] = long
	}
}

// loadDNS sets up cfg.policy.DNS from the DNS list flags. With no zone it
// builds nothing (chain mode's start path stays lean).
func loadDNS(c options, cfg *config) error {
	if err := loadRBLTimeout(c, cfg); err != nil {
		return err
	}
	failTemp, err := dnsFail(c)
	if err != nil {
		return err
	}
	zones, rbl, anti, err := dnsZones(c)
	if err != nil {
		return err
	}
	replies := c.StringSlice("dnsbl-reply")
	if len(zones) == 0 {
		if len(replies) > 0 {
			return usageErr("add the zone with --dnsbl", "--dnsbl-reply given but no DNS list configured")
		}
		return nil
	}
	dc := dnsbl.Config{Zones: zones, Replies: map[string]string{}, Timeout: c.Duration("dns-timeout")}
	if dc.Timeout <= 0 {
		return usageErr("e.g. --dns-timeout 2s", "--dns-timeout must be above zero")
	}
	for _, spec := range replies {
		zone, text, err := dnsbl.ParseReply(spec)
		if err != nil {
			return usageErr("e.g. --dnsbl-reply 'zen.example=Listed at zen, see https://zen.example/?%IP%'", "--dnsbl-reply: %v", err)
		}
		dc.Replies[zone] = text
	}
	if dc.Servers, err = dnsServers(c.StringSlice("dns-server")); err != nil {
		return err
	}
	if cfg.mode == modeServe {
		// Many Checks at once in one process: wait in Go's poller (chain
		// mode's raw link holds a thread per Check).
		dc.Cache = dnsbl.NewCache(cacheSize, cacheMaxTTL, nil)
		dc.Poller = true
	}
	checker, err := dnsbl.New(dc)
	if err != nil {
		return usageErr("see --dnsbl, --dnsbl-reply and --dns-server in mxfront(8)", "%v", err)
	}
	cfg.policy.DNS = &frontend.DNSLists{
		Checker:        checker,
		Threshold:      c.Int("dnsbl-threshold"),
		AllowThreshold: c.Int("dnswl-threshold"),
		FailTemp:       failTemp,
		RBL:            rbl,
		RBLPermanent:   c.Bool("rbl-permanent") && !c.Bool("rbl-temporary"),
		AntiRBL:        anti,
	}
	return nil
}

// dnsZones parses --dnsbl, --dnswl, -r and -a.
func dnsZones(c options) (zones []dnsbl.Zone, rbl, anti map[string]bool, err error) {
	for _, f := range []struct {
		flag string
		kind dnsbl.Kind
	}{{"dnsbl", dnsbl.Block}, {"dnswl", dnsbl.Allow}, {"rbl", dnsbl.Block}, {"antirbl", dnsbl.Allow}} {
		for _, spec := range c.StringSlice(f.flag) {
			z, err := dnsbl.ParseZone(spec, f.kind)
			if err != nil {
				return nil, nil, nil, usageErr("a list is ZONE[=FILTER][*WEIGHT], e.g. zen.spamhaus.org=127.0.0.[2..11]*2",
					"--%s: %v", f.flag, err)
			}
			zones = append(zones, z)
			switch f.flag {
			case "rbl":
				rbl = addName(rbl, z.Name)
			case "antirbl":
				anti = addName(anti, z.Name)
			}
		}
	}
	return zones, rbl, anti, nil
}

func addName(m map[string]bool, name string) map[string]bool {
	if m == nil {
		m = map[string]bool{}
	}
	m[name] = true
	return m
}

// dnsFail reads --dns-fail, -c and -C: -C wins over -c, and either over
// --dns-fail (unsure means accept).
func dnsFail(c options) (bool, error) {
	var temp bool
	switch v := c.String("dns-fail"); v {
	case "pass":
	case "tempfail":
		temp = true
	default:
		return false, usageErr("--dns-fail takes pass or tempfail", "bad --dns-fail %q", frontend.Sanitize(v, 64))
	}
	if c.Bool("dns-fail-closed") {
		temp = true
	}
	if c.Bool("dns-fail-open") {
		temp = false
	}
	return temp, nil
}

// loadRBLTimeout applies rblsmtpd's -t N: the refusal dialogue lasts at
// most N seconds; with 0 the refusal is the greeting.
func loadRBLTimeout(c options, cfg *config) error {
	s := c.String("rbl-timeout")
	if s == "" {
		return nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return usageErr("-t takes whole seconds, as rblsmtpd's does: -t 30", "bad -t %q", frontend.Sanitize(s, 64))
	}
	if n == 0 {
		// rblsmtpd -t 0 writes its reply and leaves at once.
		cfg.dialogue.RefuseAt = frontend.AtGreeting
		cfg.dialogue.SessionTimeout = time.Millisecond
		return nil
	}
	cfg.dialogue.SessionTimeout = time.Duration(n) * time.Second
	return nil
}

// dnsServers checks --dns-server values (HOST:PORT, or HOST for port 53);
// without any, it reads /etc/resolv.conf.
func dnsServers(specs []string) ([]string, error) {
	if len(specs) == 0 {
		s, err := dnsbl.ServersFromResolvConf(resolvConf)
		if err != nil {
			return nil, usageErr("give the resolver with --dns-server 127.0.0.1:53", "%v", err)
		}
		return s, nil
	}
	out := make([]string, 0, len(specs))
	for _, s := range specs {
		if a, err := netip.ParseAddr(s); err == nil {
			s = net.JoinHostPort(a.String(), "53")
		}
		host, port, err := net.SplitHostPort(s)
		if err == nil {
			_, err = netip.ParseAddr(host)
		}
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return nil, usageErr("--dns-server takes a numeric HOST:PORT, e.g. 127.0.0.1:53 or [::1]:53",
				"bad --dns-server %q", frontend.Sanitize(s, 64))
		}
		out = append(out, s)
	}
	return out, nil
}

// checkLists is `mxfront check --lists`: every configured zone's health by
// its RFC 5782 test points; exit 0 only when all are ok.
func checkLists(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErr("mxfront check --lists --dnsbl ZONE ... takes no IP", "--lists takes no IP address")
	}
	cfg, err := loadConfig(cliOptions{c}, modeCheck)
	if err != nil {
		return err
	}
	if cfg.policy.DNS == nil {
		return usageErr("configure lists with --dnsbl/--dnswl", "no DNS lists configured")
	}
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	bad := 0
	w := c.App.Writer
	for _, h := range cfg.policy.DNS.Checker.Health(ctx) {
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
		return &exitError{code: 1}
	}
	fmt.Fprintln(w, "lists: all ok")
	return nil
}
