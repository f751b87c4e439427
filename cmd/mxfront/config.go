package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/mxfront/mxfront/frontend"
)

// config is what the flags shared by every mode build.
type config struct {
	policy   *frontend.Policy
	dialogue frontend.DialogueConfig
	log      *slog.Logger
	mode     mode
	closers  []func() // run when serve stops (databases, ...)
}

// mode is what the configuration is for: the checks set themselves up
// differently (serve keeps a DNS cache and the greylist database open;
// check writes nothing).
type mode uint8

const (
	modeChain mode = iota
	modeServe
	modeCheck
)

func loadConfig(c options, m mode) (*config, error) {
	cfg := &config{policy: &frontend.Policy{Temp: c.Bool("temp"), DryRun: m == modeCheck}, mode: m}
	var err error
	if cfg.policy.Allow, err = netList(c, "allow"); err != nil {
		return nil, err
	}
	if cfg.policy.Deny, err = netList(c, "deny"); err != nil {
		return nil, err
	}
	d := frontend.DefaultDialogue
	d.RefuseAt = c.String("refuse-at")
	if d.RefuseAt != frontend.AtRcpt && d.RefuseAt != frontend.AtGreeting {
		return nil, usageErr("--refuse-at takes rcpt or greeting", "bad --refuse-at %q", d.RefuseAt)
	}
	d.Hostname = c.String("hostname")
	if d.Hostname == "" {
		d.Hostname, _ = os.Hostname()
	}
	d.Hostname = frontend.Sanitize(d.Hostname, 255)
	d.CommandTimeout = c.Duration("command-timeout")
	d.SessionTimeout = c.Duration("session-timeout")
	d.MaxErrors, d.MaxCommands, d.MaxRecipients = c.Int("max-errors"), c.Int("max-commands"), c.Int("max-rcpts")
	if d.CommandTimeout <= 0 || d.SessionTimeout <= 0 || d.MaxErrors <= 0 || d.MaxCommands <= 0 || d.MaxRecipients <= 0 {
		return nil, usageErr("timeouts and limits must be above zero", "bad dialogue bound")
	}
	cfg.dialogue = d
	if cfg.log, err = newLogger(c.String("log")); err != nil {
		return nil, err
	}
	cfg.policy.Log = cfg.log
	if err := loadDNS(c, cfg); err != nil {
		return nil, err
	}
	if err := loadGreylist(c, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// netList builds the allow or deny list from --NAME and --NAME-file.
func netList(c options, name string) (*frontend.NetList, error) {
	nets, files := c.StringSlice(name), c.StringSlice(name+"-file")
	if len(nets) == 0 && len(files) == 0 {
		return nil, nil
	}
	l := &frontend.NetList{}
	for _, n := range nets {
		spec, reason, _ := strings.Cut(n, " ")
		if err := l.Add(spec, strings.TrimSpace(reason), "--"+name); err != nil {
			return nil, usageErr("NET is an IP address or a CIDR network, e.g. 192.0.2.0/24 or 2001:db8::/32", "%v", err)
		}
	}
	for _, f := range files {
		if err := l.ReadFile(f); err != nil {
			return nil, usageErr(fmt.Sprintf("each line of --%s-file is \"NET [reason text]\"; # starts a comment", name), "--%s-file: %v", name, err)
		}
	}
	return l, nil
}
