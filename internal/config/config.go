package config

import (
	"os"
	"strings"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// Config is what the flags shared by every mode build.
type Config struct {
	Policy   *frontend.Policy
	Dialogue frontend.DialogueConfig
	Log      *logline.Logger
	Mode     Mode
	// Greylist is serve mode's open greylist (zero in other modes, or
	// without --greylist).
	Greylist GreylistStore
	Closers  []func() // run when serve stops (databases, ...)
	// Warnings are for cmd to log once (a stale --dns-health-state).
	Warnings []Warning
}

// Close runs the closers.
func (c *Config) Close() {
	for _, f := range c.Closers {
		f()
	}
}

// Mode is what the configuration is for: the checks set themselves up
// differently (serve keeps a DNS cache and the greylist database open;
// check writes nothing).
type Mode uint8

const (
	Chain Mode = iota
	Serve
	Check
	// Admin is the `mxfront greylist` commands' (OpenGreylist only):
	// they wait long for a lock or an answer.
	Admin
)

// Load builds the configuration of mode m from the flags in o.
func Load(o Options, m Mode) (*Config, error) {
	cfg := &Config{Policy: &frontend.Policy{Temp: o.Bool("temp"), DryRun: m == Check}, Mode: m}
	var err error
	if cfg.Policy.Allow, err = netList(o, "allow"); err != nil {
		return nil, err
	}
	if cfg.Policy.Deny, err = netList(o, "deny"); err != nil {
		return nil, err
	}
	d := frontend.DefaultDialogue
	d.RefuseAt = o.String("refuse-at")
	if d.RefuseAt != frontend.AtRcpt && d.RefuseAt != frontend.AtGreeting {
		return nil, fail.Usage("--refuse-at takes rcpt or greeting", "bad --refuse-at %q", d.RefuseAt)
	}
	d.Hostname = o.String("hostname")
	if d.Hostname == "" {
		d.Hostname, _ = os.Hostname()
	}
	d.Hostname = sanitize.Text(d.Hostname, 255)
	d.CommandTimeout = o.Duration("command-timeout")
	d.SessionTimeout = o.Duration("session-timeout")
	d.MaxErrors, d.MaxCommands, d.MaxRecipients = o.Int("max-errors"), o.Int("max-commands"), o.Int("max-rcpts")
	if d.CommandTimeout <= 0 || d.SessionTimeout <= 0 || d.MaxErrors <= 0 || d.MaxCommands <= 0 || d.MaxRecipients <= 0 {
		return nil, fail.Usage("timeouts and limits must be above zero", "bad dialogue bound")
	}
	cfg.Dialogue = d
	if cfg.Log, err = logline.Open(o.String("log")); err != nil {
		return nil, err
	}
	cfg.Policy.Log = cfg.Log
	if err := loadDNS(o, cfg); err != nil {
		return nil, err
	}
	if err := loadGreylist(o, cfg); err != nil {
		return nil, err
	}
	if err := loadRDNS(o, cfg); err != nil {
		cfg.Close()
		return nil, err
	}
	if err := loadObserve(o, cfg); err != nil {
		cfg.Close()
		return nil, err
	}
	return loadRelay(o, cfg)
}

// ReloadLists builds the policy and dialogue of cfg again with the list
// files read anew: --allow(-file), --deny(-file), --greylist-skip-file and
// --helo-deny-file. Everything else (DNS client, greylist store) is shared.
func ReloadLists(o Options, cfg *Config) (*frontend.Policy, frontend.DialogueConfig, error) {
	p, d := *cfg.Policy, cfg.Dialogue
	var err error
	if p.Allow, err = netList(o, "allow"); err != nil {
		return nil, d, err
	}
	if p.Deny, err = netList(o, "deny"); err != nil {
		return nil, d, err
	}
	if g := cfg.Policy.Greylist; g != nil {
		ng := *g
		if ng.Skip, err = skipList(o); err != nil {
			return nil, d, err
		}
		p.Greylist = &ng
	}
	if r := cfg.Policy.RDNS; r != nil && r.Generic != nil {
		nr := *r
		if nr.Generic, err = genericNames(o); err != nil {
			return nil, d, err
		}
		p.RDNS = &nr
	}
	if d.HELO.Deny, err = heloPatterns(o); err != nil {
		return nil, d, err
	}
	return &p, d, nil
}

// netList builds the allow or deny list from --NAME and --NAME-file.
func netList(o Options, name string) (*frontend.NetList, error) {
	nets, files := o.StringSlice(name), o.StringSlice(name+"-file")
	if len(nets) == 0 && len(files) == 0 {
		return nil, nil
	}
	l := &frontend.NetList{}
	for _, n := range nets {
		spec, reason, _ := strings.Cut(n, " ")
		if err := l.Add(spec, strings.TrimSpace(reason), "--"+name); err != nil {
			return nil, fail.Usage("NET is an IP address or a CIDR network, e.g. 192.0.2.0/24 or 2001:db8::/32", "%v", err)
		}
	}
	if err := readNetFiles(l, files, name+"-file", "\"NET [reason text]\"; # starts a comment"); err != nil {
		return nil, err
	}
	return l, nil
}

// readNetFiles adds the networks of files, given with --flag, to l; a bad
// line is a usage error saying what a line of such a file holds (form).
func readNetFiles(l *frontend.NetList, files []string, flag, form string) error {
	for _, f := range files {
		if err := l.ReadFile(f); err != nil {
			return fail.Usage("each line of --"+flag+" is "+form, "--%s: %v", flag, err)
		}
	}
	return nil
}
