package main

import (
	"context"
	"strings"
	"time"

	"fmt"
	"github.com/coreos/go-systemd/v22/daemon"
	"net"
	"os"
	"os/signal"
	"syscall"

	mxexec "github.com/mxfront/mxfront/exec"
	"github.com/mxfront/mxfront/frontend"
	"github.com/urfave/cli/v2"
)

func serveApp() *cli.App {
	flags := append(policyFlags(),
		&cli.StringSliceFlag{Name: "listen", Usage: "accept connections on `ADDR` (127.0.0.1:2525, [::1]:25); repeatable; default: the sockets systemd passes"},
	)
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
	argv := c.Args().Slice()
	if len(argv) == 0 {
		return usageErr("name the SMTP server to start for each client, e.g. -- /usr/sbin/exim4 -bs", "no PROGRAM given")
	}
	path, err := mxexec.LookPath(argv[0])
	if err != nil {
		return usageErr("give PROGRAM's full path or put it in PATH", "PROGRAM %s: %v", argv[0], err)
	}
	cfg, err := loadConfig(cliOptions{c}, modeServe)
	if err != nil {
		return err
	}
	listeners, err := listen(c.StringSlice("listen"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for _, l := range listeners {
		cfg.log.Info("listening", "addr", l.Addr().String())
	}
	s := &frontend.Server{
		Policy: cfg.policy, Dialogue: cfg.dialogue, Argv: argv, Path: path,
		Environ: os.Environ(), Log: cfg.log, Stderr: os.Stderr, Listeners: listeners,
	}
	defer func() {
		for _, f := range cfg.closers {
			f()
		}
	}()
	var addrs []string
	for _, l := range listeners {
		addrs = append(addrs, l.Addr().String())
	}
	notify("READY=1\nSTATUS=accepting on " + strings.Join(addrs, " "))
	go func() {
		<-ctx.Done()
		notify("STOPPING=1\nSTATUS=stopping: waiting for refusal dialogues to end")
	}()
	go watchdog(ctx)
	if err := s.Serve(ctx); err != nil {
		return &exitError{code: frontend.ExitTemp, err: err}
	}
	cfg.log.Info("stopped")
	return nil
}

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
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			notify("WATCHDOG=1")
		}
	}
}

func listen(addrs []string) ([]net.Listener, error) {
	if len(addrs) == 0 {
		ls, err := frontend.SystemdListeners()
		if err != nil {
			return nil, usageErr("start mxfront serve from a .socket unit with Accept=no", "systemd sockets: %v", err)
		}
		var out []net.Listener
		for _, l := range ls {
			out = append(out, l)
		}
		if len(out) == 0 {
			return nil, usageErr("give --listen 127.0.0.1:2525 (repeatable), or start mxfront serve from a systemd .socket unit (Accept=no)",
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
			return nil, &exitError{code: frontend.ExitTemp, err: fmt.Errorf("--listen %s: %v", a, err)}
		}
		out = append(out, l)
	}
	return out, nil
}
