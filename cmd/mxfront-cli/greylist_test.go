package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/config"
)

func TestGreylistFlagsFastParserAgrees(t *testing.T) {
	for _, args := range [][]string{
		{"--greylist", "--greylist-db", "/tmp/x.db", "--greylist-delay", "2s", "--greylist-window=12h", "prog"},
		{"--greylist-lifetime", "36d", "--greylist-v4-prefix", "16", "--greylist-v6-prefix=48", "--", "prog"},
		{"--greylist-skip-file", "a", "--greylist-skip-file", "b", "--greet-delay", "1d2h", "prog", "-x"},
		{"--helo-check", "refuse", "--helo-deny-file", "f", "--greylist=false", "prog"},
	} {
		checkFastAgrees(t, args)
		if _, argv, ok := config.ParseChain(args); !ok || len(argv) == 0 {
			t.Errorf("%q: the fast parser stepped aside", args)
		}
	}
}

// loadGreylistArgs parses chain-mode arguments (ending in a PROGRAM) and loads the
// configuration for mode m.
func loadGreylistArgs(t *testing.T, m config.Mode, args ...string) (*config.Config, error) {
	t.Helper()
	o, _, ok := config.ParseChain(append(append([]string{"--log", "none"}, args...), "prog"))
	if !ok {
		t.Fatalf("%q did not parse", args)
	}
	return config.Load(o, m)
}

func greylistExitCode(err error) int {
	if err == nil {
		return -1
	}
	code, _, _ := run.Describe(err)
	return code
}

// Without --greylist nothing of the greylist is set up, and no file is
// opened; with it, chain mode still touches no file until a decision.
func TestLoadGreylist(t *testing.T) {
	db := filepath.Join(t.TempDir(), "greylist.db")
	cfg, err := loadGreylistArgs(t, config.Chain, "--greylist-db", db)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.Greylist != nil || cfg.Dialogue.GreetDelay != 0 || cfg.Dialogue.HELO.Mode != frontend.HELOLog {
		t.Fatalf("defaults: greylist %v, greet delay %v, helo %v", cfg.Policy.Greylist, cfg.Dialogue.GreetDelay, cfg.Dialogue.HELO.Mode)
	}
	cfg, err = loadGreylistArgs(t, config.Chain, "--greylist", "--greylist-db", db, "--greet-delay", "3s", "--helo-check", "refuse")
	if err != nil {
		t.Fatal(err)
	}
	if g := cfg.Policy.Greylist; g == nil || g.Policy == nil || g.Known != nil {
		t.Fatalf("chain mode greylisting: %+v", g)
	}
	if cfg.Dialogue.GreetDelay != 3*time.Second || cfg.Dialogue.HELO.Mode != frontend.HELORefuse {
		t.Fatalf("dialogue: %+v", cfg.Dialogue)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("loading the configuration touched the database: %v", err)
	}
	if len(cfg.Closers) != 0 {
		t.Fatal("chain mode has closers")
	}
}

// Serve mode keeps a pass cache and expires in the background until its
// closers run.
func TestLoadGreylistServe(t *testing.T) {
	db := filepath.Join(t.TempDir(), "greylist.db")
	cfg, err := loadGreylistArgs(t, config.Serve, "--greylist", "--greylist-db", db)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy.Greylist.Known == nil || len(cfg.Closers) != 1 {
		t.Fatalf("serve: cache %v, %d closers", cfg.Policy.Greylist.Known, len(cfg.Closers))
	}
	done := make(chan struct{})
	go func() { cfg.Closers[0](); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the expiry goroutine did not stop")
	}
	_, err = loadGreylistArgs(t, config.Serve, "--greylist", "--greylist-db", "/nonexistent/dir/g.db")
	if greylistExitCode(err) != run.ExitUsage || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("serve with a missing directory: %v", err)
	}
}

func TestLoadGreylistErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not-a-net\n"), 0o644)
	badPat := filepath.Join(dir, "badpat")
	os.WriteFile(badPat, []byte("[a-\n"), 0o644)
	for _, args := range [][]string{
		{"--helo-check", "maybe"},
		{"--greylist", "--greylist-delay", "2h", "--greylist-window", "1h"},
		{"--greylist", "--greylist-v4-prefix", "33"},
		{"--greylist", "--greylist-skip-file", filepath.Join(dir, "missing")},
		{"--greylist", "--greylist-skip-file", bad},
		{"--helo-deny-file", badPat},
		{"--greylist", "--greylist-db", ""},
	} {
		_, err := loadGreylistArgs(t, config.Chain, args...)
		if greylistExitCode(err) != run.ExitUsage {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

// runMxfront runs `mxfront ARGS...` in-process and returns its stdout,
// stderr and exit code.
func runMxfront(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = f
	var stderr bytes.Buffer
	code := dispatch(append([]string{"mxfront"}, args...), &stderr)
	os.Stdout = old
	f.Seek(0, io.SeekStart)
	out, _ := io.ReadAll(f)
	f.Close()
	return string(out), stderr.String(), code
}

func TestGreylistCommands(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "greylist.db")
	g := func(args ...string) (string, string, int) {
		return runMxfront(t, append(append([]string{"greylist"}, args...), "--greylist-db", db)...)
	}
	if out, _, code := g("list", "--json"); code != 0 || strings.TrimSpace(out) != "[\n]" {
		t.Fatalf("list of no file: %d %q", code, out)
	}
	if out, errs, code := g("allow", "192.0.2.7"); code != 0 || out != "allowed 192.0.2.0/24\n" {
		t.Fatalf("allow: %d %q %q", code, out, errs)
	}
	// Flags before the command's argument too.
	if out, _, code := runMxfront(t, "greylist", "allow", "--greylist-db", db, "2001:db8:1:2::9"); code != 0 || out != "allowed 2001:db8:1:2::/64\n" {
		t.Fatalf("allow v6: %d %q", code, out)
	}
	out, _, code := g("list", "--json")
	var es []struct {
		Network, Status string
		FirstSeen       time.Time `json:"first_seen"`
		LastPass        time.Time `json:"last_pass"`
	}
	if err := json.Unmarshal([]byte(out), &es); err != nil || code != 0 || len(es) != 2 {
		t.Fatalf("list --json: %v %d %q", err, code, out)
	}
	for _, e := range es {
		if e.Status != "passing" || e.LastPass.IsZero() || e.FirstSeen.IsZero() {
			t.Errorf("entry %+v", e)
		}
	}
	if out, _, _ := g("list"); !strings.Contains(out, "192.0.2.0/24") || !strings.HasPrefix(out, "NETWORK") {
		t.Errorf("list: %q", out)
	}
	if out, _, code := g("stats"); code != 0 || out != "pending: 0\npassing: 2\nstale: 0\nnetworks: 2\nbytes: "+fileSize(t, db)+"\n" {
		t.Errorf("stats: %d %q", code, out)
	}
	if out, _, code := g("remove", "192.0.2.0/24"); code != 0 || out != "removed 192.0.2.0/24\n" {
		t.Errorf("remove: %d %q", code, out)
	}
	if out, _, code := g("remove", "192.0.2.0/24"); code != 1 || out != "192.0.2.0/24: no record\n" {
		t.Errorf("remove again: %d %q", code, out)
	}
	if out, _, code := g("expire"); code != 0 || out != "expired 0: abandoned 0, lapsed 0, unreadable 0\n" {
		t.Errorf("expire: %d %q", code, out)
	}
	if out, _, code := g("compact"); code != 0 || !strings.HasPrefix(out, "compacted "+db+": ") {
		t.Errorf("compact: %d %q", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"allow", "192.0.2.0/16"}, 100, "networks are /24 here"},
		{[]string{"allow", "nonsense"}, 100, "neither an address nor a network"},
		{[]string{"allow"}, 100, "allow takes one NET"},
		{[]string{"expire", "extra"}, 100, "takes no arguments"},
		{[]string{"list", "--bogus"}, 100, "mxfront: hint:"},
		{[]string{"stats", "--greylist-delay", "2d", "--greylist-window", "1d"}, 100, "must be shorter"},
	} {
		_, errs, code := g(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("greylist %q: exit %d, stderr %q; want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	for _, args := range [][]string{{"greylist"}, {"greylist", "bogus"}} {
		if _, errs, code := runMxfront(t, args...); code != 100 || !strings.Contains(errs, "mxfront: error:") {
			t.Errorf("%q: exit %d %q", args, code, errs)
		}
	}
	if out, _, code := runMxfront(t, "greylist", "list", "--help"); code != 0 || !strings.Contains(out, "--greylist-db") || !strings.Contains(out, "--json") {
		t.Errorf("list --help: %d %q", code, out)
	}
	// A damaged file is a temporary failure, exit 111.
	os.WriteFile(db, bytes.Repeat([]byte("garbage!"), 1024), 0o600)
	if _, errs, code := g("list"); code != 111 || !strings.Contains(errs, "damaged") {
		t.Errorf("list of a damaged file: exit %d %q", code, errs)
	}
}

func fileSize(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(fi.Size(), 10)
}
