package filter

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// scannerDown is a scanner that could not give an answer (connection
// refused, timeout, protocol error): the message is deferred unless the
// operator chose --scanner-fail accept.
type scannerDown struct{ err error }

func (e *scannerDown) Error() string { return e.err.Error() }

// dialScanner connects to HOST:PORT over TCP, or to a unix socket when
// addr holds a slash.
func dialScanner(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	if strings.Contains(addr, "/") {
		return d.DialContext(ctx, "unix", addr)
	}
	return d.DialContext(ctx, "tcp", addr)
}

// ClamdScan sends the message to clamd with INSTREAM and returns the name
// of the virus found ("" when clean).
func ClamdScan(ctx context.Context, addr string, msg io.Reader, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := dialScanner(ctx, addr)
	if err != nil {
		return "", &scannerDown{fmt.Errorf("clamd %s: %w", addr, err)}
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	w := bufio.NewWriterSize(c, 64<<10)
	if _, err := w.WriteString("zINSTREAM\x00"); err != nil {
		return "", &scannerDown{fmt.Errorf("clamd %s: %w", addr, err)}
	}
	buf := make([]byte, 32<<10)
	var hdr [4]byte
	for {
		n, rerr := msg.Read(buf)
		if n > 0 {
			binary.BigEndian.PutUint32(hdr[:], uint32(n))
			w.Write(hdr[:])
			if _, err := w.Write(buf[:n]); err != nil {
				// clamd closes early when the stream passes its
				// StreamMaxLength; its reply says so.
				break
			}
		}
		if rerr == io.EOF {
			binary.BigEndian.PutUint32(hdr[:], 0)
			w.Write(hdr[:])
			break
		}
		if rerr != nil {
			return "", fmt.Errorf("clamd: read spool: %w", rerr)
		}
	}
	w.Flush()
	reply, err := bufio.NewReader(c).ReadString(0)
	if err != nil && reply == "" {
		return "", &scannerDown{fmt.Errorf("clamd %s: no reply: %w", addr, err)}
	}
	return parseClamdReply(strings.TrimRight(reply, "\x00\n"))
}

// parseClamdReply reads "stream: OK", "stream: NAME FOUND" or
// "... ERROR".
func parseClamdReply(reply string) (string, error) {
	r := strings.TrimPrefix(reply, "stream: ")
	switch {
	case r == "OK":
		return "", nil
	case strings.HasSuffix(r, " FOUND"):
		return strings.TrimSuffix(r, " FOUND"), nil
	}
	return "", &scannerDown{fmt.Errorf("clamd: %s", Sanitize(reply, 200))}
}
