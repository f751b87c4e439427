// Command mxfilter judges one mail message before the final reply to DATA:
// as a qmail-queue replacement (QMAILQUEUE) or as a hook any MTA runs
// (exim's acl_smtp_data, chasquid's post-data hook). See mxfilter(8).
//
// This file is wiring only: flags, the environment, descriptors and exit
// codes. The judging is package filter.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mxfront/mxfront/filter"
	"github.com/urfave/cli/v2"
)

// Exit codes of mxfilter check (chasquid's convention, sysexits' 75).
const (
	exitAccept = 0
	exitReject = 20
	exitDefer  = 75
	exitUsage  = 100
)

const defaultNext = "/var/qmail/bin/qmail-queue"

// failure is an error with its exit code and an optional hint.
type failure struct {
	code int
	err  error
	hint string
}

func (f *failure) Error() string { return f.err.Error() }

func usage(format string, a ...any) error {
	return &failure{code: exitUsage, err: fmt.Errorf(format, a...), hint: "see mxfilter --help or mxfilter(8)"}
}

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	code := 0
	app := newApp(args, stdin, stdout, stderr, &code)
	err := app.Run(args)
	if err == nil {
		return code
	}
	var f *failure
	if !errors.As(err, &f) {
		f = &failure{code: exitUsage, err: err, hint: "see mxfilter --help or mxfilter(8)"}
	}
	fmt.Fprintf(stderr, "mxfilter: error: %v\n", f.err)
	if f.hint != "" {
		fmt.Fprintf(stderr, "mxfilter: hint: %s\n", f.hint)
	}
	return f.code
}

func commonFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "require-headers", Value: "From,Date", Usage: "header fields a message must have (Message-ID is not required of bounces)"},
		&cli.StringFlag{Name: "block-attachments", Value: strings.Join(filter.DefaultBlocked, ","), Usage: "file name extensions refused, every name of a part, also inside zips"},
		&cli.BoolFlag{Name: "strip-nul", Usage: "remove NUL bytes on hand-over instead of refusing the message"},
		&cli.Int64Flag{Name: "max-size", Usage: "refuse messages larger than `BYTES` (552); 0: no limit"},
		&cli.IntFlag{Name: "max-header-size", Value: 1 << 20, Usage: "largest header section in `BYTES`"},
		&cli.IntFlag{Name: "mime-max-depth", Value: 20, Usage: "deepest MIME nesting"},
		&cli.IntFlag{Name: "mime-max-parts", Value: 1000, Usage: "most MIME parts"},
		&cli.IntFlag{Name: "archive-depth", Value: 3, Usage: "archives opened inside archives (the attached one counts 1); a deeper one is refused by the attachments check"},
		&cli.StringSliceFlag{Name: "clamd", Usage: "scan with clamd at `ADDR` (HOST:PORT or a unix socket path); several (repeated or comma-separated) are tried in order"},
		&cli.Int64Flag{Name: "clamd-max-size", Value: 25 << 20, Usage: "messages larger than `BYTES` are not sent to clamd"},
		&cli.StringSliceFlag{Name: "spamd", Usage: "score with spamd at `ADDR` (HOST:PORT or a unix socket path); several are tried in order"},
		&cli.StringFlag{Name: "spamd-user", Usage: "the User spamd scores for"},
		&cli.Int64Flag{Name: "spamd-max-size", Value: 512000, Usage: "messages larger than `BYTES` are not sent to spamd"},
		&cli.Float64Flag{Name: "spam-threshold", Usage: "refuse from this score on; 0: spamd's required_score"},
		&cli.BoolFlag{Name: "spam-headers", Usage: "add X-Spam-Flag, X-Spam-Score and X-Spam-Status (spamd and rspamd)"},
		&cli.StringSliceFlag{Name: "rspamd", Usage: "ask rspamd at `URL` (http://HOST:PORT, HOST:PORT or a unix socket path); several are tried in order"},
		&cli.Int64Flag{Name: "rspamd-max-size", Value: 20 << 20, Usage: "messages larger than `BYTES` are not sent to rspamd"},
		&cli.StringFlag{Name: "scanner-fail", Value: "tempfail", Usage: "when clamd, spamd or rspamd cannot answer: tempfail (451) or accept"},
		&cli.DurationFlag{Name: "scanner-timeout", Value: 60 * time.Second, Usage: "time allowed to each scanner, all its addresses together"},
		&cli.StringSliceFlag{Name: "exec", Usage: "run `COMMAND` (/bin/sh -c) on the message; repeatable"},
		&cli.DurationFlag{Name: "exec-timeout", Value: 120 * time.Second, Usage: "time allowed to each --exec command"},
		&cli.BoolFlag{Name: "header-domains-exist", Usage: "the domains in From, Sender and Reply-To must have MX, A or AAAA"},
		&cli.StringFlag{Name: "dns-server", Usage: "`HOST:PORT` of the resolver for --header-domains-exist (default: the first nameserver in /etc/resolv.conf)"},
		&cli.DurationFlag{Name: "dns-timeout", Value: 5 * time.Second, Usage: "time allowed to each DNS query"},
		&cli.BoolFlag{Name: "check-relayclients", Usage: "judge messages from clients with RELAYCLIENT set too"},
		&cli.BoolFlag{Name: "observe", Usage: "run every check and scanner and log what would have been done, but accept every message"},
		&cli.StringSliceFlag{Name: "action", Usage: "`CHECK=MODE`: off, log, tempfail or reject for a check; repeatable"},
		&cli.StringFlag{Name: "log-file", Usage: "append the log line to `FILE` instead of stderr (exim's ${run} mixes stderr into the reply)"},
		&cli.StringFlag{Name: "tmpdir", EnvVars: []string{"TMPDIR"}, Value: os.TempDir(), Usage: "where the message is spooled (unlinked at once)"},
	}, localFlags()...)
}

func newApp(args []string, stdin io.Reader, stdout, stderr io.Writer, code *int) *cli.App {
	onUsage := func(_ *cli.Context, err error, _ bool) error { return usage("%v", err) }
	return &cli.App{
		Name:            "mxfilter",
		Usage:           "judge a mail message before the final reply to DATA",
		UsageText:       "mxfilter qmail-queue [flags] [-- NEXT [ARGS...]]\n   mxfilter check [flags] < message",
		HideHelpCommand: true,
		Reader:          stdin,
		Writer:          stdout,
		ErrWriter:       stderr,
		OnUsageError:    onUsage,
		ExitErrHandler:  func(*cli.Context, error) {},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usage("no subcommand: want qmail-queue or check")
			}
			return usage("unknown subcommand %q: want qmail-queue or check", c.Args().First())
		},
		Commands: []*cli.Command{
			{
				Name:         "qmail-queue",
				Usage:        "run as QMAILQUEUE: message on fd 0, envelope on fd 1; on acceptance run NEXT",
				ArgsUsage:    "[-- NEXT [ARGS...]]",
				OnUsageError: onUsage,
				Flags: append(commonFlags(),
					&cli.StringFlag{Name: "custom-error", Usage: "qmail-smtpd patch that shows the reply text: simscan (fd 4) or notqmail (fd 6)"},
				),
				Action: func(c *cli.Context) error {
					if err := nextAfterDashes(args, c.Args().Slice()); err != nil {
						return err
					}
					n, err := qmailQueue(c, stderr)
					*code = n
					return err
				},
			},
			{
				Name:         "check",
				Usage:        "judge the message on stdin; exit 0, 20 or 75; the last line of stdout is the reply",
				ArgsUsage:    " ",
				OnUsageError: onUsage,
				Flags: append(commonFlags(),
					&cli.StringFlag{Name: "from", Usage: "envelope sender (default $MAIL_FROM)"},
					&cli.StringSliceFlag{Name: "rcpt", Usage: "envelope recipients, comma or space separated (default $RCPT_TO)"},
					&cli.BoolFlag{Name: "headers", Usage: "print the header lines to add before the reply line"},
					&cli.StringFlag{Name: "exim-data", Usage: "read the body from exim's spool `FILE` ($spool_directory/input/$message_exim_id-D) instead of stdin"},
					&cli.StringFlag{Name: "exim-headers", Usage: "the header section, with --exim-data ($message_headers_raw)"},
				),
				Action: func(c *cli.Context) error {
					n, err := check(c, stdin, stdout, stderr)
					*code = n
					return err
				},
			},
		},
	}
}

// config turns the flags into a filter.Config.
func config(c *cli.Context) (*filter.Config, error) {
	cfg := filter.DefaultConfig()
	cfg.RequireHeaders = list(c.String("require-headers"))
	cfg.BlockAttachments = nil
	for _, e := range list(c.String("block-attachments")) {
		cfg.BlockAttachments = append(cfg.BlockAttachments, "."+strings.TrimPrefix(strings.ToLower(e), "."))
	}
	cfg.StripNUL = c.Bool("strip-nul")
	cfg.MaxSize = c.Int64("max-size")
	cfg.Limits = filter.Limits{MaxHeader: c.Int("max-header-size"), MaxDepth: c.Int("mime-max-depth"),
		MaxParts: c.Int("mime-max-parts"), ArchiveDepth: c.Int("archive-depth"), TempDir: c.String("tmpdir")}
	if cfg.Limits.ArchiveDepth < 1 {
		return nil, usage("--archive-depth %d: want 1 or more", cfg.Limits.ArchiveDepth)
	}
	cfg.Clamd = list(strings.Join(c.StringSlice("clamd"), ","))
	cfg.ClamdMaxSize = c.Int64("clamd-max-size")
	cfg.Spamd = list(strings.Join(c.StringSlice("spamd"), ","))
	cfg.Rspamd = list(strings.Join(c.StringSlice("rspamd"), ","))
	for _, a := range cfg.Rspamd {
		if strings.HasPrefix(a, "https://") {
			return nil, usage("--rspamd %q: rspamd's workers speak plain HTTP: use http://, HOST:PORT or a unix socket", a)
		}
	}
	cfg.RspamdMaxSize = c.Int64("rspamd-max-size")
	cfg.Observe = c.Bool("observe")
	cfg.SpamdUser = c.String("spamd-user")
	cfg.SpamdMaxSize = c.Int64("spamd-max-size")
	cfg.SpamThreshold = c.Float64("spam-threshold")
	cfg.SpamHeaders = c.Bool("spam-headers")
	switch c.String("scanner-fail") {
	case "tempfail":
	case "accept":
		cfg.ScannerFailAccept = true
	default:
		return nil, usage("--scanner-fail %q: want tempfail or accept", c.String("scanner-fail"))
	}
	cfg.ScannerTimeout = c.Duration("scanner-timeout")
	cfg.Exec = c.StringSlice("exec")
	cfg.ExecTimeout = c.Duration("exec-timeout")
	cfg.HeaderDomainsExist = c.Bool("header-domains-exist")
	cfg.DNSServer = c.String("dns-server")
	cfg.DNSTimeout = c.Duration("dns-timeout")
	cfg.CheckRelayClients = c.Bool("check-relayclients")
	la, err := localAddresses(c)
	if err != nil {
		return nil, err
	}
	cfg.LocalAddresses = la
	known := map[string]bool{}
	for _, n := range filter.Checks {
		known[n] = true
	}
	for _, a := range c.StringSlice("action") {
		name, mode, ok := strings.Cut(a, "=")
		if !ok || !known[name] {
			return nil, usage("--action %q: want CHECK=MODE with CHECK one of %s", a, strings.Join(filter.Checks, ", "))
		}
		m, err := filter.ParseMode(mode)
		if err != nil {
			return nil, usage("--action %q: %v", a, err)
		}
		cfg.Modes[name] = m
	}
	if c.NArg() > 0 && c.Command.Name == "check" {
		return nil, usage("check takes no arguments (the message is on stdin)")
	}
	return &cfg, nil
}

// nextAfterDashes refuses a NEXT not preceded by "--": flag parsing stops
// at the first argument, so in "qmail-queue NEXT --clamd ADDR" the flag
// would silently become NEXT's and the message would go unscanned.
func nextAfterDashes(args, next []string) error {
	if len(next) == 0 {
		return nil
	}
	if i := len(args) - len(next) - 1; i < 0 || args[i] != "--" {
		return usage("qmail-queue: %q: NEXT and its arguments come after --, flags before it", next[0])
	}
	return nil
}

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// logger writes to --log-file when given and writable, else to stderr.
func logger(c *cli.Context, stderr io.Writer) (*slog.Logger, func()) {
	w, done := stderr, func() {}
	if p := c.String("log-file"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			fmt.Fprintf(stderr, "mxfilter: error: %v\nmxfilter: hint: the log line goes to stderr\n", err)
		} else {
			w, done = f, func() { f.Close() }
		}
	}
	return slog.New(slog.NewTextHandler(w, nil)), done
}

// qmailQueue is mxfilter qmail-queue: it returns the exit code.
func qmailQueue(c *cli.Context, stderr io.Writer) (int, error) {
	start := time.Now()
	cfg, err := config(c)
	if err != nil {
		return exitUsage, err
	}
	var custom *filter.CustomError
	if name := c.String("custom-error"); name != "" {
		ce, ok := filter.CustomErrors[name]
		if !ok {
			return exitUsage, usage("--custom-error %q: want simscan or notqmail", name)
		}
		custom = &ce
	}
	next := c.Args().Slice()
	if len(next) == 0 {
		next = []string{defaultNext}
	}
	msgIn, envIn := os.Stdin, os.NewFile(1, "envelope")
	sp, err := filter.NewSpool(c.String("tmpdir"), msgIn, 0)
	if err != nil {
		code := filter.QQReadError
		if !strings.Contains(err.Error(), "read message") {
			code = filter.QQWriteError
		}
		return code, &failure{code: code, err: err, hint: "check that --tmpdir (or TMPDIR) is writable and has room"}
	}
	defer sp.Close()
	env, raw, err := filter.ReadEnvelope(envIn)
	if err != nil {
		code := filter.QQEnvelope
		if !errors.Is(err, filter.ErrEnvelope) {
			code = filter.QQReadError
		}
		return code, &failure{code: code, err: err, hint: "mxfilter qmail-queue reads the envelope on descriptor 1, as qmail-queue(8) does"}
	}
	msg := &filter.Message{Spool: sp, Env: env, Getenv: os.Getenv, Environ: os.Environ()}
	rep := cfg.Judge(context.Background(), msg)
	elapsed := time.Since(start)
	log := func(extra ...any) {
		l, done := logger(c, stderr)
		filter.LogLine(l, "qmail-queue", msg, rep, elapsed, extra...)
		done()
	}
	var customFile *os.File
	if custom != nil && fdOpen(custom.FD) {
		customFile = os.NewFile(uintptr(custom.FD), "custom-error")
	}
	if rep.Verdict.Action != filter.Accept {
		log()
		if customFile != nil {
			if _, err := io.WriteString(customFile, filter.CustomErrorText(rep.Verdict)); err == nil {
				return filter.QQCustomError, nil
			}
		}
		return filter.QueueExit(rep.Verdict), nil
	}
	extra := map[int]*os.File{}
	if customFile != nil {
		extra[custom.FD] = customFile
	}
	// Logged after NEXT, with its exit code: an accepted message that NEXT
	// did not queue (a full disk, 53) must not look delivered in the log.
	code, err := filter.HandOver(context.Background(), next, sp, filter.Changes{AddHeaders: rep.AddHeaders, Subject: rep.Subject, StripNUL: cfg.StripNUL}, raw, extra)
	log("next", code)
	if err != nil {
		return code, &failure{code: code, err: err, hint: "check the NEXT program after --"}
	}
	return code, nil
}

func fdOpen(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil
}

// check is mxfilter check: it returns the exit code.
func check(c *cli.Context, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	start := time.Now()
	cfg, err := config(c)
	if err != nil {
		return exitUsage, err
	}
	// MAIL_FROM='<>' is a bounce, as --from '<>' is.
	env := filter.Envelope{Sender: strings.Trim(os.Getenv("MAIL_FROM"), "<>"), Recipients: filter.SplitRecipients(os.Getenv("RCPT_TO"))}
	if c.IsSet("from") {
		env.Sender = strings.Trim(c.String("from"), "<>")
	}
	if c.IsSet("rcpt") {
		env.Recipients = filter.SplitRecipients(c.StringSlice("rcpt")...)
	}
	in := stdin
	queueID := ""
	if data := c.String("exim-data"); data != "" {
		queueID = strings.TrimSuffix(filepath.Base(data), "-D")
		f, err := os.Open(data)
		if err != nil {
			return deferInternal(stdout, exitDefer, &failure{code: exitDefer, err: err, hint: "--exim-data wants $spool_directory/input/$message_exim_id-D"})
		}
		defer f.Close()
		in = io.MultiReader(strings.NewReader(eximHeaders(c.String("exim-headers"))), skipLine(f))
	}
	sp, err := filter.NewSpool(c.String("tmpdir"), in, 0)
	if err != nil {
		return deferInternal(stdout, exitDefer, &failure{code: exitDefer, err: err, hint: "check that --tmpdir (or TMPDIR) is writable and has room"})
	}
	defer sp.Close()
	msg := &filter.Message{Spool: sp, Env: env, Getenv: os.Getenv, Environ: os.Environ(), QueueID: queueID}
	rep := cfg.Judge(context.Background(), msg)
	l, done := logger(c, stderr)
	filter.LogLine(l, "check", msg, rep, time.Since(start))
	done()
	if c.Bool("headers") && rep.Verdict.Action == filter.Accept {
		for _, h := range rep.AddHeaders {
			fmt.Fprintln(stdout, h)
		}
	}
	fmt.Fprintln(stdout, rep.Verdict.Reply())
	switch rep.Verdict.Action {
	case filter.Reject:
		return exitReject, nil
	case filter.Tempfail:
		return exitDefer, nil
	}
	return exitAccept, nil
}

// deferInternal prints a 451 reply for an internal failure and returns it.
func deferInternal(stdout io.Writer, code int, f *failure) (int, error) {
	fmt.Fprintln(stdout, "451 4.3.0 local error in the content filter, try again later")
	return code, f
}

// eximHeaders ends exim's $message_headers_raw with the empty line that
// separates header and body.
func eximHeaders(h string) string {
	h = strings.TrimRight(h, "\n")
	if h == "" {
		return "\n"
	}
	return h + "\n\n"
}

// skipLine drops the first line of exim's -D file (its name, "ID-D").
func skipLine(r io.Reader) io.Reader {
	return &lineSkipper{r: r}
}

type lineSkipper struct {
	r    io.Reader
	done bool
}

func (l *lineSkipper) Read(p []byte) (int, error) {
	for !l.done {
		n, err := l.r.Read(p)
		for i := 0; i < n; i++ {
			if p[i] == '\n' {
				l.done = true
				return copy(p, p[i+1:n]), err
			}
		}
		if err != nil {
			return 0, err
		}
	}
	return l.r.Read(p)
}
