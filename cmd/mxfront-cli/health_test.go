package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/urfave/cli/v2"
)

func runCheck(args ...string) (string, int) {
	var out bytes.Buffer
	app := checkApp()
	app.Writer, app.ErrWriter = &out, &out
	app.ExitErrHandler = func(*cli.Context, error) {}
	err := app.RunContext(context.Background(), append([]string{"check"}, permute(args, checkFlags())...))
	code := run.Report(err, &out)
	return out.String(), code
}

// check --lists --state-file writes the failing zones atomically, keeps
// a zone's first failure time across runs, and says so in its exit code;
// chain mode's --dns-health-state then skips them.
func TestCheckListsStateFile(t *testing.T) {
	refusing := oneAnswer(t, "127.255.255.254")
	good := oneAnswer(t, "127.0.0.2")
	dir := t.TempDir()
	state := filepath.Join(dir, "lists.state")
	out, code := runCheck("--lists", "--dns-server", refusing, "--dnsbl", "bl.example", "--state-file", state)
	if code != 1 || !strings.Contains(out, "bl.example: hint: answers 127.255.255.254: this list refuses queries from your resolver") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	st, err := dnsbl.ParseState(b)
	if err != nil || len(st.Aside) != 1 || st.Aside[0].Zone != "bl.example" ||
		!strings.HasPrefix(st.Aside[0].Reason, "refusing: 127.0.0.2 error answer 127.255.255.254") || time.Since(st.Checked) > time.Minute {
		t.Fatalf("state %+v %v:\n%s", st, err, b)
	}
	// The first failure's time stays; the file is replaced, not written over.
	old := strings.Replace(string(b), "aside bl.example "+st.Aside[0].Since.Format(time.RFC3339), "aside bl.example 2020-01-01T00:00:00Z", 1)
	if err := os.WriteFile(state, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(state)
	if _, code := runCheck("--lists", "--dns-server", refusing, "--dnsbl", "bl.example", "--state-file", state); code != 1 {
		t.Fatalf("exit %d", code)
	}
	after, _ := os.Stat(state)
	b, _ = os.ReadFile(state)
	if !strings.Contains(string(b), "aside bl.example 2020-01-01T00:00:00Z refusing: ") || os.SameFile(before, after) {
		t.Errorf("second run:\n%s", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}

	// Chain mode skips it: a client that bl.example would list passes.
	cfg, err := loadWith(t, config.Chain, "--dns-server", good, "--dnsbl", "bl.example", "--dnsbl", "other.example",
		"--dns-health-state", state)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings %+v", cfg.Warnings)
	}
	r := cfg.Policy.DNS.Checker.Check(context.Background(), netip.MustParseAddr("192.0.2.9"))
	if r.Zones[0].Aside == nil || r.Zones[0].Listed || !r.Zones[1].Listed || r.Zones[0].Aside.By != dnsbl.ByStateFile {
		t.Errorf("with the state file: %+v", r.Zones)
	}

	// All well again: the file lists no zone, exit 0.
	if out, code := runCheck("--lists", "--dns-server", good, "--dnsbl", "bl.example", "--state-file", state); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if b, _ := os.ReadFile(state); strings.Contains(string(b), "aside") {
		t.Errorf("healthy:\n%s", b)
	}
	// A directory that cannot be written: 111.
	if out, code := runCheck("--lists", "--dns-server", good, "--dnsbl", "bl.example", "--state-file", filepath.Join(dir, "no", "such")); code != run.ExitTemp ||
		!strings.Contains(out, "--state-file") {
		t.Errorf("unwritable: exit %d:\n%s", code, out)
	}
	if _, code := runCheck("--state-file", state, "192.0.2.1"); code != run.ExitUsage {
		t.Errorf("--state-file without --lists: exit %d", code)
	}
}

// A missing, unusable or stale (or future-dated) state file sets no zone aside and leaves
// one warning; the lists are all asked.
func TestHealthStateTrouble(t *testing.T) {
	good := oneAnswer(t, "127.0.0.2")
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale")
	os.WriteFile(stale, dnsbl.State{Checked: time.Now().Add(-time.Hour),
		Aside: []dnsbl.Aside{{Zone: "bl.example", Since: time.Now()}}}.AppendText(nil), 0o644)
	future := filepath.Join(dir, "future")
	os.WriteFile(future, dnsbl.State{Checked: time.Now().Add(24 * time.Hour),
		Aside: []dnsbl.Aside{{Zone: "bl.example", Since: time.Now()}}}.AppendText(nil), 0o644)
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("aside bl.example\n"), 0o644)
	for file, want := range map[string]string{
		filepath.Join(dir, "missing"): "DNS list state file unreadable",
		junk:                          "DNS list state file unusable",
		stale:                         "DNS list state file stale",
		future:                        "DNS list state file stale",
	} {
		cfg, err := loadWith(t, config.Chain, "--dns-server", good, "--dnsbl", "bl.example", "--dns-health-state", file)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Warnings) != 1 || !strings.HasPrefix(cfg.Warnings[0].Msg, want) {
			t.Errorf("%s: warnings %+v", file, cfg.Warnings)
		}
		if r := cfg.Policy.DNS.Checker.Check(context.Background(), netip.MustParseAddr("192.0.2.9")); !r.Zones[0].Listed {
			t.Errorf("%s: bl.example not asked: %+v", file, r.Zones[0])
		}
	}
	// A longer --dns-health-max-age takes the stale file.
	cfg, err := loadWith(t, config.Chain, "--dns-server", good, "--dnsbl", "bl.example", "--dns-health-state", stale,
		"--dns-health-max-age", "2h")
	if err != nil || len(cfg.Warnings) != 0 || len(cfg.Policy.DNS.Checker.Asides()) != 1 {
		t.Errorf("max age 2h: %v %+v", err, cfg.Warnings)
	}
}
