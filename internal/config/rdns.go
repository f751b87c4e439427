package config

import (
	"os"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// RDNSSpecs are the reverse-DNS flags.
var RDNSSpecs = []Spec{
	{"rdns", KindBool, "", "look up the client's reverse DNS with the DNS lists (PTR, then A/AAAA of each name, within --dns-timeout): TCPREMOTEHOST is set to a forward-confirmed name only, MXFRONT_RDNS says what was found", "Reverse DNS"},
	{"rdns-check", KindString, "log", "`ACTION` for a client without a forward-confirmed name: off, log, greylist (greylisted on first contact even if a skip rule or DNS allow list would pass it), tempfail (450 4.7.25) or refuse (550 5.7.25)", "Reverse DNS"},
	{"rdns-generic-file", KindString, "", "patterns of dynamic-pool host names, one a line, from `FILE` (shell globs; %a %b %c %d the client's octets, %h its hex form, %i any common form of its address); reloaded on SIGHUP", "Reverse DNS"},
	{"rdns-generic-check", KindString, "log", "`ACTION` for a client whose host name matches --rdns-generic-file: off, log, greylist, tempfail (450 4.7.1) or refuse (550 5.7.1)", "Reverse DNS"},
	{"greylist-by-name", KindBool, "", "greylist a client with a forward-confirmed, non-generic name by the name's parent domain (mta7.out.example.net: out.example.net), so a sender pool retrying from several addresses passes once", "Reverse DNS"},
}

// loadRDNS sets up cfg.Policy.RDNS (after loadDNS, which gave the Checker
// its reverse lookups, and loadGreylist).
func loadRDNS(o Options, cfg *Config) error {
	check, err := rdnsAction(o, "rdns-check")
	if err != nil {
		return err
	}
	generic, err := rdnsAction(o, "rdns-generic-check")
	if err != nil {
		return err
	}
	file := o.String("rdns-generic-file")
	if !o.Bool("rdns") {
		switch {
		case check > frontend.RDNSLog:
			return fail.Usage("add --rdns", "--rdns-check %s needs the reverse lookups of --rdns", check)
		case file != "":
			return fail.Usage("add --rdns", "--rdns-generic-file needs the reverse lookups of --rdns")
		case o.Bool("greylist-by-name"):
			return fail.Usage("add --rdns", "--greylist-by-name needs the reverse lookups of --rdns")
		}
		return nil
	}
	g := cfg.Policy.Greylist
	if (check == frontend.RDNSGreylist || generic == frontend.RDNSGreylist && file != "") && g == nil {
		return fail.Usage("add --greylist, or choose another action", "an --rdns-*-check greylist action needs --greylist")
	}
	failTemp, err := dnsFail(o)
	if err != nil {
		return err
	}
	c := &frontend.RDNSCheck{Action: check, GenericAction: generic, FailTemp: failTemp}
	if c.Generic, err = genericNames(o); err != nil {
		return err
	}
	cfg.Policy.RDNS = c
	if o.Bool("greylist-by-name") {
		if g == nil {
			return fail.Usage("add --greylist", "--greylist-by-name needs --greylist")
		}
		if g.Names, err = g.Policy.WithPrefixes(32, 128); err != nil {
			return policyError(err)
		}
	}
	return nil
}

func rdnsAction(o Options, name string) (frontend.RDNSAction, error) {
	a, err := frontend.ParseRDNSAction(o.String(name))
	if err != nil {
		return 0, fail.Usage("--"+name+" takes off, log, greylist, tempfail or refuse", "bad --%s %q", name, sanitize.Text(o.String(name), 64))
	}
	return a, nil
}

// genericNames reads --rdns-generic-file; nil without it.
func genericNames(o Options) (*frontend.GenericNames, error) {
	file := o.String("rdns-generic-file")
	if file == "" {
		return nil, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fail.Usage("give a readable file of patterns", "--rdns-generic-file: %v", err)
	}
	defer f.Close()
	g, err := frontend.ParseGenericNames(f)
	if err != nil {
		return nil, fail.Usage("a pattern is a shell glob with %a %b %c %d %h %i for the client's address, e.g. *-%a-%b-%c-%d.*",
			"--rdns-generic-file %s: %v", file, err)
	}
	return g, nil
}
