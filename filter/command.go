package filter

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// CommandEnv is the environment given to --exec commands beyond what
// mxfilter inherited: qmail-qfilter's names and chasquid's. The values come
// from the network: each address is made printable ASCII and bounded, so
// that a recipient holding a line end cannot pass for two in QMAILRCPTS.
// QMAILRCPTS and RCPT_TO hold as many whole recipients as fit in
// MaxRcptEnv bytes (Linux refuses to start a program given one variable
// over 128 KiB); NUMRCPTS is always the full count, and rcptFile, when
// given, names a file holding every recipient, one per line
// (MXFILTER_RCPTS).
func CommandEnv(env Envelope, remoteAddr, helo, rcptFile string) []string {
	sender := Sanitize(env.Sender, maxAddress)
	var lines, spaced strings.Builder
	for i, r := range env.Recipients {
		r = Sanitize(r, maxAddress)
		if lines.Len()+1+len(r) > MaxRcptEnv {
			break
		}
		if i > 0 {
			lines.WriteByte('\n')
			spaced.WriteByte(' ')
		}
		lines.WriteString(r)
		spaced.WriteString(r)
	}
	user, host := sender, ""
	if i := strings.LastIndexByte(sender, '@'); i >= 0 {
		user, host = sender[:i], sender[i+1:]
	}
	out := []string{
		"QMAILUSER=" + user,
		"QMAILHOST=" + host,
		"QMAILRCPTS=" + lines.String(),
		fmt.Sprintf("NUMRCPTS=%d", len(env.Recipients)),
		"MAIL_FROM=" + sender,
		"RCPT_TO=" + spaced.String(),
	}
	if rcptFile != "" {
		out = append(out, "MXFILTER_RCPTS="+rcptFile)
	}
	if remoteAddr != "" {
		out = append(out, "REMOTE_ADDR="+Sanitize(remoteAddr, 64))
	}
	if helo != "" {
		out = append(out, "EHLO_DOMAIN="+Sanitize(helo, 255))
	}
	return out
}

// MaxRcptEnv bounds QMAILRCPTS and RCPT_TO.
const MaxRcptEnv = 64 << 10

// maxAddress bounds an address handed on (RFC 5321's path is 256 octets).
const maxAddress = 256

// WriteRecipients writes every recipient, sanitised, one per line, to a new
// file in dir (mode 0600) and returns its name; the caller removes it.
func WriteRecipients(dir string, env Envelope) (string, error) {
	f, err := os.CreateTemp(dir, "mxfilter-rcpts-")
	if err != nil {
		return "", fmt.Errorf("recipients file: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, r := range env.Recipients {
		w.WriteString(Sanitize(r, maxAddress) + "\n")
	}
	if err := w.Flush(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("recipients file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("recipients file: %w", err)
	}
	return f.Name(), nil
}

// CommandResult is what an --exec command said.
type CommandResult struct {
	Exit    int      // its exit code (-1 when killed or not started)
	Reply   string   // its last line of output, sanitised
	Headers []string // on exit 0, output lines that are header fields
}

// RunCommand runs command with /bin/sh -c, the message on its standard
// input and env appended to environ.
func RunCommand(ctx context.Context, command string, environ []string, msg io.Reader, timeout time.Duration) (CommandResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = environ
	cmd.Stdin = msg
	var out bytes.Buffer
	cmd.Stdout = &limitedBuffer{b: &out, max: 64 << 10}
	cmd.Stderr = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	res := CommandResult{Exit: -1}
	if cmd.ProcessState != nil {
		res.Exit = cmd.ProcessState.ExitCode()
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(out.String(), "\r", ""), "\n"), "\n")
	res.Reply = Sanitize(strings.TrimSpace(lines[len(lines)-1]), 400)
	if res.Exit == 0 {
		for _, l := range lines {
			if i := strings.IndexByte(l, ':'); i > 0 && validFieldName(l[:i]) && badHeaderBytes([]byte(l)) == "" {
				res.Headers = append(res.Headers, l)
			}
		}
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return res, fmt.Errorf("exec %q: %w", command, err)
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("exec %q: killed after %v", command, timeout)
	}
	// A command that stops reading its input early is not an error.
	return res, nil
}

type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}
