package main

import (
	"fmt"
	"net/netip"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/sanitize"
	"github.com/urfave/cli/v2"
)

func checkFlags() []cli.Flag {
	return append(policyFlags(),
		&cli.StringFlag{Name: "helo", Usage: "the HELO/EHLO `NAME` the client would give"},
		&cli.BoolFlag{Name: "lists", Usage: "health-check every configured DNS list (RFC 5782 test points) instead of judging an IP"},
		&cli.StringFlag{Name: "state-file", Usage: "with --lists: write the lists that fail to `FILE` (atomically), for chain mode's --dns-health-state"},
	)
}

func checkApp() *cli.App {
	return &cli.App{
		Name:      "check",
		HelpName:  "mxfront check",
		Usage:     "print the verdict for IP and every reason; touches nothing",
		UsageText: "mxfront check [flags] IP [--helo NAME]\n\nExit codes: 0 pass, 1 would be refused, 100 usage error.",
		Flags:     checkFlags(),
		Action:    checkAction,
	}
}

func checkAction(c *cli.Context) error {
	if c.Bool("lists") {
		return checkLists(c)
	}
	if c.String("state-file") != "" {
		return fail.Usage("mxfront check --lists --state-file FILE --dnsbl ZONE ...", "--state-file goes with --lists")
	}
	if c.NArg() != 1 {
		return fail.Usage("e.g. mxfront check --deny-file /etc/mxfront/deny 192.0.2.7", "check takes one IP address")
	}
	ip, err := netip.ParseAddr(c.Args().First())
	if err != nil {
		return fail.Usage("give an IPv4 or IPv6 address", "bad IP %q", sanitize.Text(c.Args().First(), 64))
	}
	cfg, err := config.Load(cliOptions{c}, config.Check)
	if err != nil {
		return err
	}
	logWarnings(cfg)
	v := cfg.Policy.Decide(c.Context, frontend.Client{Remote: netip.AddrPortFrom(ip.Unmap(), 0)})
	w := c.App.Writer
	fmt.Fprintf(w, "ip: %s\n", ip.Unmap())
	if h := c.String("helo"); h != "" {
		fmt.Fprintf(w, "helo: %s\n", heloJudgement(cfg, sanitize.Text(h, 255), v))
	}
	fmt.Fprintf(w, "verdict: %s\n", v.Action)
	if v.Action == frontend.Refuse {
		fmt.Fprintf(w, "reply: %s\n", v.Reply)
	}
	for _, d := range v.Details {
		fmt.Fprintln(w, d)
	}
	for _, r := range v.Reasons {
		fmt.Fprintf(w, "reason: %s\n", r)
	}
	if len(v.Reasons) == 0 {
		fmt.Fprintln(w, "reason: no check refused it")
	}
	if v.Action == frontend.Refuse {
		return &run.ExitError{Code: 1}
	}
	return nil
}

// heloJudgement says what the HELO checks make of name for this verdict.
// mxfront sees a HELO only in the refusal dialogue: a client it passes
// gives its HELO to PROGRAM.
func heloJudgement(cfg *config.Config, name string, v frontend.Verdict) string {
	h := cfg.Dialogue.HELO
	if h.Mode == frontend.HELOOff {
		return name + " (not judged: --helo-check off)"
	}
	why := h.Bogus(name, cfg.Dialogue.Hostname, netip.AddrPort{})
	switch {
	case why == "":
		return name + " (acceptable)"
	case v.Action != frontend.Refuse:
		return fmt.Sprintf("%s is bogus: it %s (not judged: a client that passes gives its HELO to PROGRAM)", name, why)
	case h.Mode == frontend.HELORefuse:
		return fmt.Sprintf("%s is bogus: it %s; --helo-check refuse: every RCPT gets 554 5.7.1", name, why)
	}
	return fmt.Sprintf("%s is bogus: it %s; --helo-check log: logged as helo_bogus", name, why)
}
