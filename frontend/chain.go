package frontend

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime/debug"
	"time"

	mxexec "github.com/mxfront/mxfront/exec"
)

// Exit codes of chain mode, as rblsmtpd and qmail programs use them.
const (
	ExitOK    = 0   // a refusal dialogue ended normally
	ExitUsage = 100 // usage or configuration error
	ExitTemp  = 111 // temporary failure: PROGRAM could not be exec'd
)

// Chain is chain mode: decide on the one connection this process was given,
// then exec PROGRAM on it or refuse it here.
type Chain struct {
	Policy   *Policy
	Dialogue DialogueConfig
	Argv     []string // PROGRAM and its arguments, untouched
	Log      *Logger
	// LookupEnv reads mxfront's environment (os.LookupEnv); Environ is the
	// environment PROGRAM starts from (os.Environ).
	LookupEnv func(string) (string, bool)
	Environ   []string
}

// Run handles the connection. On a pass it does not return; otherwise it
// returns the exit code and the error behind it, if any.
func (c *Chain) Run(ctx context.Context) (code int, err error) {
	start := time.Now()
	getenv := func(k string) string { v, _ := c.LookupEnv(k); return v }
	conn, err := FindConnection(getenv)
	if err != nil {
		return ExitUsage, err
	}
	// A bug in a check must not print a Go panic into fd 2, which under
	// inetd is the client's connection: log it, tell the client 421 (it
	// retries; nothing was accepted) and exit 111.
	defer func() {
		if p := recover(); p != nil {
			c.Log.Error("internal error: connection dropped", "ip", conn.Remote.Addr().String(),
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			w := os.NewFile(uintptr(conn.WriteFD), "client")
			_, _ = fmt.Fprintf(w, "421 4.3.0 %s Internal error, try again later\r\n", orLocalhost(c.Dialogue.Hostname))
			code, err = ExitTemp, fmt.Errorf("internal error: %v", p)
		}
	}()
	client := Client{Remote: conn.Remote, Local: conn.Local}
	_, client.RelayClient = c.LookupEnv("RELAYCLIENT")
	client.RBLSMTPD, client.HasRBLSMTPD = c.LookupEnv("RBLSMTPD")
	v := c.Policy.Decide(ctx, client)
	ci := connInfo{local: conn.Local}
	if c.Dialogue.greetDelayFor(v) {
		ci.greeted = true
		var hungUp bool
		if v, hungUp = c.greet(ctx, conn, v, start); hungUp {
			return ExitOK, nil
		}
	}
	if v.Action != Refuse {
		// After a greeting delay, PROGRAM's own 220 line ends the greeting.
		return c.handover(conn, v, start)
	}
	return c.refuse(ctx, conn, v, ci, start)
}

// The steps of Run are methods of their own so that Run's stack frame
// stays small: a fresh goroutine's stack starts at 2 KiB, and each time it
// grows it is copied (a fresh process pays page faults for that).

// greet writes the first line of a multi-line greeting and watches the
// socket for the greeting delay: an early talker is refused; hungUp
// reports a client that went away (logged here).
func (c *Chain) greet(ctx context.Context, conn Connection, v Verdict, start time.Time) (_ Verdict, hungUp bool) {
	t0 := time.Now()
	talk, err := GreetFD(conn.ReadFD, conn.WriteFD, c.Dialogue.Hostname, c.Dialogue.GreetDelay)
	switch talk {
	case HungUp:
		logHungUp(c.Log, conn.Remote, v, err, time.Since(start))
		c.Policy.forgetGreylisted(ctx, conn.Remote.Addr(), v)
		return v, true
	case Early:
		c.Policy.forgetGreylisted(ctx, conn.Remote.Addr(), v)
		v = earlyTalker(v, time.Since(t0), c.Dialogue.GreetDelay)
	}
	return v, false
}

// refuse speaks the refusal dialogue and logs the connection's line.
func (c *Chain) refuse(ctx context.Context, conn Connection, v Verdict, ci connInfo, start time.Time) (int, error) {
	dc, err := conn.DialogueConn()
	if err != nil {
		return ExitTemp, fmt.Errorf("client connection: %v", err)
	}
	t := speak(dc, v, c.Dialogue, ci)
	conn.restoreBlocking()
	v = c.afterDialogue(ctx, conn.Remote.Addr(), v, t)
	LogRefusal(c.Log, conn.Remote, v, t, time.Since(start))
	return ExitOK, nil
}

// afterDialogue returns the verdict the dialogue ended with: a bogus HELO
// under --helo-check refuse made it permanent, and a greylisted client that
// gave one never earns a pass.
func (c DialogueConfig) afterDialogue(ctx context.Context, p *Policy, ip netip.Addr, v Verdict, t Transcript) Verdict {
	if t.verdict.Action != Refuse {
		return v
	}
	p.forgetGreylisted(ctx, ip, v)
	return t.verdict
}

func (c *Chain) afterDialogue(ctx context.Context, ip netip.Addr, v Verdict, t Transcript) Verdict {
	return c.Dialogue.afterDialogue(ctx, c.Policy, ip, v, t)
}

func (c *Chain) handover(conn Connection, v Verdict, start time.Time) (int, error) {
	path, err := mxexec.LookPath(c.Argv[0])
	if err == nil {
		env := Environ(c.Environ, conn.Remote, conn.Local, c.Dialogue.Hostname, v)
		LogPass(c.Log, conn.Remote, v, time.Since(start))
		err = mxexec.Handover(conn.ReadFD, conn.WriteFD, path, c.Argv, env)
	}
	// Still here: PROGRAM could not run. The client learns it is temporary.
	err = fmt.Errorf("cannot run %s: %v", c.Argv[0], err)
	c.Log.Error("exec failed", "ip", conn.Remote.Addr().String(), "program", c.Argv[0], "error", err.Error())
	fd := conn.WriteFD
	if fd == conn.ReadFD || fd < 0 {
		fd = 1
	}
	w := os.NewFile(uintptr(fd), "client")
	_, _ = fmt.Fprintf(w, "421 4.3.0 %s Service temporarily unavailable\r\n", orLocalhost(c.Dialogue.Hostname))
	return ExitTemp, err
}

func orLocalhost(s string) string {
	if s == "" {
		return "localhost"
	}
	return s
}

// LogPass writes the one line of a connection that was handed over; extra
// are more key-value pairs (serve's via=, the proxy a client came through).
func LogPass(log *Logger, remote netip.AddrPort, v Verdict, took time.Duration, extra ...any) {
	attrs := []any{"ip", remote.Addr().String(), "port", int(remote.Port()), "verdict", v.Action.String()}
	if r := v.Reason(); r != "" {
		attrs = append(attrs, "reason", r)
	}
	for _, e := range v.Exports {
		attrs = append(attrs, e.Name, e.Value)
	}
	attrs = append(attrs, extra...)
	attrs = append(attrs, "duration", took.Round(time.Microsecond).String())
	logLine(log, v.Action.String(), attrs)
}

// LogRefusal writes the one line of a refused connection: who, what they
// tried and why. A greylisted client's line says "greylisted", with its
// network and the time left before a retry can pass.
func LogRefusal(log *Logger, remote netip.AddrPort, v Verdict, t Transcript, took time.Duration, extra ...any) {
	msg := "refused"
	attrs := []any{"ip", remote.Addr().String(), "port", int(remote.Port()), "verdict", "refuse"}
	if greylistedVerdict(v) {
		msg = "greylisted"
		attrs = append(attrs, "network", exportValue(v, exportNetwork), "retry_in", exportValue(v, exportRetryIn))
	}
	attrs = append(attrs, "reply", v.Reply(), "reason", v.Reason(),
		"helo", t.HELO, "mail", t.MailFrom, "rcpt", joinRcpts(t), "end", t.End)
	if t.HELOBogus != "" {
		attrs = append(attrs, "helo_bogus", t.HELOBogus)
	}
	attrs = append(attrs, extra...)
	attrs = append(attrs, "duration", took.Round(time.Millisecond).String())
	logLine(log, msg, attrs)
}

// logHungUp writes the one line of a client that hung up (or whose
// connection failed) during the greeting delay.
func logHungUp(log *Logger, remote netip.AddrPort, v Verdict, err error, took time.Duration, extra ...any) {
	attrs := []any{"ip", remote.Addr().String(), "port", int(remote.Port()), "verdict", v.Action.String(),
		"end", "hung up in the greeting delay"}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	attrs = append(attrs, extra...)
	attrs = append(attrs, "duration", took.Round(time.Millisecond).String())
	logLine(log, "hung up", attrs)
}

// logLine writes one connection's line at level Info.
func logLine(l *Logger, msg string, attrs []any) {
	l.Log(LevelInfo, msg, attrs)
}

func joinRcpts(t Transcript) string {
	s := ""
	for i, r := range t.Rcpts {
		if i > 0 {
			s += ","
		}
		s += r
	}
	if extra := t.NRcpts - len(t.Rcpts); extra > 0 {
		s += fmt.Sprintf(",+%d more", extra)
	}
	return s
}
