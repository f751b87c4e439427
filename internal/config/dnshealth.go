package config

import (
	"os"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// DNSHealthSpecs are serve mode's DNS list health flags (chain mode has
// no long life: it reads --dns-health-state instead).
var DNSHealthSpecs = []Spec{
	{"dns-health-interval", KindDuration, "5m", "check every DNS list's RFC 5782 test points every `D` and set aside those that fail until they pass; 0: never", "DNS list health"},
	{"dns-health-failures", KindInt, "10", "set a DNS list aside after `N` lookups in a row failed by its fault (timeouts, SERVFAIL, error answers); 0: never", "DNS list health"},
	{"dns-health-action", KindString, "set-aside", "`ACTION` for a failing DNS list: set-aside (not asked for clients until it passes a health check) or log (reported, still asked)", "DNS list health"},
}

// DNSHealth is serve mode's DNS list health configuration.
type DNSHealth struct {
	Interval time.Duration
	Failures int
	LogOnly  bool
}

// LoadDNSHealth reads the DNSHealthSpecs flags.
func LoadDNSHealth(o Options) (DNSHealth, error) {
	h := DNSHealth{Interval: o.Duration("dns-health-interval"), Failures: o.Int("dns-health-failures")}
	if h.Failures < 0 {
		return h, fail.Usage("--dns-health-failures takes 0 (never) or more", "bad --dns-health-failures %d", h.Failures)
	}
	switch v := o.String("dns-health-action"); v {
	case "set-aside", "":
	case "log":
		h.LogOnly = true
	default:
		return h, fail.Usage("--dns-health-action takes set-aside or log", "bad --dns-health-action %q", sanitize.Text(v, 64))
	}
	return h, nil
}

// Warning is something the configuration found wrong but could do
// without: cmd logs it once (config itself prints nothing).
type Warning struct {
	Msg   string
	Attrs []any
}

// loadHealthState sets aside, on checker, the zones that the
// --dns-health-state file names. A missing, unreadable or stale file sets
// none aside and leaves a warning: the file only ever saves time, so its
// trouble never refuses anyone.
func loadHealthState(o Options, cfg *Config, checker *dnsbl.Checker) error {
	file := o.String("dns-health-state")
	if file == "" {
		return nil
	}
	maxAge := o.Duration("dns-health-max-age")
	if maxAge <= 0 {
		return fail.Usage("e.g. --dns-health-max-age 15m (3 times the timer's interval)", "--dns-health-max-age must be above zero")
	}
	warn := func(msg string, attrs ...any) {
		attrs = append([]any{"file", file}, attrs...)
		cfg.Warnings = append(cfg.Warnings, Warning{msg + ": every DNS list is asked", attrs})
	}
	b, err := os.ReadFile(file)
	if err != nil {
		warn("DNS list state file unreadable", "error", err.Error(),
			"hint", "run mxfront check --lists --state-file "+file+" (contrib/mxfront-lists.timer)")
		return nil
	}
	st, err := dnsbl.ParseState(b)
	if err != nil {
		warn("DNS list state file unusable", "error", err.Error(), "hint", "it is written by mxfront check --lists --state-file")
		return nil
	}
	// A check from the future (the clock was set back since) is no
	// fresher: without this, a file that stopped being rewritten would
	// never go stale.
	if age := time.Since(st.Checked); age > maxAge || -age > maxAge {
		warn("DNS list state file stale", "checked", st.Checked.Format(time.RFC3339),
			"age", age.Round(time.Second).String(), "max_age", maxAge.String(),
			"hint", "is the timer running? systemctl status mxfront-lists.timer")
		return nil
	}
	for _, a := range st.Aside {
		checker.SetAside(a)
	}
	return nil
}
