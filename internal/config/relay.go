package config

import (
	"strings"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/recipients"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// RelaySpecs are the inspecting relay's flags (--inspect and its checks).
var RelaySpecs = []Spec{
	{"inspect", KindBool, "", "relay passed clients instead of handing them the connection: PROGRAM runs on a socketpair, and mxfront checks HELO, MAIL FROM and every RCPT as they come (see RELAY in mxfront(8))", "Inspecting relay"},
	{"sender-check", KindString, "refuse", "with --inspect, MAIL FROM: `MODE` off, log, or refuse (a bad address, a domain without MX or address, a null MX)", "Inspecting relay"},
	{"rcpt-check", KindString, "refuse", "with --inspect, each RCPT: `MODE` off, log, or refuse (not a valid recipient, a relay attempt)", "Inspecting relay"},
	{"rcpt-file", KindList, "", "valid recipients, one address a line of `FILE` (@domain: all of it; !address: not this one); re-read on SIGHUP; repeatable", "Inspecting relay"},
	{"rcpt-cdb", KindList, "", "valid recipients in the cdb `FILE` (validrcptto.cdb: lower-case addresses and @domain keys; read at each RCPT); repeatable", "Inspecting relay"},
	{"rcpt-command", KindString, "", "ask `CMD` (split at blanks, no shell) about each recipient, as qmail's RCPTCHECK: SENDER, RECIPIENT, TCPREMOTEIP set; exit 100 refuses, 111 defers, else valid", "Inspecting relay"},
	{"rcpt-command-timeout", KindDuration, "10s", "kill --rcpt-command after `D`; the recipient is then accepted (and it is logged)", "Inspecting relay"},
	{"local-domains", KindList, "", "the local domains, one a line of `FILE` (.example.org: every domain below): a recipient elsewhere is a relay attempt (553) unless the client is trusted; re-read on SIGHUP; repeatable", "Inspecting relay"},
	{"max-bad-rcpts", KindInt, "0", "with --inspect, close with 421 at the `N`th refused recipient of a session; 0: never", "Inspecting relay"},
	{"bad-rcpt-delay", KindDuration, "0s", "with --inspect, wait `D` before refusing a recipient", "Inspecting relay"},
	{"tls-cert", KindString, "", "with --inspect, offer STARTTLS with the certificate chain in `FILE` (PEM) and terminate TLS, inspecting on (re-read on SIGHUP); without it the server's STARTTLS passes through and inspection ends there", "Inspecting relay"},
	{"tls-key", KindString, "", "the private key of --tls-cert, in `FILE` (PEM)", "Inspecting relay"},
	{"greylist-by", KindString, "ip", "with --greylist, greylist by `KEY`: ip (the client's network, when it connects) or triplet (network, sender and recipient, at each RCPT: needs --inspect)", "Inspecting relay"},
}

// relayOnly are the flags that mean nothing without --inspect.
var relayOnly = [...]string{"rcpt-file", "rcpt-cdb", "rcpt-command", "local-domains"}

// loadRelay checks the relay's flags, the last step of Load: cfg, or
// (closed) nil and the error. The relay's configuration is built by
// LoadRelay, in mxfront-cli: chain mode's lean mxfront execs it for
// --inspect.
func loadRelay(o Options, cfg *Config) (*Config, error) {
	if err := checkRelay(o); err != nil {
		cfg.Close()
		return nil, err
	}
	return cfg, nil
}

func checkRelay(o Options) error {
	switch by := o.String("greylist-by"); {
	case by != "ip" && by != "triplet":
		return fail.Usage("--greylist-by takes ip or triplet", "bad --greylist-by %q", sanitize.Text(by, 64))
	case by == "triplet" && !o.Bool("inspect"):
		return fail.Usage("add --inspect: only the inspecting relay sees senders and recipients", "--greylist-by triplet without --inspect")
	case by == "triplet" && !o.Bool("greylist"):
		return fail.Usage("add --greylist", "--greylist-by triplet without --greylist")
	}
	if (o.String("tls-cert") == "") != (o.String("tls-key") == "") {
		return fail.Usage("give both, e.g. --tls-cert /etc/mxfront/cert.pem --tls-key /etc/mxfront/key.pem", "--tls-cert and --tls-key go together")
	}
	if !o.Bool("inspect") {
		if o.String("tls-cert") != "" {
			return fail.Usage("add --inspect: only the inspecting relay speaks TLS", "--tls-cert without --inspect")
		}
		for _, name := range relayOnly {
			if len(o.StringSlice(name)) > 0 || o.String(name) != "" && name == "rcpt-command" {
				return fail.Usage("add --inspect: only the inspecting relay sees recipients", "--%s without --inspect", name)
			}
		}
		return nil
	}
	for _, name := range [...]string{"sender-check", "rcpt-check"} {
		if _, err := checkMode(o, name); err != nil {
			return err
		}
	}
	if o.Int("max-bad-rcpts") < 0 {
		return fail.Usage("e.g. --max-bad-rcpts 10; 0 turns it off", "--max-bad-rcpts must not be negative")
	}
	return nil
}

// checkMode reads a --*-check flag.
func checkMode(o Options, name string) (string, error) {
	switch v := o.String(name); v {
	case "off", "log", "refuse":
		return v, nil
	default:
		return "", fail.Usage("--"+name+" takes off, log or refuse", "bad --%s %q", name, sanitize.Text(v, 64))
	}
}

// Relay is the inspecting relay's configuration, as mxfront-cli wires it
// into frontend/relay (which this package does not link: it would bring
// package net and crypto/tls into chain mode's lean mxfront).
type Relay struct {
	Sender, Rcpt string          // off, log or refuse
	Domains      *dnsbl.Resolver // asks about sender domains; nil with --sender-check off
	DNSFailTemp  bool
	Rules        RelayRules
	MaxBadRcpts  int
	BadRcptDelay time.Duration
	// TLSCert and TLSKey are --tls-cert's and --tls-key's files; "": none.
	TLSCert, TLSKey string
	// Greylist is --greylist-by triplet's; nil: greylisting (if any) is
	// by network when the client connects.
	Greylist *RelayGreylist
}

// RelayGreylist is greylisting by triplet: the per-network policy and the
// triplets' (the same store, IPv6 /128 keys), and what per-network
// greylisting was configured with.
type RelayGreylist struct {
	Networks, Triplets *greylist.Policy
	Skip               *frontend.NetList
	Timeout            time.Duration
	LogOnly            bool
}

// RelayRules are what SIGHUP reads anew.
type RelayRules struct {
	Recipients   *recipients.Set     // nil: none
	LocalDomains *recipients.Domains // nil: every domain is local
}

// LoadRelay builds the relay's configuration from o, for mode m (serve
// waits for DNS answers in Go's poller). cfg is the rest, already loaded.
func LoadRelay(o Options, cfg *Config, environ []string) (*Relay, error) {
	r := &Relay{MaxBadRcpts: o.Int("max-bad-rcpts"), BadRcptDelay: o.Duration("bad-rcpt-delay"),
		TLSCert: o.String("tls-cert"), TLSKey: o.String("tls-key")}
	var err error
	if r.Sender, err = checkMode(o, "sender-check"); err != nil {
		return nil, err
	}
	if r.Rcpt, err = checkMode(o, "rcpt-check"); err != nil {
		return nil, err
	}
	if r.DNSFailTemp, err = dnsFail(o); err != nil {
		return nil, err
	}
	if r.Sender != "off" {
		servers, err := dnsServers(o.StringSlice("dns-server"))
		if err != nil {
			return nil, err
		}
		timeout := o.Duration("dns-timeout")
		if timeout <= 0 {
			return nil, fail.Usage("e.g. --dns-timeout 2s", "--dns-timeout must be above zero")
		}
		if r.Domains, err = dnsbl.NewResolver(servers, timeout, cfg.Mode == Serve); err != nil {
			return nil, fail.Usage("see --dns-server in mxfront(8)", "%v", err)
		}
	}
	if r.Rules, err = LoadRelayRules(o, environ); err != nil {
		return nil, err
	}
	if o.String("greylist-by") == "triplet" && cfg.Policy.Greylist != nil {
		if r.Greylist, err = tripletGreylist(o, cfg); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// tripletGreylist moves greylisting from the connection to each RCPT: the
// connection's greylisting is turned off, and the relay gets the policies
// over the store (opened anew: the policy does not give its store out).
func tripletGreylist(o Options, cfg *Config) (*RelayGreylist, error) {
	g := cfg.Policy.Greylist
	gs, err := OpenGreylist(o, cfg.Mode)
	if err != nil {
		return nil, err
	}
	c := greylistConfig(o)
	c.V6Prefix = 128
	trip, err := greylist.NewPolicy(gs.Store, c)
	if err != nil {
		gs.Store.Close()
		return nil, policyError(err)
	}
	cfg.Closers = append(cfg.Closers, func() { gs.Store.Close() })
	cfg.Policy.Greylist = nil
	return &RelayGreylist{Networks: gs.Policy, Triplets: trip, Skip: g.Skip, Timeout: g.Timeout, LogOnly: g.LogOnly}, nil
}

// LoadRelayRules reads the recipient sources and the local domains.
func LoadRelayRules(o Options, environ []string) (RelayRules, error) {
	var rr RelayRules
	set := &recipients.Set{}
	for _, f := range o.StringSlice("rcpt-file") {
		l, err := recipients.ReadList(f)
		if err != nil {
			return rr, fail.Usage("each line of --rcpt-file is an address, @domain or !address; # starts a comment", "--rcpt-file: %v", err)
		}
		set.Lists = append(set.Lists, l)
	}
	for _, f := range o.StringSlice("rcpt-cdb") {
		// Read at each RCPT, but a file missing at start is a mistake.
		if _, err := (recipients.ValidRcptTo{Path: f}).Lookup("postmaster"); err != nil {
			return rr, fail.Usage("make it with tinycdb's cdb -c -m, or qmail's cdbmake", "--rcpt-cdb: %v", err)
		}
		set.CDBs = append(set.CDBs, recipients.ValidRcptTo{Path: f})
	}
	if cmd := o.String("rcpt-command"); cmd != "" {
		argv := strings.Fields(cmd)
		timeout := o.Duration("rcpt-command-timeout")
		if timeout <= 0 {
			return rr, fail.Usage("e.g. --rcpt-command-timeout 10s", "--rcpt-command-timeout must be above zero")
		}
		set.Command = &recipients.Command{Argv: argv, Environ: environ, Timeout: timeout}
	}
	if !set.Empty() {
		rr.Recipients = set
	}
	if files := o.StringSlice("local-domains"); len(files) > 0 {
		d, err := recipients.ReadDomains(files...)
		if err != nil {
			return rr, fail.Usage("--local-domains names a file of domains, one a line (qmail's rcpthosts)", "--local-domains: %v", err)
		}
		rr.LocalDomains = d
	}
	return rr, nil
}
