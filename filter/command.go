package filter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// CommandEnv is the environment given to --exec commands beyond what
// mxfilter inherited: qmail-qfilter's names and chasquid's. The values come
// from the network: each address is made printable ASCII and bounded, so
// that a recipient holding a line end cannot pass for two in QMAILRCPTS.
func CommandEnv(env Envelope, remoteAddr, helo string) []string {
	sender := Sanitize(env.Sender, maxAddress)
	rcpts := make([]string, len(env.Recipients))
	for i, r := range env.Recipients {
		rcpts[i] = Sanitize(r, maxAddress)
	}
	user, host := sender, ""
	if i := strings.LastIndexByte(sender, '@'); i >= 0 {
		user, host = sender[:i], sender[i+1:]
	}
	out := []string{
		"QMAILUSER=" + user,
		"QMAILHOST=" + host,
		"QMAILRCPTS=" + strings.Join(rcpts, "\n"),
		fmt.Sprintf("NUMRCPTS=%d", len(rcpts)),
		"MAIL_FROM=" + sender,
		"RCPT_TO=" + strings.Join(rcpts, " "),
	}
	if remoteAddr != "" {
		out = append(out, "REMOTE_ADDR="+Sanitize(remoteAddr, 64))
	}
	if helo != "" {
		out = append(out, "EHLO_DOMAIN="+Sanitize(helo, 255))
	}
	return out
}

// maxAddress bounds an address handed on (RFC 5321's path is 256 octets).
const maxAddress = 256

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
