package filter

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// qmail-queue(8) exit codes mxfilter uses in qmail-queue mode. qmail-smtpd
// answers 554 to 11..40 and 451 to everything else.
const (
	QQRefused     = 31  // permanent refusal: 554
	QQDeferred    = 71  // temporary refusal: 451
	QQWriteError  = 53  // the spool could not be written (disk full)
	QQReadError   = 54  // the message or envelope could not be read
	QQBug         = 81  // an internal failure
	QQEnvelope    = 91  // the envelope does not follow qmail-queue(8)
	QQCustomError = 82  // the reply text is on the custom-error descriptor
	QQExecFailed  = 120 // NEXT could not be started (qmail-smtpd: "unable to exec qq")
)

// CustomError is a qmail-smtpd patch that lets a qmail-queue replacement
// give its own reply text: it writes "D<text>" (permanent) or "Z<text>"
// (temporary) on descriptor FD and exits 82.
type CustomError struct {
	Name string
	FD   int
}

// CustomErrors are the patches mxfilter speaks: simscan's
// qmail-queue-custom-error.patch (descriptor 4) and notqmail's, merged from
// the same author's v2 patch (descriptor 6, moved to keep clear of
// qmail-qfilter's use of 4).
var CustomErrors = map[string]CustomError{
	"simscan":  {Name: "simscan", FD: 4},
	"notqmail": {Name: "notqmail", FD: 6},
}

// CustomErrorText renders a refusal for the custom-error descriptor:
// qmail-smtpd prints 554 or 451 and then the text after the letter.
func CustomErrorText(v Verdict) string {
	letter := "D"
	if v.Temporary() {
		letter = "Z"
	}
	return letter + v.Enhanced + " " + replyText(v.Text)
}

// QueueExit is the qmail-queue exit code for a refusal.
func QueueExit(v Verdict) int {
	if v.Temporary() {
		return QQDeferred
	}
	return QQRefused
}

// Changes are what an accepted message gets on its way to NEXT.
type Changes struct {
	AddHeaders []string // header lines to put first
	Subject    string   // a new Subject field body ("" keeps the message's)
	StripNUL   bool     // remove NUL bytes
}

// HandOver runs next with the message on descriptor 0 (the added header
// lines first, then the spooled message with its Subject replaced when
// asked and NUL bytes removed when asked) and the envelope bytes,
// unchanged, on descriptor 1. extra maps descriptor numbers above 2 to
// files next also gets (a custom-error descriptor). It returns next's exit
// code.
func HandOver(ctx context.Context, next []string, sp *Spool, ch Changes, envelope []byte, extra map[int]*os.File) (int, error) {
	cmd := exec.CommandContext(ctx, next[0], next[1:]...)
	cmd.Stderr = os.Stderr
	if len(ch.AddHeaders) == 0 && !ch.StripNUL && ch.Subject == "" {
		f, err := sp.File()
		if err != nil {
			return QQBug, fmt.Errorf("spool: %w", err)
		}
		cmd.Stdin = f
	} else {
		eol := "\n"
		if sp.CRLF() {
			eol = "\r\n"
		}
		var hb bytes.Buffer
		for _, h := range ch.AddHeaders {
			hb.WriteString(strings.TrimRight(h, "\r\n") + eol)
		}
		var body io.Reader = sp.Reader()
		if ch.Subject != "" {
			body = replaceSubject(body, Sanitize(ch.Subject, 900), eol)
		}
		if ch.StripNUL {
			body = &nulStripper{r: bufio.NewReaderSize(body, 32<<10)}
		}
		cmd.Stdin = io.MultiReader(&hb, body)
	}
	er, ew, err := os.Pipe()
	if err != nil {
		return QQBug, fmt.Errorf("envelope pipe: %w", err)
	}
	cmd.Stdout = er
	for fd, f := range extra {
		for len(cmd.ExtraFiles) < fd-2 {
			cmd.ExtraFiles = append(cmd.ExtraFiles, nil)
		}
		cmd.ExtraFiles[fd-3] = f
	}
	if err := cmd.Start(); err != nil {
		er.Close()
		ew.Close()
		return QQExecFailed, fmt.Errorf("start %s: %w", next[0], err)
	}
	er.Close()
	go func() {
		// NEXT may exit without reading the envelope; the write then
		// fails and that is NEXT's business, reported by its exit code.
		ew.Write(envelope)
		ew.Close()
	}()
	err = cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if code < 0 {
		return QQBug, fmt.Errorf("%s: %v", next[0], err)
	}
	return code, nil
}

// maxSubjectScan bounds the header bytes held to replace the Subject.
const maxSubjectScan = 1 << 20

// replaceSubject returns the message with its first Subject field (and
// its continuation lines) replaced by "Subject: subject", or with one
// added at the end of the header section when it has none. The header
// section is read line by line; past maxSubjectScan bytes the message is
// passed on unchanged.
func replaceSubject(r io.Reader, subject, eol string) io.Reader {
	br := bufio.NewReaderSize(r, 32<<10)
	var head bytes.Buffer
	replaced, inSubject := false, false
	for head.Len() < maxSubjectScan {
		line, err := br.ReadString('\n')
		bare := strings.TrimRight(line, "\r\n")
		switch {
		case bare == "":
			if !replaced {
				head.WriteString("Subject: " + subject + eol)
			}
			head.WriteString(line)
			return io.MultiReader(&head, br)
		case inSubject && (bare[0] == ' ' || bare[0] == '\t'):
			// the replaced field's continuation: dropped
		case !replaced && len(bare) >= 8 && strings.EqualFold(bare[:8], "subject:"):
			head.WriteString("Subject: " + subject + eol)
			replaced, inSubject = true, true
		default:
			inSubject = false
			head.WriteString(line)
		}
		if err != nil {
			return io.MultiReader(&head, br)
		}
	}
	return io.MultiReader(&head, br)
}

type nulStripper struct{ r *bufio.Reader }

func (n *nulStripper) Read(p []byte) (int, error) {
	for {
		k, err := n.r.Read(p)
		j := 0
		for _, c := range p[:k] {
			if c != 0 {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// LogRcpts is how many recipients the log line names; the rest are
// counted (nrcpts is the total), so that 150,000 recipients do not make a
// 3 MB line.
const LogRcpts = 5

// LogLine writes the one line per message: who, what, each check's result and
// time, and the verdict; extra attributes (key, value, ...) come last.
func LogLine(l *slog.Logger, mode string, m *Message, rep *Report, elapsed time.Duration, extra ...any) {
	getenv := m.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	var checks []string
	for _, c := range rep.Checks {
		checks = append(checks, fmt.Sprintf("%s=%s/%dms", c.Name, c.Result, c.Duration.Milliseconds()))
	}
	var rcpts []string
	for i, r := range m.Env.Recipients {
		if i == LogRcpts {
			rcpts = append(rcpts, fmt.Sprintf("...+%d", len(m.Env.Recipients)-LogRcpts))
			break
		}
		rcpts = append(rcpts, Sanitize(r, 256))
	}
	var size int64
	if m.Spool != nil {
		size = m.Spool.Size()
	}
	attrs := []any{
		"ip", Sanitize(getenv("TCPREMOTEIP"), 64),
		"mode", mode,
		"from", Sanitize(m.Env.Sender, 256),
		"rcpts", strings.Join(rcpts, ","),
		"nrcpts", len(m.Env.Recipients),
		"size", size,
		"checks", strings.Join(checks, " "),
		"verdict", rep.Verdict.Action.String(),
		"reply", rep.Verdict.Reply(),
		"ms", elapsed.Milliseconds(),
	}
	if h := getenv("MXFRONT_HELO"); h != "" {
		attrs = append(attrs, "helo", Sanitize(h, 128))
	}
	for i := 0; i+1 < len(rep.Scanners); i += 2 {
		attrs = append(attrs, rep.Scanners[i], Sanitize(rep.Scanners[i+1], 200))
	}
	if rep.Observed != nil {
		attrs = append(attrs, "observe", rep.Observed.Action.String(), "would", rep.Observed.Reply())
	}
	attrs = append(attrs, extra...)
	level := slog.LevelInfo
	if rep.Verdict.Action != Accept || rep.Observed != nil && rep.Observed.Action != Accept || doubtful(rep.Checks) {
		level = slog.LevelWarn
	}
	l.Log(context.Background(), level, "message", attrs...)
}

// doubtful reports whether a check could not decide (a DNS failure, a
// scanner down under --scanner-fail accept, an internal error): the message
// may have passed, but the operator must hear of it.
func doubtful(checks []CheckResult) bool {
	for _, c := range checks {
		if strings.HasPrefix(c.Result, "unsure(") || strings.HasPrefix(c.Result, "error(") {
			return true
		}
	}
	return false
}
