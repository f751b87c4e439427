package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/urfave/cli/v2"
)

// checkLists is `mxfront check --lists`: every configured zone's health by
// its RFC 5782 test points; exit 0 only when all are ok, 1 when one is
// not. With --state-file it writes the zones that fail where chain mode's
// --dns-health-state reads them (a systemd timer or cron runs it), and
// exits 111 when it cannot.
func checkLists(c *cli.Context) error {
	if c.NArg() > 0 {
		return fail.Usage("mxfront check --lists --dnsbl ZONE ... takes no IP", "--lists takes no IP address")
	}
	cfg, err := config.Load(cliOptions{c}, config.Check)
	if err != nil {
		return err
	}
	if cfg.Policy.DNS == nil {
		return fail.Usage("configure lists with --dnsbl/--dnswl", "no DNS lists configured")
	}
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	now := time.Now()
	hs := cfg.Policy.DNS.Checker.Health(ctx)
	bad := 0
	w := c.App.Writer
	for _, h := range hs {
		v6 := "no"
		if h.IPv6 {
			v6 = "yes"
		}
		fmt.Fprintf(w, "%s: %s (%s; IPv6 queries answered: %s)\n", h.Zone, h.Status, h.Detail, v6)
		if h.Hint != "" {
			fmt.Fprintf(w, "%s: hint: %s\n", h.Zone, h.Hint)
		}
		if h.Status != dnsbl.OK {
			bad++
		}
	}
	if file := c.String("state-file"); file != "" {
		if err := writeState(file, stateOf(file, hs, now)); err != nil {
			return &run.ExitError{Code: run.ExitTemp, Err: err,
				Hint: "the state file's directory must be writable by this user (contrib/mxfront-lists.service: StateDirectory=mxfront)"}
		}
	}
	if bad > 0 {
		fmt.Fprintf(w, "lists: %d not ok\n", bad)
		return &run.ExitError{Code: 1}
	}
	fmt.Fprintln(w, "lists: all ok")
	return nil
}

// stateOf is the state file for health check hs made at now: the zones
// that failed, each since the time the previous file says it failed
// from, if it did.
func stateOf(file string, hs []dnsbl.Health, now time.Time) dnsbl.State {
	since := map[string]time.Time{}
	if b, err := os.ReadFile(file); err == nil {
		if old, err := dnsbl.ParseState(b); err == nil {
			for _, a := range old.Aside {
				since[a.Zone] = a.Since
			}
		}
	}
	st := dnsbl.State{Checked: now}
	for _, h := range hs {
		if h.Status == dnsbl.OK {
			continue
		}
		a := dnsbl.Aside{Zone: h.Zone, By: dnsbl.ByHealthCheck, Since: now, Reason: h.Reason()}
		if t, ok := since[h.Zone]; ok && t.Before(now) {
			a.Since = t
		}
		st.Aside = append(st.Aside, a)
	}
	return st
}

// writeState replaces file atomically: a reader sees the old file or the
// new one, never part of either.
func writeState(file string, st dnsbl.State) error {
	dir := filepath.Dir(file)
	f, err := os.CreateTemp(dir, "."+filepath.Base(file)+".*")
	if err != nil {
		return fmt.Errorf("--state-file %s: %v", file, err)
	}
	tmp := f.Name()
	_, err = f.Write(st.AppendText(nil))
	if err == nil {
		err = f.Chmod(0o644) // chain mode runs as other users
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--state-file %s: %v", file, err)
	}
	return nil
}
