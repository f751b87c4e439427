package main

import (
	"github.com/mxfront/mxfront/frontend/serve"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/urfave/cli/v2"
)

// newListHealth makes serve's DNS list health watch (--dns-health-*) and
// installs it on the Checker, before any client is checked; nil without
// DNS lists. changed hears of every zone set aside or back.
func newListHealth(c *cli.Context, cfg *config.Config, changed func()) (*serve.ListHealth, error) {
	hc, err := config.LoadDNSHealth(cliOptions{c})
	if err != nil || cfg.Policy.DNS == nil || cfg.Policy.DNS.Checker == nil {
		return nil, err
	}
	h := &serve.ListHealth{Checker: cfg.Policy.DNS.Checker, Interval: hc.Interval, Failures: hc.Failures,
		LogOnly: hc.LogOnly, Log: cfg.Log, Changed: changed}
	h.Start()
	return h, nil
}

// logWarnings logs what the configuration could do without (a stale
// --dns-health-state), once.
func logWarnings(cfg *config.Config) {
	for _, w := range cfg.Warnings {
		cfg.Log.Warn(w.Msg, w.Attrs...)
	}
}

// listsStatus is the lists' part of the sd_notify STATUS line.
func listsStatus(h *serve.ListHealth) string {
	if h == nil {
		return ""
	}
	return "; " + h.Summary()
}
