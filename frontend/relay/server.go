package relay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mxfront/mxfront/internal/sanitize"
)

// server is PROGRAM as the session sees it: our end of the socketpair
// (non-blocking, in Go's poller, with deadlines) and the child.
type server struct {
	conn  *os.File
	r     *bufio.Reader
	child Started
	start time.Time
}

// Bounds on what the server may say: a reply of more lines, or a line
// longer, means it is not speaking SMTP (RFC 5321 4.5.3.1.5 allows 512
// octets a reply line; EHLO lines of real servers stay far below 2048).
const (
	maxReplyLine  = 2048
	maxReplyLines = 100
	serverBuffer  = 4096
)

// startServer makes the socketpair and starts PROGRAM on its far end.
func startServer(prog Program, env []string) (*server, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %v", err)
	}
	theirs := os.NewFile(uintptr(fds[1]), "program")
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		theirs.Close()
		return nil, fmt.Errorf("socketpair: %v", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "server")
	child, err := prog.Start(theirs, env)
	theirs.Close()
	if err != nil {
		ours.Close()
		return nil, err
	}
	return &server{conn: ours, r: bufio.NewReaderSize(ours, serverBuffer), child: child, start: time.Now()}, nil
}

// reply is one reply of the server's: its code and its lines as they
// came (line ends included), so that it passes on unchanged.
type reply struct {
	code  int
	lines [][]byte
}

// text is the reply as one line for the log: "250 2.1.0 Ok" (the last
// line's text, sanitised).
func (r reply) text() string {
	if len(r.lines) == 0 {
		return ""
	}
	l := strings.TrimRight(string(r.lines[len(r.lines)-1]), "\r\n")
	return sanitize.Text(l, sanitize.MaxReason)
}

var errNotSMTP = errors.New("server reply is not SMTP")

// read reads one whole reply, waiting at most d for it.
func (s *server) read(d time.Duration) (reply, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(d))
	return s.readFrom()
}

// readFrom reads one whole reply from the buffered connection.
func (s *server) readFrom() (reply, error) {
	var rp reply
	for {
		line, err := readBounded(s.r, maxReplyLine)
		if err != nil {
			return rp, err
		}
		code, last, ok := parseReplyLine(line)
		switch {
		case !ok:
			return rp, fmt.Errorf("%w: %q", errNotSMTP, sanitize.Text(string(line), 80))
		case len(rp.lines) > 0 && code != rp.code:
			return rp, fmt.Errorf("%w: a reply line of code %d in a reply of %d", errNotSMTP, code, rp.code)
		case len(rp.lines) >= maxReplyLines:
			return rp, fmt.Errorf("%w: a reply of more than %d lines", errNotSMTP, maxReplyLines)
		}
		rp.code = code
		rp.lines = append(rp.lines, line)
		if last {
			return rp, nil
		}
	}
}

// parseReplyLine reads "250-text", "250 text" or "250": the code, and
// whether the line is the reply's last.
func parseReplyLine(line []byte) (code int, last, ok bool) {
	l := bytes.TrimRight(line, "\r\n")
	if len(l) < 3 {
		return 0, false, false
	}
	for _, c := range l[:3] {
		if c < '0' || c > '9' {
			return 0, false, false
		}
	}
	if l[0] < '2' || l[0] > '5' {
		return 0, false, false
	}
	code = int(l[0]-'0')*100 + int(l[1]-'0')*10 + int(l[2]-'0')
	switch {
	case len(l) == 3:
		return code, true, true
	case l[3] == ' ':
		return code, true, true
	case l[3] == '-':
		return code, false, true
	}
	return 0, false, false
}

var errTooLong = errors.New("line too long")

// readBounded reads one line (through its LF) of at most max octets; a
// longer one is errTooLong, after the rest of it was read and dropped.
// The line returned is a copy.
func readBounded(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	long := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !long {
			if len(line)+len(chunk) > max {
				long, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			return nil, err
		case long:
			return nil, errTooLong
		}
		return line, nil
	}
}

// write sends b to the server, waiting at most d.
func (s *server) write(b []byte, d time.Duration) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(d))
	_, err := s.conn.Write(b)
	return err
}

// ask sends one command line and reads the reply.
func (s *server) ask(line []byte, d time.Duration) (reply, error) {
	if err := s.write(line, d); err != nil {
		return reply{}, err
	}
	return s.read(d)
}

// close ends the server's session: QUIT if it may still listen (its
// reply is not waited for long), then the socket; and reaps PROGRAM.
func (s *server) close(quit bool, prog Program) {
	if quit {
		if err := s.write([]byte("QUIT\r\n"), time.Second); err == nil {
			_, _ = s.read(5 * time.Second)
		}
	}
	s.conn.Close()
	status, err := s.child.Wait()
	if err == nil && prog.Exited != nil {
		prog.Exited(status, time.Since(s.start))
	}
}
