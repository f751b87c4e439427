package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/mxfront/mxfront/cmd/internal/run"
	mxexec "github.com/mxfront/mxfront/exec"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/frontend/serve"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/config"
	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/urfave/cli/v2"
)

func serveApp() *cli.App {
	flags := append(policyFlags(),
		&cli.StringSliceFlag{Name: "listen", Usage: "accept connections on `ADDR` (127.0.0.1:2525, [::1]:25); repeatable; default: the sockets systemd passes", Category: "Serve"},
		&cli.IntFlag{Name: "max-conns", Value: serve.DefaultLimits.MaxConns, Usage: "answer 421 to new clients while `N` connections are open (deciding, refused, or passed and running); 0: no limit", Category: "Serve"},
		&cli.IntFlag{Name: "max-conns-per-ip", Value: serve.DefaultLimits.MaxConnsPerIP, Usage: "answer 421 to a client whose /32 (IPv4) or /64 (IPv6) has `N` connections open; 0: no limit", Category: "Serve"},
		&cli.IntFlag{Name: "max-children", Value: serve.DefaultLimits.MaxChildren, Usage: "answer 421 to a client passed while `N` PROGRAMs run; 0: no limit", Category: "Serve"},
		&cli.GenericFlag{Name: "shutdown-timeout", Value: durationFlag(30 * time.Second), DefaultText: "30s", Usage: "on SIGTERM, let refusal dialogues go on for `D`, then answer 421 and close them", Category: "Serve"},
		&cli.BoolFlag{Name: "proxy-protocol", Usage: "the peers of --proxy-from send a PROXY header (v1 or v2) naming the client", Category: "Serve"},
		&cli.StringSliceFlag{Name: "proxy-from", Usage: "`NET` (IP or CIDR) of a proxy that must send a PROXY header; no one else may; repeatable", Category: "Serve"},
		&cli.StringFlag{Name: "user", Usage: "run PROGRAM as `USER` (with its groups) when serve runs as root", Category: "Serve"},
		&cli.StringFlag{Name: "group", Usage: "run PROGRAM with `GROUP` as its group (default: --user's)", Category: "Serve"},
		metricsFlag(),
	)
	flags = append(flags, cliFlags(config.DNSHealthSpecs)...)
	return &cli.App{
		Name:      "serve",
		HelpName:  "mxfront serve",
		Usage:     "accept connections, decide in-process, start PROGRAM for each client passed",
		UsageText: "mxfront serve [--listen ADDR]... [flags] [--] PROGRAM [ARGS...]",
		Flags:     flags,
		Action:    serveAction,
	}
}

func serveAction(c *cli.Context) error {
	// Fds the launcher left open are nobody's business but its own: each
	// PROGRAM gets its connection and fd 2 only.
	mxexec.CloseOnExecAbove(2)
	argv := c.Args().Slice()
	if len(argv) == 0 {
		return fail.Usage("name the SMTP server to start for each client, e.g. -- /usr/sbin/exim4 -bs", "no PROGRAM given")
	}
	path, err := mxexec.LookPath(argv[0])
	if err != nil {
		return fail.Usage("give PROGRAM's full path or put it in PATH", "PROGRAM %s: %v", argv[0], err)
	}
	cfg, err := config.Load(cliOptions{c}, config.Serve)
	if err != nil {
		return err
	}
	logWarnings(cfg)
	listsChanged := make(chan struct{}, 1)
	lists, err := newListHealth(c, cfg, func() {
		select {
		case listsChanged <- struct{}{}:
		default:
		}
	})
	if err != nil {
		cfg.Close()
		return err
	}
	listeners, err := listen(c.StringSlice("listen"))
	if err != nil {
		cfg.Close()
		return err
	}
	s := &serve.Server{
		Policy: cfg.Policy, Dialogue: cfg.Dialogue, Argv: argv, Path: path,
		Environ: os.Environ(), Log: cfg.Log, Stderr: os.Stderr, Listeners: listeners,
		Limits:          serve.Limits{MaxConns: c.Int("max-conns"), MaxConnsPerIP: c.Int("max-conns-per-ip"), MaxChildren: c.Int("max-children")},
		ShutdownTimeout: cliOptions{c}.Duration("shutdown-timeout"),
	}
	if err := firstErr(serveOptions(c, s), serveRelay(cliOptions{c}, cfg, s)); err != nil {
		for _, l := range listeners {
			l.Close()
		}
		cfg.Close()
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for _, l := range listeners {
		cfg.Log.Info("listening", "addr", l.Addr().String())
	}
	defer cfg.Close()
	ctl, err := serveControl(cfg)
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		return err
	}
	defer ctl.Close()
	ms, err := startMetrics(ctx, c, cfg, s, lists)
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		return err
	}
	defer ms.stop()
	var addrs []string
	for _, l := range listeners {
		addrs = append(addrs, l.Addr().String())
	}
	// Caught before READY=1: from then on systemd may send it, and its
	// default action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	notify("READY=1\nSTATUS=accepting on " + strings.Join(addrs, " "))
	// STOPPING=1 as soon as the stop begins, and surely before exit (serve
	// may return before that goroutine has run).
	var stopping sync.Once
	sayStopping := func() {
		stopping.Do(func() { notify("STOPPING=1\nSTATUS=stopping: waiting for refusal dialogues to end") })
	}
	go func() {
		<-ctx.Done()
		sayStopping()
	}()
	go watchdog(ctx)
	go status(ctx, s, lists, listsChanged)
	// Housekeeping ends before cfg.Close closes the store (defers run
	// last first).
	var housekeeping sync.WaitGroup
	defer housekeeping.Wait()
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	if g := cfg.Greylist; g.Policy != nil {
		housekeeping.Add(1)
		go func() { defer housekeeping.Done(); expireGreylist(hctx, g, cfg.Log) }()
	}
	if lists != nil {
		housekeeping.Add(1)
		go func() { defer housekeeping.Done(); lists.Run(hctx) }()
	}
	go reloadOnHUP(ctx, hup, c, cfg, s, ms)
	err = s.Serve(ctx)
	sayStopping()
	if err != nil {
		return &run.ExitError{Code: run.ExitTemp, Err: err}
	}
	cfg.Log.Info("stopped")
	return nil
}

// expireGreylist drops old greylist records every hour while serve runs;
// chain-mode sites run `mxfront greylist expire` from cron instead. A
// store that expires records itself (Redis, by TTL) needs no sweep: it is
// asked once whether it answers, so that a store down at start is heard
// of before the first client.
func expireGreylist(ctx context.Context, g config.GreylistStore, log *logline.Logger) {
	if n, ok := g.Store.(config.NetworkStore); ok && g.ExpiresItself() {
		c, cancel := context.WithTimeout(ctx, storeCheckWait)
		defer cancel()
		if err := n.Ping(c); err != nil && ctx.Err() == nil {
			log.Error("greylist store not answering: clients pass until it does", "store", g.Name, "error", err.Error())
			return
		}
		log.Info("greylist store answers; it expires records itself", "store", g.Name)
		return
	}
	_ = g.Policy.ExpireEvery(ctx, time.Hour, func(e greylist.Expired, err error) {
		if err != nil {
			log.Error("greylist expire failed", "db", g.Name, "error", err.Error())
			return
		}
		if e != (greylist.Expired{}) {
			log.Info("greylist expired", "db", g.Name, "abandoned", e.Abandoned, "lapsed", e.Lapsed, "unreadable", e.Unreadable)
		}
	})
}

// storeCheckWait bounds serve's one question at start to a network store.
const storeCheckWait = 10 * time.Second

// notify tells systemd (Type=notify) how serve is doing; without
// NOTIFY_SOCKET it does nothing.
func notify(state string) { _, _ = daemon.SdNotify(false, state) }

// watchdog pings systemd's watchdog at half its interval while serve runs
// (WatchdogSec= in the unit sets WATCHDOG_USEC).
func watchdog(ctx context.Context) {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		return
	}
	tick(ctx, every/2, func() { notify("WATCHDOG=1") })
}

// tick calls fn every d until ctx is done.
func tick(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

func listen(addrs []string) ([]net.Listener, error) {
	if len(addrs) == 0 {
		ls, err := serve.SystemdListeners()
		if err != nil {
			return nil, fail.Usage("start mxfront serve from a .socket unit with Accept=no", "systemd sockets: %v", err)
		}
		var out []net.Listener
		for _, l := range ls {
			out = append(out, l)
		}
		if len(out) == 0 {
			return nil, fail.Usage("give --listen 127.0.0.1:2525 (repeatable), or start mxfront serve from a systemd .socket unit (Accept=no)",
				"nothing to listen on")
		}
		return out, nil
	}
	var out []net.Listener
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, &run.ExitError{Code: run.ExitTemp, Err: fmt.Errorf("--listen %s: %v", a, err)}
		}
		out = append(out, l)
	}
	return out, nil
}

// durationFlag is a --flag D value with a default.
func durationFlag(d time.Duration) *config.DurationValue { v := config.DurationValue(d); return &v }

// serveOptions sets the PROXY protocol peers and PROGRAM's user.
func serveOptions(c *cli.Context, s *serve.Server) error {
	for _, name := range []string{"max-conns", "max-conns-per-ip", "max-children"} {
		if c.Int(name) < 0 {
			return fail.Usage("limits are 0 (none) or above", "bad --%s %d", name, c.Int(name))
		}
	}
	from := c.StringSlice("proxy-from")
	switch {
	case c.Bool("proxy-protocol") && len(from) == 0:
		return fail.Usage("name the proxies, e.g. --proxy-from 127.0.0.1/32", "--proxy-protocol without --proxy-from")
	case !c.Bool("proxy-protocol") && len(from) > 0:
		return fail.Usage("add --proxy-protocol", "--proxy-from without --proxy-protocol")
	case len(from) > 0:
		s.ProxyFrom = &frontend.NetList{}
		for _, n := range from {
			if err := s.ProxyFrom.Add(n, "", "--proxy-from"); err != nil {
				return fail.Usage("NET is an IP address or a CIDR network, e.g. 127.0.0.1/32", "--proxy-from: %v", err)
			}
		}
	}
	cred, err := credential(c.String("user"), c.String("group"))
	if err != nil {
		return err
	}
	s.Credential = cred
	return nil
}

// credential resolves --user and --group for PROGRAM. Starting PROGRAM
// as another user takes CAP_SETUID and CAP_SETGID: root has them, and so
// has an unprivileged mxfront given them as ambient capabilities (systemd's
// AmbientCapabilities=), which is the better way: then nothing that
// parses network input runs as root.
func credential(name, group string) (*syscall.Credential, error) {
	if name == "" && group == "" {
		return nil, nil
	}
	if os.Geteuid() != 0 && !canSetIDs() {
		return nil, fail.Usage("give mxfront CAP_SETUID and CAP_SETGID (AmbientCapabilities= in its unit), start it as root, or leave out --user and --group",
			"--user and --group need CAP_SETUID and CAP_SETGID")
	}
	cred := &syscall.Credential{Uid: 0, Gid: 0}
	if name != "" {
		u, err := user.Lookup(name)
		if err != nil {
			return nil, fail.Usage("name an existing user", "--user %s: %v", name, err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
		gids, _ := u.GroupIds()
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return nil, fail.Usage("name an existing group", "--group %s: %v", group, err)
		}
		gid, _ := strconv.ParseUint(g.Gid, 10, 32)
		cred.Gid = uint32(gid)
	}
	return cred, nil
}

// canSetIDs reports whether the process holds CAP_SETUID and CAP_SETGID
// in its effective set (/proc/self/status CapEff).
func canSetIDs() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			const setgid, setuid = 1 << 6, 1 << 7
			return err == nil && caps&setgid != 0 && caps&setuid != 0
		}
	}
	return false
}

// status tells systemd the live counters every few seconds, and the DNS
// lists' health at once when it changes.
func status(ctx context.Context, s *serve.Server, lists *serve.ListHealth, changed <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
		notify("STATUS=" + statusLine(s.Stats()) + listsStatus(lists))
	}
}

func statusLine(st serve.Stats) string {
	return fmt.Sprintf("%d connections, %d refusing, %d children; %d passed, %d refused, %d rejected",
		st.Conns, st.Refusing, st.Children, st.Passed, st.Refused, st.Rejected)
}

// reloadOnHUP re-reads every list file on SIGHUP. Connections in progress
// keep the lists they started with; a file that cannot be read keeps the
// old lists (and says why in the log).
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, c *cli.Context, cfg *config.Config, s *serve.Server, ms *metricsServer) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading the list files", monotonicUsec()))
		p, d, err := config.ReloadLists(cliOptions{c}, cfg)
		ms.reloaded(err)
		if err != nil {
			cfg.Log.Error("reload failed: keeping the old lists", "error", err.Error())
		} else {
			s.SetRules(p, d)
			reloadRelay(cliOptions{c}, d, s, cfg.Log)
			cfg.Log.Info("reloaded", "allow", p.Allow.Len(), "deny", p.Deny.Len())
		}
		notify("READY=1\nSTATUS=" + statusLine(s.Stats()))
	}
}

func monotonicUsec() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}
