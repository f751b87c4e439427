package main

import (
	"fmt"
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
	if err := s.Serve(ctx); err != nil {
		return &exitError{code: frontend.ExitTemp, err: err}
	}
	cfg.log.Info("stopped")
	return nil
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
