package config

import (
	"os"
	"path/filepath"
	"time"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/fail"
)

// GreylistSpecs are the greylisting, early-talker and HELO flags.
var GreylistSpecs = []Spec{
	{"greylist", KindBool, "", "greylist clients by network: the first attempt gets 451 at RCPT, a retry after the delay passes", "Greylisting"},
	{"greylist-db", KindString, "/var/lib/mxfront/greylist.db", "the greylist database `PATH` (bbolt; shared by every mxfront process and `mxfront greylist`)", "Greylisting"},
	{"greylist-delay", KindDuration, "5m", "a retry passes only `D` after the first attempt", "Greylisting"},
	{"greylist-window", KindDuration, "24h", "a retry later than `D` after the first attempt starts over", "Greylisting"},
	{"greylist-lifetime", KindDuration, "36d", "a network that passed keeps passing `D` after its last pass", "Greylisting"},
	{"greylist-v4-prefix", KindInt, "24", "judge IPv4 clients by their /`N` network", "Greylisting"},
	{"greylist-v6-prefix", KindInt, "64", "judge IPv6 clients by their /`N` network", "Greylisting"},
	{"greylist-skip-file", KindList, "", "never greylist the networks in `FILE` (the format of --allow-file); repeatable", "Greylisting"},
	{"greet-delay", KindDuration, "0s", "send \"220-NAME\" and refuse (5xx) a client that speaks within `D` (early talker); 0: off", "Greeting and HELO"},
	{"helo-check", KindString, "log", "bogus HELO/EHLO names in the refusal dialogue: `MODE` off, log, or refuse (5xx, and a greylisted client never passes)", "Greeting and HELO"},
	{"helo-deny-file", KindList, "", "HELO names matching a pattern of `FILE` are bogus (one shell pattern a line, e.g. *.dyn.example.net, then a reason); repeatable", "Greeting and HELO"},
}

// Serve mode keeps networks known to pass in memory this long (so
// `mxfront greylist remove` takes effect within it), at most this many.
const (
	passCacheTTL = 60 * time.Second
	passCacheMax = 100000
)

// GreylistStore is serve mode's open greylist, for its housekeeping
// (expiring old records).
type GreylistStore struct {
	Policy *greylist.Policy
	Store  *greylist.Bolt
}

// loadGreylist sets up the greeting delay and the HELO check on
// cfg.Dialogue, and with --greylist, cfg.Policy.Greylist. Without
// --greylist nothing of the greylist is touched: no database is opened.
func loadGreylist(o Options, cfg *Config) error {
	cfg.Dialogue.GreetDelay = o.Duration("greet-delay")
	mode, err := frontend.ParseHELOMode(o.String("helo-check"))
	if err != nil {
		return fail.Usage("--helo-check takes off, log or refuse", "%v", err)
	}
	cfg.Dialogue.HELO.Mode = mode
	if cfg.Dialogue.HELO.Deny, err = heloPatterns(o); err != nil {
		return err
	}
	if !o.Bool("greylist") {
		return nil
	}
	policy, store, err := OpenGreylist(o, greylist.DefaultLockTimeout)
	if err != nil {
		return err
	}
	g := &frontend.Greylisting{Policy: policy}
	if g.Skip, err = skipList(o); err != nil {
		store.Close()
		return err
	}
	cfg.Policy.Greylist = g
	if cfg.Mode != Serve {
		return nil
	}
	// Serve mode opens the file per decision, as chain mode does, so that
	// chain-mode processes and `mxfront greylist` can share it; the cache
	// spares known clients the file.
	if dir := filepath.Dir(store.Path()); !isDir(dir) {
		return fail.Usage("create the directory, writable by mxfront's user, or give another --greylist-db",
			"--greylist-db %s: directory %s does not exist", store.Path(), dir)
	}
	g.Known = frontend.NewPassCache(passCacheTTL, passCacheMax)
	cfg.Greylist = GreylistStore{Policy: policy, Store: store}
	cfg.Closers = append(cfg.Closers, func() { store.Close() })
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// OpenGreylist opens the store of --greylist-db (without touching the
// file) and the policy of the duration and prefix flags.
func OpenGreylist(o Options, lockWait time.Duration) (*greylist.Policy, *greylist.Bolt, error) {
	path := o.String("greylist-db")
	if path == "" {
		return nil, nil, fail.Usage("e.g. --greylist-db /var/lib/mxfront/greylist.db", "--greylist-db is empty")
	}
	store, err := greylist.OpenBolt(path, greylist.BoltOptions{LockTimeout: lockWait})
	if err != nil {
		return nil, nil, fail.Temp("", err)
	}
	policy, err := greylist.NewPolicy(store, greylist.Config{
		Delay:    o.Duration("greylist-delay"),
		Window:   o.Duration("greylist-window"),
		Lifetime: o.Duration("greylist-lifetime"),
		V4Prefix: o.Int("greylist-v4-prefix"),
		V6Prefix: o.Int("greylist-v6-prefix"),
	})
	if err != nil {
		return nil, nil, fail.Usage("--greylist-delay must be shorter than --greylist-window; prefixes are 1..32 (IPv4) and 1..128 (IPv6)", "%v", err)
	}
	return policy, store, nil
}

// heloPatterns reads --helo-deny-file; nil without one.
func heloPatterns(o Options) (*frontend.HELOPatterns, error) {
	files := o.StringSlice("helo-deny-file")
	if len(files) == 0 {
		return nil, nil
	}
	pats := &frontend.HELOPatterns{}
	for _, f := range files {
		if err := pats.ReadFile(f); err != nil {
			return nil, fail.Usage("each line of --helo-deny-file is \"PATTERN [reason]\" (*, ? and [a-z] as in the shell); # starts a comment", "--helo-deny-file: %v", err)
		}
	}
	return pats, nil
}

// skipList reads --greylist-skip-file; nil without one.
func skipList(o Options) (*frontend.NetList, error) {
	files := o.StringSlice("greylist-skip-file")
	if len(files) == 0 {
		return nil, nil
	}
	l := &frontend.NetList{}
	if err := readNetFiles(l, files, "greylist-skip-file", "\"NET [comment]\", as in --allow-file"); err != nil {
		return nil, err
	}
	return l, nil
}
