package recipients

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Command is a RCPTCHECK-style program, as qmail's RCPTCHECK patches run
// it: SENDER, RECIPIENT and TCPREMOTEIP in its environment; exit 100
// means the recipient is invalid, 111 try later, anything else valid. It
// runs without a shell, with stdin empty; what it prints is kept only
// for the log (its first line, bounded).
type Command struct {
	Argv    []string
	Environ []string      // the base environment
	Timeout time.Duration // then it is killed, and the answer is Unsure
}

// DefaultCommandTimeout bounds a command that names no timeout.
const DefaultCommandTimeout = 10 * time.Second

// maxOutput bounds what is kept of a command's output.
const maxOutput = 512

type boundedBuffer struct{ bytes.Buffer }

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// Check runs the command for q.
func (c *Command) Check(ctx context.Context, q Query) Result {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = append(append([]string(nil), c.Environ...),
		"SENDER="+q.Sender, "RECIPIENT="+q.Recipient, "TCPREMOTEIP="+q.RemoteIP)
	var out boundedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	said := firstLine(out.String())
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return Result{Verdict: Unsure, Source: c.name(), Err: fmt.Errorf("%s: no answer after %v", c.name(), timeout)}
	case errors.As(err, &ee) && ee.ExitCode() == 100:
		return Result{Verdict: Invalid, Source: c.name(), Said: said}
	case errors.As(err, &ee) && ee.ExitCode() == 111:
		return Result{Verdict: Defer, Source: c.name(), Said: said}
	case errors.As(err, &ee):
		return Result{Verdict: Valid, Source: c.name(), Said: said}
	case err != nil:
		// It could not be run at all.
		return Result{Verdict: Unsure, Source: c.name(), Err: fmt.Errorf("%s: %v", c.name(), err)}
	}
	return Result{Verdict: Valid, Source: c.name(), Said: said}
}

func (c *Command) name() string { return c.Argv[0] }

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}
