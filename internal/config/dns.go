package config

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/sanitize"
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

// DNSSpecs are the DNS list flags, and rblsmtpd's flags with the same
// meaning as in rblsmtpd (see Aliases).
var DNSSpecs = []Spec{
	{"dnsbl", KindList, "", "ask a DNS block list, `ZONE[=FILTER][*WEIGHT]` (e.g. zen.spamhaus.org=127.0.0.[2..11]*2); repeatable", "DNS lists"},
	{"dnswl", KindList, "", "ask a DNS allow list, `ZONE[=FILTER][*WEIGHT]`; its weight counts negative; repeatable", "DNS lists"},
	{"dnsbl-threshold", KindInt, "1", "refuse a client whose score is at least `N`", "DNS lists"},
	{"dnswl-threshold", KindInt, "-1", "trust a client whose score is at most `N`: every later check is skipped", "DNS lists"},
	{"dnsbl-reply", KindList, "", "reply `ZONE=TEXT` to clients that ZONE lists (%IP% and %ZONE% expanded; default: the list's TXT); repeatable", "DNS lists"},
	{"dns-server", KindList, "", "ask the DNS server `HOST:PORT` (repeatable; default: the nameservers of /etc/resolv.conf)", "DNS lists"},
	{"dns-timeout", KindDuration, "2s", "one deadline `D` for all lists of a connection", "DNS lists"},
	{"dns-fail", KindString, "pass", "`WHAT` to do when a list cannot be asked: pass (it counts as not listed) or tempfail (451 4.4.3)", "DNS lists"},
	{"dns-health-state", KindString, "", "skip the lists that `FILE` (written by mxfront check --lists --state-file) sets aside; missing or unreadable: none (with a warning)", "DNS lists"},
	{"dns-health-max-age", KindDuration, "15m", "ignore (with a warning) a --dns-health-state file whose check is older than `D` (3 times the timer's interval)", "DNS lists"},
	{"rbl", KindList, "", "rblsmtpd -r: block list `ZONE`, refusing with its TXT and 451 (553 with -b); repeatable", "rblsmtpd compatibility"},
	{"antirbl", KindList, "", "rblsmtpd -a: a listing in `ZONE` trusts the client; repeatable", "rblsmtpd compatibility"},
	{"rbl-permanent", KindBool, "", "rblsmtpd -b: --rbl refusals are 553 5.7.1", "rblsmtpd compatibility"},
	{"rbl-temporary", KindBool, "", "rblsmtpd -B (the default): --rbl refusals are 451 4.7.1; wins over -b", "rblsmtpd compatibility"},
	{"dns-fail-closed", KindBool, "", "rblsmtpd -c: as --dns-fail tempfail", "rblsmtpd compatibility"},
	{"dns-fail-open", KindBool, "", "rblsmtpd -C (the default): as --dns-fail pass; wins over -c", "rblsmtpd compatibility"},
	{"rbl-timeout", KindString, "", "rblsmtpd -t: end the refusal dialogue after `N` seconds (0: refuse at the greeting and close)", "rblsmtpd compatibility"},
}

// Aliases are the short names of flags, which both parsers accept. They
// are rblsmtpd's option letters, so that
// `rblsmtpd -r zone -a zone -b -C -t 30 prog` works as
// `mxfront -r zone -a zone -b -C -t 30 prog`. (A table, not a map: a map
// literal is built by code at every process start.)
var Aliases = [...]struct{ Short, Long string }{
	{"r", "rbl"},
	{"a", "antirbl"},
	{"b", "rbl-permanent"},
	{"B", "rbl-temporary"},
	{"c", "dns-fail-closed"},
	{"C", "dns-fail-open"},
	{"t", "rbl-timeout"},
}

// loadDNS sets up cfg.Policy.DNS from the DNS list flags. With no zone it
// builds nothing (chain mode's start path stays lean).
func loadDNS(o Options, cfg *Config) error {
	if err := loadRBLTimeout(o, cfg); err != nil {
		return err
	}
	failTemp, err := dnsFail(o)
	if err != nil {
		return err
	}
	zones, rbl, anti, err := dnsZones(o)
	if err != nil {
		return err
	}
	replies := o.StringSlice("dnsbl-reply")
	if len(zones) == 0 {
		if len(replies) > 0 {
			return fail.Usage("add the zone with --dnsbl", "--dnsbl-reply given but no DNS list configured")
		}
		if !o.Bool("rdns") {
			return nil
		}
	}
	dc := dnsbl.Config{Zones: zones, Replies: map[string]string{}, Timeout: o.Duration("dns-timeout"), RDNS: o.Bool("rdns")}
	if dc.Timeout <= 0 {
		return fail.Usage("e.g. --dns-timeout 2s", "--dns-timeout must be above zero")
	}
	for _, spec := range replies {
		zone, text, err := dnsbl.ParseReply(spec)
		if err != nil {
			return fail.Usage("e.g. --dnsbl-reply 'zen.example=Listed at zen, see https://zen.example/?%IP%'", "--dnsbl-reply: %v", err)
		}
		dc.Replies[zone] = text
	}
	if dc.Servers, err = dnsServers(o.StringSlice("dns-server")); err != nil {
		return err
	}
	if cfg.Mode == Serve {
		// Many Checks at once in one process: wait in Go's poller (chain
		// mode's raw link holds a thread per Check).
		dc.Cache = dnsbl.NewCache(cacheSize, cacheMaxTTL, nil)
		dc.Poller = true
	}
	checker, err := dnsbl.New(dc)
	if err != nil {
		return fail.Usage("see --dnsbl, --dnsbl-reply and --dns-server in mxfront(8)", "%v", err)
	}
	if err := loadHealthState(o, cfg, checker); err != nil {
		return err
	}
	cfg.Policy.DNS = &frontend.DNSLists{
		Checker:        checker,
		Threshold:      o.Int("dnsbl-threshold"),
		AllowThreshold: o.Int("dnswl-threshold"),
		FailTemp:       failTemp,
		RBL:            rbl,
		RBLPermanent:   o.Bool("rbl-permanent") && !o.Bool("rbl-temporary"),
		AntiRBL:        anti,
	}
	return nil
}

// dnsZones parses --dnsbl, --dnswl, -r and -a.
func dnsZones(o Options) (zones []dnsbl.Zone, rbl, anti map[string]bool, err error) {
	for _, f := range []struct {
		flag string
		kind dnsbl.Kind
	}{{"dnsbl", dnsbl.Block}, {"dnswl", dnsbl.Allow}, {"rbl", dnsbl.Block}, {"antirbl", dnsbl.Allow}} {
		for _, spec := range o.StringSlice(f.flag) {
			z, err := dnsbl.ParseZone(spec, f.kind)
			if err != nil {
				return nil, nil, nil, fail.Usage("a list is ZONE[=FILTER][*WEIGHT], e.g. zen.spamhaus.org=127.0.0.[2..11]*2",
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
func dnsFail(o Options) (bool, error) {
	var temp bool
	switch v := o.String("dns-fail"); v {
	case "pass":
	case "tempfail":
		temp = true
	default:
		return false, fail.Usage("--dns-fail takes pass or tempfail", "bad --dns-fail %q", sanitize.Text(v, 64))
	}
	if o.Bool("dns-fail-closed") {
		temp = true
	}
	if o.Bool("dns-fail-open") {
		temp = false
	}
	return temp, nil
}

// loadRBLTimeout applies rblsmtpd's -t N: the refusal dialogue lasts at
// most N seconds; with 0 the refusal is the greeting.
func loadRBLTimeout(o Options, cfg *Config) error {
	s := o.String("rbl-timeout")
	if s == "" {
		return nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fail.Usage("-t takes whole seconds, as rblsmtpd's does: -t 30", "bad -t %q", sanitize.Text(s, 64))
	}
	if n == 0 {
		// rblsmtpd -t 0 writes its reply and leaves at once.
		cfg.Dialogue.RefuseAt = frontend.AtGreeting
		cfg.Dialogue.SessionTimeout = time.Millisecond
		return nil
	}
	cfg.Dialogue.SessionTimeout = time.Duration(n) * time.Second
	return nil
}

// dnsServers checks --dns-server values (HOST:PORT, or HOST for port 53);
// without any, it reads /etc/resolv.conf.
func dnsServers(specs []string) ([]string, error) {
	if len(specs) == 0 {
		s, err := dnsbl.ServersFromResolvConf(resolvConf)
		if err != nil {
			return nil, fail.Usage("give the resolver with --dns-server 127.0.0.1:53", "%v", err)
		}
		return s, nil
	}
	out := make([]string, 0, len(specs))
	for _, s := range specs {
		a, err := netip.ParseAddr(s)
		if err == nil {
			s = netip.AddrPortFrom(a, 53).String()
		} else {
			_, err = netip.ParseAddrPort(s)
		}
		if err != nil {
			return nil, fail.Usage("--dns-server takes a numeric HOST:PORT, e.g. 127.0.0.1:53 or [::1]:53",
				"bad --dns-server %q", sanitize.Text(s, 64))
		}
		out = append(out, s)
	}
	return out, nil
}
