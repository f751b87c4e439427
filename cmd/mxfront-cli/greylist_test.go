package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/cmd/internal/run"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/greylist/redisstore"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/testpeer"
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

// The store flags: --greylist-store bolt:PATH is --greylist-db PATH; a
// Redis URL is opened (without connecting) by the opener mxfront-cli
// gives internal/config, with the TTLs of the policy, one connection in
// chain mode, a pool in serve mode and 10s waits for the admin commands.
func TestGreylistStoreFlags(t *testing.T) {
	checkFastAgrees(t, []string{"--greylist", "--greylist-store", "redis://127.0.0.1:1/2", "--greylist-store-password-file", "/p",
		"--greylist-store-prefix", "site:", "--greylist-store-timeout", "1s", "prog"})
	if config.DefaultStorePrefix != redisstore.DefaultPrefix {
		t.Errorf("--greylist-store-prefix defaults to %q, the store to %q", config.DefaultStorePrefix, redisstore.DefaultPrefix)
	}
	o, _, _ := config.ParseChain([]string{"prog"})
	if d := o.Duration("greylist-store-timeout"); d != redisstore.DefaultTimeout {
		t.Errorf("--greylist-store-timeout defaults to %v, the store to %v", d, redisstore.DefaultTimeout)
	}

	db := filepath.Join(t.TempDir(), "g.db")
	cfg, err := loadGreylistArgs(t, config.Serve, "--greylist", "--greylist-store", "bolt:"+db)
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := cfg.Greylist.Store.(*greylist.Bolt); !ok || b.Path() != db || cfg.Greylist.Name != db || cfg.Policy.Greylist.Timeout != 0 {
		t.Fatalf("bolt:PATH: %T %+v, timeout %v", cfg.Greylist.Store, cfg.Greylist, cfg.Policy.Greylist.Timeout)
	}
	cfg.Close()

	var got []config.NetworkStoreOptions
	opener := config.OpenNetworkStore
	t.Cleanup(func() { config.OpenNetworkStore = opener })
	config.OpenNetworkStore = func(o config.NetworkStoreOptions) (config.NetworkStore, error) {
		got = append(got, o)
		return opener(o)
	}
	closed := "redis://127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t)) // nothing listens: Load must not connect
	cfg, err = loadGreylistArgs(t, config.Chain, "--greylist", "--greylist-store", closed, "--greylist-window", "12h", "--greylist-lifetime", "7d")
	if err != nil {
		t.Fatal(err)
	}
	if g := cfg.Policy.Greylist; g.Timeout != 200*time.Millisecond || g.Known != nil || len(cfg.Closers) != 0 {
		t.Fatalf("chain mode on Redis: timeout %v, cache %v, %d closers", g.Timeout, g.Known, len(cfg.Closers))
	}
	cfg, err = loadGreylistArgs(t, config.Serve, "--greylist", "--greylist-store", closed, "--greylist-store-timeout", "50ms",
		"--greylist-store-prefix", "site-b:")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Greylist.ExpiresItself() || cfg.Greylist.Name != closed || cfg.Policy.Greylist.Known == nil || cfg.Policy.Greylist.Health == nil ||
		cfg.Policy.Greylist.Timeout != 50*time.Millisecond || len(cfg.Closers) != 1 {
		t.Fatalf("serve mode on Redis: %+v, timeout %v", cfg.Greylist, cfg.Policy.Greylist.Timeout)
	}
	cfg.Close()
	g, err := config.OpenGreylist(optionsOf(t, "--greylist-store", closed, "--greylist-store-timeout", "50ms"), config.Admin)
	if err != nil {
		t.Fatal(err)
	}
	g.Store.Close()
	want := []config.NetworkStoreOptions{
		{URL: closed, Prefix: "mxfront:gl:", Timeout: 200 * time.Millisecond, Window: 12 * time.Hour, Lifetime: 7 * 24 * time.Hour, PoolSize: 1},
		{URL: closed, Prefix: "site-b:", Timeout: 50 * time.Millisecond, Window: 24 * time.Hour, Lifetime: 36 * 24 * time.Hour},
		{URL: closed, Prefix: "mxfront:gl:", Timeout: 10 * time.Second, Window: 24 * time.Hour, Lifetime: 36 * 24 * time.Hour},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("store options:\n got %+v\nwant %+v", got, want)
	}

	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\nsecret\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--greylist-store", "bolt:" + db, "--greylist-db", db}, "both --greylist-store"},
		{[]string{"--greylist-store", "redis://127.0.0.1:1", "--greylist-db", db}, "both --greylist-store"},
		{[]string{"--greylist-store", "bolt:"}, "names no file"},
		{[]string{"--greylist-store", "mysql://127.0.0.1"}, "not a store URL"},
		{[]string{"--greylist-store", "/var/lib/mxfront/greylist.db"}, "not a store URL"},
		{[]string{"--greylist-store", "redis://u:secret@127.0.0.1:1"}, "never taken from the URL"},
		{[]string{"--greylist-store", "redis-sentinel://127.0.0.1:26379"}, "no master name"},
		{[]string{"--greylist-store", "redis://127.0.0.1:1", "--greylist-store-password-file", filepath.Join(dir, "missing")}, "password file"},
		{[]string{"--greylist-store", "redis://127.0.0.1:1", "--greylist-store-password-file", empty}, "first line is empty"},
		{[]string{"--greylist-store", "redis://127.0.0.1:1", "--greylist-store-prefix", ""}, "prefix is empty"},
		{[]string{"--greylist-store", "redis://127.0.0.1:1", "--greylist-store-timeout", "0s"}, "above zero"},
		{[]string{"--greylist-store", "redis://127.0.0.1:1", "--greylist-delay", "2d"}, "must be shorter"},
	} {
		_, err := loadGreylistArgs(t, config.Chain, append([]string{"--greylist"}, tc.args...)...)
		if greylistExitCode(err) != run.ExitUsage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v; want a usage error saying %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error repeats the password: %v", tc.args, err)
		}
	}
	// Without the opener (mxfront, chain mode's lean executable, has none)
	// a Redis URL is an error that names mxfront-cli.
	config.OpenNetworkStore = nil
	_, err = loadGreylistArgs(t, config.Chain, "--greylist", "--greylist-store", closed)
	if greylistExitCode(err) != run.ExitUsage || !strings.Contains(err.Error(), "no Redis client") {
		t.Errorf("without an opener: %v", err)
	}
	if !config.WantsNetworkStore(optionsOf(t, "--greylist", "--greylist-store", "rediss://h")) ||
		config.WantsNetworkStore(optionsOf(t, "--greylist-store", "rediss://h")) ||
		config.WantsNetworkStore(optionsOf(t, "--greylist", "--greylist-store", "bolt:/x")) {
		t.Error("WantsNetworkStore: a Redis URL with --greylist, and only that")
	}
}

// optionsOf parses chain-mode flags (a PROGRAM is added).
func optionsOf(t *testing.T, args ...string) config.Options {
	t.Helper()
	o, _, ok := config.ParseChain(append(args, "prog"))
	if !ok {
		t.Fatalf("%q did not parse", args)
	}
	return o
}

// Every `mxfront greylist` command on a real redis-server (this test's,
// on loopback): list, allow, stats, remove work as on bbolt; expire says
// that Redis expires records itself (exit 0); compact is for bbolt files
// only (exit 100); export from a bbolt file and import into Redis give the
// same list --json; a store that cannot be reached is exit 111.
func TestGreylistCommandsRedis(t *testing.T) {
	r := testpeer.StartRedis(t)
	g := func(args ...string) (string, string, int) {
		return runMxfront(t, append(append([]string{"greylist"}, args...), "--greylist-store", r.URL())...)
	}
	if out, errs, code := g("list", "--json"); code != 0 || strings.TrimSpace(out) != "[\n]" {
		t.Fatalf("list of an empty Redis: %d %q %q", code, out, errs)
	}
	if out, _, code := g("allow", "192.0.2.7"); code != 0 || out != "allowed 192.0.2.0/24\n" {
		t.Fatalf("allow: %d %q", code, out)
	}
	if out, _, code := g("allow", "2001:db8:1:2::9"); code != 0 || out != "allowed 2001:db8:1:2::/64\n" {
		t.Fatalf("allow v6: %d %q", code, out)
	}
	// mxfront check peeks: a known network passes, a new one would be
	// greylisted, and nothing is written.
	if out, _, code := runMxfront(t, "check", "--greylist", "--greylist-store", r.URL(), "192.0.2.9"); code != 0 ||
		!strings.Contains(out, "verdict: pass") || !strings.Contains(out, "192.0.2.0/24 known") {
		t.Errorf("check of an allowed network: %d %q", code, out)
	}
	if out, _, code := runMxfront(t, "check", "--greylist", "--greylist-store", r.URL(), "198.51.100.9"); code != 1 ||
		!strings.Contains(out, "198.51.100.0/24 new") {
		t.Errorf("check of a new network: %d %q", code, out)
	}
	if ttl, err := testpeer.RedisCommand(r.Addr, "PTTL mxfront:gl:192.0.2.0/24"); err != nil || !strings.HasPrefix(ttl, ":") || len(ttl) < 11 {
		t.Errorf("the allowed network's key has TTL %q (%v), want the lifetime, 36d in ms", ttl, err)
	}
	if out, _, code := g("list"); code != 0 || !strings.Contains(out, "192.0.2.0/24") || !strings.Contains(out, "passing") {
		t.Errorf("list: %d %q", code, out)
	}
	if out, _, code := g("stats"); code != 0 || !strings.HasPrefix(out, "pending: 0\npassing: 2\nstale: 0\nnetworks: 2\nbytes: ") {
		t.Errorf("stats: %d %q", code, out)
	}
	if out, _, code := g("expire"); code != 0 || out != r.URL()+" expires records itself (by their TTL): nothing to do\n" {
		t.Errorf("expire: %d %q", code, out)
	}
	if _, errs, code := g("compact"); code != 100 || !strings.Contains(errs, "is not a bbolt file") {
		t.Errorf("compact on Redis: %d %q", code, errs)
	}
	if out, _, code := g("remove", "192.0.2.0/24"); code != 0 || out != "removed 192.0.2.0/24\n" {
		t.Errorf("remove: %d %q", code, out)
	}
	if out, _, code := g("remove", "192.0.2.0/24"); code != 1 || out != "192.0.2.0/24: no record\n" {
		t.Errorf("remove again: %d %q", code, out)
	}
	// Another prefix is another greylist on the same server.
	if out, _, code := g("list", "--json", "--greylist-store-prefix", "other:"); code != 0 || strings.TrimSpace(out) != "[\n]" {
		t.Errorf("list under another prefix: %d %q", code, out)
	}

	// bbolt → Redis.
	db := filepath.Join(t.TempDir(), "greylist.db")
	b := func(args ...string) (string, string, int) {
		return runMxfront(t, append(append([]string{"greylist"}, args...), "--greylist-db", db)...)
	}
	for _, n := range []string{"198.51.100.1", "203.0.113.1", "2001:db8:1:2::1"} {
		if _, errs, code := b("allow", n); code != 0 {
			t.Fatalf("allow %s in bbolt: %q", n, errs)
		}
	}
	exported, errs, code := b("export")
	if code != 0 || strings.Count(exported, "\n") != 3 {
		t.Fatalf("export: %d %q %q", code, exported, errs)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	os.WriteFile(file, []byte(exported), 0o600)
	if out, errs, code := g("import", file); code != 0 || out != "import: added 2, kept 1 (the store had them), left out 0 stale and 0 of another length\n" {
		t.Fatalf("import: %d %q %q", code, out, errs)
	}
	// The two networks Redis had no record of are there as bbolt had
	// them (the one it had, allowed above, was kept: "kept 1").
	rl, _, _ := g("list", "--json")
	for _, line := range strings.Split(strings.TrimSpace(exported), "\n") {
		if !strings.Contains(line, "2001:db8:1:2::/64") && !strings.Contains(rl, line) {
			t.Errorf("after import, %s: Redis has\n%s", line, rl)
		}
	}
	// Standard input, a line that does not read (exit 100, what came
	// before it is in), and a store that does not answer (111).
	stdin := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(stdin, []byte(`{"network":"192.0.2.0/24","first_seen":"`+time.Now().UTC().Format(time.RFC3339)+`"}`+"\n{bad\n"), 0o600)
	if _, errs, code := withStdin(t, stdin, func() (string, string, int) { return g("import") }); code != 100 || !strings.Contains(errs, "entry 2") {
		t.Errorf("import of a bad line: %d %q", code, errs)
	}
	if l, _, _ := g("list", "--json"); !strings.Contains(l, `"network":"192.0.2.0/24"`) {
		t.Errorf("the good line before the bad one was not imported:\n%s", l)
	}
	down := "redis://127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	for _, args := range [][]string{{"list"}, {"import", file}, {"allow", "192.0.2.1"}} {
		_, errs, code := runMxfront(t, append(append([]string{"greylist"}, args...), "--greylist-store", down)...)
		if code != 111 || !strings.Contains(errs, "connection refused") {
			t.Errorf("%q on a closed port: %d %q", args, code, errs)
		}
	}
}

// A password is read from --greylist-store-password-file or, without one,
// from REDISCLI_AUTH; the ACL user comes from the URL. A wrong one fails
// the command with exit 111 and never shows the password.
func TestGreylistRedisPassword(t *testing.T) {
	r := testpeer.StartRedis(t, "--requirepass", "s3cret-default")
	if reply, err := testpeer.RedisCommand(r.Addr, "AUTH s3cret-default\r\nACL SETUSER mx on >s3cret-mx ~mxfront:gl:* +@all"); err != nil || reply != "+OK" {
		t.Fatalf("ACL SETUSER: %q %v", reply, err)
	}
	dir := t.TempDir()
	pw := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	userURL := "redis://mx@" + r.Addr
	t.Setenv("REDISCLI_AUTH", "")
	for _, tc := range []struct {
		url, file, env string
		code           int
	}{
		{r.URL(), pw("default", "s3cret-default\n"), "", 0},
		{userURL, pw("mx", "s3cret-mx\r\nsecond line ignored\n"), "", 0},
		{userURL, "", "s3cret-mx", 0},
		{r.URL(), "", "", 111},
		{userURL, pw("wrong", "s3cret-wrong\n"), "", 111},
		{userURL, "", "s3cret-wrong", 111},
	} {
		t.Setenv("REDISCLI_AUTH", tc.env)
		args := []string{"greylist", "allow", "192.0.2.7", "--greylist-store", tc.url}
		if tc.file != "" {
			args = append(args, "--greylist-store-password-file", tc.file)
		}
		out, errs, code := runMxfront(t, args...)
		if code != tc.code || strings.Contains(out+errs, "s3cret") {
			t.Errorf("%s, file %q, REDISCLI_AUTH %q: exit %d, want %d\n%s%s", tc.url, tc.file, tc.env, code, tc.code, out, errs)
		}
	}
}

// withStdin runs fn with os.Stdin reading file.
func withStdin(t *testing.T, file string, fn func() (string, string, int)) (string, string, int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	return fn()
}
