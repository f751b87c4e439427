package config

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// GreylistSpecs are the greylisting, early-talker and HELO flags.
var GreylistSpecs = []Spec{
	{"greylist", KindBool, "", "greylist clients by network: the first attempt gets 451 at RCPT, a retry after the delay passes", "Greylisting"},
	{"greylist-db", KindString, defaultGreylistDB, "the greylist database `PATH` (bbolt; shared by every mxfront process and `mxfront greylist`); as --greylist-store bolt:PATH", "Greylisting"},
	{"greylist-store", KindString, "", "the greylist store `URL`: bolt:PATH (the default, bolt:" + defaultGreylistDB + "), redis://[USER@]HOST[:PORT][/DB], rediss://... (TLS) or redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER[/DB], shared by several MX hosts", "Greylisting"},
	{"greylist-store-password-file", KindString, "", "the Redis password is the first line of `FILE` (default: $REDISCLI_AUTH; never on the command line)", "Greylisting"},
	{"greylist-store-prefix", KindString, DefaultStorePrefix, "begin every Redis key with `PREFIX`, so that several deployments share one Redis", "Greylisting"},
	{"greylist-store-timeout", KindDuration, "200ms", "a decision's Redis work takes at most `D` (one or two round trips); past it the client passes", "Greylisting"},
	{"greylist-lock-timeout", KindDuration, "1s", "a decision waits at most `D` for the bbolt file's lock (chain-mode processes take it in turn); past it the client passes", "Greylisting"},
	{"greylist-delay", KindDuration, "5m", "a retry passes only `D` after the first attempt", "Greylisting"},
	{"greylist-window", KindDuration, "24h", "a retry later than `D` after the first attempt starts over", "Greylisting"},
	{"greylist-lifetime", KindDuration, "36d", "a network that passed keeps passing `D` after its last pass", "Greylisting"},
	{"greylist-v4-prefix", KindInt, "24", "judge IPv4 clients by their /`N` network", "Greylisting"},
	{"greylist-v6-prefix", KindInt, "64", "judge IPv6 clients by their /`N` network", "Greylisting"},
	{"control-socket", KindString, "", "serve mode holds the bbolt file open and answers the greylist commands on the unix socket `PATH` (default: the file's name and .sock), where mxfront greylist looks for it", "Greylisting"},
	{"greylist-skip-file", KindList, "", "never greylist the networks in `FILE` (the format of --allow-file); repeatable", "Greylisting"},
	{"greet-delay", KindDuration, "0s", "send \"220-NAME\" and refuse (5xx) a client that speaks within `D` (early talker); 0: off", "Greeting and HELO"},
	{"helo-check", KindString, "log", "bogus HELO/EHLO names in the refusal dialogue (with --inspect, every client's): `MODE` off, log, or refuse (5xx, and a greylisted client never passes)", "Greeting and HELO"},
	{"helo-deny-file", KindList, "", "HELO names matching a pattern of `FILE` are bogus (one shell pattern a line, e.g. *.dyn.example.net, then a reason); repeatable", "Greeting and HELO"},
}

// defaultGreylistDB is --greylist-db's default.
const defaultGreylistDB = "/var/lib/mxfront/greylist.db"

// DefaultStorePrefix is --greylist-store-prefix's default, the Redis
// store's own (a test checks that they agree: config does not import it).
const DefaultStorePrefix = "mxfront:gl:"

// Serve mode keeps networks known to pass in memory this long (so
// `mxfront greylist remove` takes effect within it), at most this many.
const (
	passCacheTTL = 60 * time.Second
	passCacheMax = 100000
)

// adminWait is how long a `mxfront greylist` command waits for the bbolt
// file's lock or for each Redis round trip: an administrator can wait,
// a client cannot.
const adminWait = 10 * time.Second

// NetworkStoreOptions is what OpenNetworkStore is given, from the flags.
type NetworkStoreOptions struct {
	URL          string        // redis://, rediss:// or redis-sentinel://
	PasswordFile string        // --greylist-store-password-file
	Prefix       string        // --greylist-store-prefix
	Timeout      time.Duration // each round trip
	// Window and Lifetime are the policy's, the TTLs of the records.
	Window, Lifetime time.Duration
	PoolSize         int // connections kept; 0: the client's default
}

// NetworkStore is a greylist store on the network (Redis), shared by
// several MX hosts.
type NetworkStore interface {
	greylist.Store
	// ExpiresItself reports that the server drops stale records (by TTL):
	// `mxfront greylist expire` and serve mode's hourly sweep are not
	// needed.
	ExpiresItself() bool
	// Ping checks that the server answers and takes the password.
	Ping(ctx context.Context) error
}

// OpenNetworkStore opens a network store without connecting. It is set by
// the executables that link a network store's client (mxfront-cli);
// chain mode's lean mxfront leaves it nil and, when such a store is asked
// for, execs mxfront-cli instead (see WantsNetworkStore), so that
// connections that use bbolt never pay for linking the Redis client.
var OpenNetworkStore func(NetworkStoreOptions) (NetworkStore, error)

// GreylistStore is an open greylist: its policy, its store, and the
// store's name for log lines (a path, or a URL, which never holds a
// password).
type GreylistStore struct {
	Policy *greylist.Policy
	Store  greylist.Store
	Name   string
	// Socket is the control socket of a bbolt file: where serve answers
	// the admin commands, or where the admin commands looked for it.
	Socket string
	// SocketErr is why an admin command works on the file itself: no
	// serve answered on Socket.
	SocketErr error
}

// Network reports whether the store is a network store (Redis).
func (g GreylistStore) Network() bool {
	_, ok := g.Store.(NetworkStore)
	return ok
}

// ExpiresItself reports whether the store drops stale records itself.
func (g GreylistStore) ExpiresItself() bool {
	n, ok := g.Store.(NetworkStore)
	return ok && n.ExpiresItself()
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
	gs, err := OpenGreylist(o, cfg.Mode)
	if err != nil {
		return err
	}
	g := &frontend.Greylisting{Policy: gs.Policy}
	if g.Skip, err = skipList(o); err != nil {
		gs.Store.Close()
		return err
	}
	if gs.Network() {
		// Up to two round trips (a read, a compare-and-swap) under one
		// deadline. bbolt bounds its own wait for the file's lock.
		g.Timeout = o.Duration("greylist-store-timeout")
	}
	cfg.Policy.Greylist = g
	if cfg.Mode != Serve {
		return nil
	}
	g.Known = frontend.NewPassCache(passCacheTTL, passCacheMax)
	// A store down costs one ERROR line per incident, not per client.
	g.Health = &frontend.StoreHealth{}
	cfg.Greylist = gs
	cfg.Closers = append(cfg.Closers, func() { gs.Store.Close() })
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// storeURL is where the greylist is: a bbolt file (path) or a network
// store (url), from --greylist-store and --greylist-db.
func storeURL(o Options) (path, url string, err error) {
	s, db := o.String("greylist-store"), o.String("greylist-db")
	switch {
	case s == "":
		if db == "" {
			return "", "", fail.Usage("e.g. --greylist-db /var/lib/mxfront/greylist.db", "--greylist-db is empty")
		}
		return db, "", nil
	case db != defaultGreylistDB:
		return "", "", fail.Usage("--greylist-db PATH is --greylist-store bolt:PATH: give one of them",
			"both --greylist-store %s and --greylist-db %s", storeText(s), db)
	case strings.HasPrefix(s, "bolt:"):
		if path = strings.TrimPrefix(s, "bolt:"); path == "" {
			return "", "", fail.Usage("e.g. --greylist-store bolt:/var/lib/mxfront/greylist.db", "--greylist-store bolt: names no file")
		}
		return path, "", nil
	case IsNetworkStore(s):
		return "", s, nil
	}
	return "", "", fail.Usage("--greylist-store takes bolt:PATH, redis://HOST:PORT, rediss://HOST:PORT or redis-sentinel://HOST:PORT/MASTER",
		"--greylist-store %s: not a store URL", storeText(s))
}

// storeText is a store URL for an error message: bounded, printable, and
// without what could be a password ("redis://user:secret@host").
func storeText(s string) string {
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			s = scheme + "://...@" + rest[at+1:]
		}
	}
	return sanitize.Text(s, 200)
}

// IsNetworkStore reports whether a --greylist-store URL names a network
// store (Redis) rather than a bbolt file.
func IsNetworkStore(url string) bool {
	for _, scheme := range [...]string{"redis://", "rediss://", "redis-sentinel://"} {
		if strings.HasPrefix(url, scheme) {
			return true
		}
	}
	return false
}

// WantsNetworkStore reports whether chain-mode options o greylist with a
// network store, which the lean mxfront cannot open.
func WantsNetworkStore(o Options) bool {
	return o.Bool("greylist") && IsNetworkStore(o.String("greylist-store"))
}

// OpenGreylist opens the store of --greylist-store (or --greylist-db)
// without touching the file or connecting, and the policy of the duration
// and prefix flags, for mode m: chain mode keeps one connection to a
// network store, serve mode a pool; Admin (the `mxfront greylist`
// commands) waits 10s for a lock or an answer.
func OpenGreylist(o Options, m Mode) (GreylistStore, error) {
	path, url, err := storeURL(o)
	if err != nil {
		return GreylistStore{}, err
	}
	c := greylistConfig(o)
	var s greylist.Store
	name := path
	var sock string
	var sockErr error
	if url == "" {
		if sock, err = controlSocket(o, path); err != nil {
			return GreylistStore{}, err
		}
		lock := o.Duration("greylist-lock-timeout")
		if m != Admin && lock <= 0 {
			return GreylistStore{}, fail.Usage("e.g. --greylist-lock-timeout 1s", "--greylist-lock-timeout must be above zero")
		}
		if s, sockErr, err = openBolt(path, sock, m, lock); err != nil {
			return GreylistStore{}, err
		}
	} else {
		if s, err = openNetwork(o, m, url, c); err != nil {
			return GreylistStore{}, err
		}
		name = url
	}
	p, err := greylist.NewPolicy(s, c)
	if err != nil {
		s.Close()
		return GreylistStore{}, policyError(err)
	}
	return GreylistStore{Policy: p, Store: s, Name: name, Socket: sock, SocketErr: sockErr}, nil
}

// openNetwork opens the network store at url for mode m.
func openNetwork(o Options, m Mode, url string, c greylist.Config) (NetworkStore, error) {
	if OpenNetworkStore == nil {
		return nil, fail.Usage("mxfront runs mxfront-cli (installed beside it, or in libexec/mxfront) for a Redis store",
			"--greylist-store %s: this executable has no Redis client", storeText(url))
	}
	no := NetworkStoreOptions{URL: url, PasswordFile: o.String("greylist-store-password-file"),
		Prefix: o.String("greylist-store-prefix"), Timeout: o.Duration("greylist-store-timeout"),
		Window: c.Window, Lifetime: c.Lifetime}
	switch m {
	case Chain:
		no.PoolSize = 1 // one client, one decision
	case Admin:
		no.Timeout = adminWait
	}
	if no.Prefix == "" {
		return nil, fail.Usage("e.g. --greylist-store-prefix "+DefaultStorePrefix, "--greylist-store-prefix is empty")
	}
	if no.Timeout <= 0 {
		return nil, fail.Usage("e.g. --greylist-store-timeout 200ms", "--greylist-store-timeout must be above zero")
	}
	s, err := OpenNetworkStore(no)
	if err != nil {
		return nil, fail.Usage("the password is the first line of --greylist-store-password-file FILE (readable by mxfront's user), or $REDISCLI_AUTH; "+
			"see mxfront(8) for the URL forms", "--greylist-store: %v", err)
	}
	return s, nil
}

// NewGreylistPolicy returns the policy of the duration and prefix flags
// over s (for a command that wraps the store OpenGreylist opened).
func NewGreylistPolicy(o Options, s greylist.Store) (*greylist.Policy, error) {
	p, err := greylist.NewPolicy(s, greylistConfig(o))
	if err != nil {
		return nil, policyError(err)
	}
	return p, nil
}

// greylistConfig is the policy of the flags, the window and lifetime
// defaults filled in (a network store's TTLs are these two); NewPolicy
// checks it.
func greylistConfig(o Options) greylist.Config {
	c := greylist.Config{
		Delay:    o.Duration("greylist-delay"),
		Window:   o.Duration("greylist-window"),
		Lifetime: o.Duration("greylist-lifetime"),
		V4Prefix: o.Int("greylist-v4-prefix"),
		V6Prefix: o.Int("greylist-v6-prefix"),
	}
	if c.Window == 0 {
		c.Window = greylist.DefaultWindow
	}
	if c.Lifetime == 0 {
		c.Lifetime = greylist.DefaultLifetime
	}
	return c
}

func policyError(err error) error {
	return fail.Usage("--greylist-delay must be shorter than --greylist-window; prefixes are 1..32 (IPv4) and 1..128 (IPv6)", "%v", err)
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
