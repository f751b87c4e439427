package config

import (
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// ObserveSpecs are the flags that run checks without enforcing them: the
// way a site rolls mxfront out.
var ObserveSpecs = []Spec{
	{"observe", KindBool, "", "run every check and log what it would do (verdict=would-refuse, the reply it would give), but refuse no one and write no greylist record", "Observing"},
	{"dnsbl-action", KindString, "enforce", "`ACTION` of a DNS list refusal: enforce, or log (the client passes, logged as would-refuse)", "Observing"},
	{"greylist-action", KindString, "enforce", "`ACTION` of greylisting: enforce, or log (nothing is recorded; the client passes, logged as would-refuse)", "Observing"},
	{"early-talker-action", KindString, "enforce", "`ACTION` on an early talker: enforce, or log (the client passes, logged as would-refuse)", "Observing"},
}

// loadObserve applies --observe and the --*-action flags. `mxfront check`
// shows what enforcing would do, whatever they say.
func loadObserve(o Options, cfg *Config) error {
	dnsLog, err := logAction(o, "dnsbl-action")
	if err != nil {
		return err
	}
	greyLog, err := logAction(o, "greylist-action")
	if err != nil {
		return err
	}
	earlyLog, err := logAction(o, "early-talker-action")
	if err != nil || cfg.Mode == Check {
		return err
	}
	cfg.Policy.Observe = o.Bool("observe")
	if cfg.Policy.DNS != nil {
		cfg.Policy.DNS.LogOnly = dnsLog
	}
	if cfg.Policy.Greylist != nil {
		cfg.Policy.Greylist.LogOnly = greyLog
	}
	cfg.Dialogue.EarlyTalkerLogOnly = earlyLog
	return nil
}

// logAction reads an --*-action flag: true for log, false for enforce.
func logAction(o Options, name string) (bool, error) {
	switch v := o.String(name); v {
	case "enforce", "":
		return false, nil
	case "log":
		return true, nil
	default:
		return false, fail.Usage("--"+name+" takes enforce or log", "bad --%s %q", name, sanitize.Text(v, 64))
	}
}
