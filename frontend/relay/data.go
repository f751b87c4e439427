package relay

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/mxfront/mxfront/frontend"
)

// data relays DATA: the command, the server's 354, the message as it
// comes (never parsed, never held whole: dot-stuffing, bare LFs and 8-bit
// octets reach the server as sent), then the server's reply to it.
func (s *session) data(line []byte) error {
	rp, err := s.ask(line, s.cfg.ServerTimeout)
	if err != nil {
		return err
	}
	s.pass(rp)
	if rp.code != 354 {
		if rp.code >= 500 && rp.code <= 504 {
			s.errors++
		}
		return nil
	}
	if err := s.flush(); err != nil {
		return errEnd
	}
	n, err := s.copyMessage()
	s.tx.size = n
	switch {
	case errors.Is(err, errBareLFDot):
		// The client ended its message with a dot line next to a bare
		// LF. Some servers take that for the end, some do not: the
		// commands after it could reach a server unchecked (SMTP
		// smuggling). The server's copy is cut short, so it takes
		// nothing; the client is told why, and the session ends.
		s.srvGone = true
		s.reply(frontend.Reply{Code: 554, Status: frontend.Status{Class: 5, Subject: 6, Detail: 0},
			Text: "Message refused: its end was marked with a bare LF; end lines with CRLF"})
		s.tx.notes = append(s.tx.notes, "message ended with a bare LF next to the dot")
		s.logTransaction("bare-lf-dot")
		s.tx = transaction{}
		s.closeWith(frontend.StatusProtocol, "closing", "bare-lf-dot")
		return errEnd
	case errors.Is(err, errServerWrite):
		s.srvGone = true
		s.logTransaction("server-gone")
		s.tx = transaction{}
		return s.serverFailed(err)
	case err != nil:
		// The client went quiet or away mid-message: nothing was taken.
		s.srvGone = true
		s.logTransaction("client-gone-in-data")
		s.tx = transaction{}
		return s.readFailed(err)
	}
	final, err := s.srv.read(s.cfg.FinalTimeout)
	if err != nil {
		s.logTransaction("server-gone")
		s.tx = transaction{}
		return s.serverFailed(err)
	}
	s.pass(final)
	s.logDelivered(final)
	s.tx = transaction{}
	if final.code/100 == 2 {
		s.messages++
		s.commands = 0
		s.deadline = time.Now().Add(s.cfg.Dialogue.SessionTimeout)
	}
	return nil
}

var (
	errBareLFDot   = errors.New("a dot line next to a bare LF")
	errServerWrite = errors.New("writing the message to the server")
)

// copyMessage copies the message from the client to the server until
// its end (CRLF . CRLF, forwarded too) through a DATA buffer, writing
// straight from it: what follows the end is left to the command reader
// (clientReader). It returns the octets copied.
func (s *session) copyMessage() (int64, error) {
	bp, rest := s.in.take()
	b := *bp
	// What the command reader holds goes first, then the rest: both are
	// what the client sent after DATA. (All the command reader holds came
	// from the rest, while there is one: the two fit in the buffer.)
	k := s.cr.Buffered()
	copy(b[k:], rest)
	p, _ := s.cr.Peek(k)
	copy(b, p)
	_, _ = s.cr.Discard(k)
	filled := k + len(rest)
	var sc dataScanner
	var total int64
	for {
		if filled > 0 {
			n, end, bare := sc.scan(b[:filled])
			if n > 0 {
				_ = s.srv.conn.SetWriteDeadline(time.Now().Add(s.cfg.DataTimeout))
				if _, err := s.srv.conn.Write(b[:n]); err != nil {
					s.in.giveBack(bp, nil)
					return total, errors.Join(errServerWrite, err)
				}
				total += int64(n)
			}
			switch {
			case bare:
				// The dot line is the client's end, not the server's; the
				// session ends.
				s.in.giveBack(bp, nil)
				return total, errBareLFDot
			case end:
				s.in.giveBack(bp, b[n:filled])
				return total, nil
			}
			// What is held back (a dot and up to one octet) is scanned
			// again with what comes after it.
			filled = copy(b, b[n:filled])
		}
		_ = s.client.SetReadDeadline(time.Now().Add(s.cfg.DataTimeout))
		if s.stopped.Load() {
			_ = s.client.SetReadDeadline(time.Unix(1, 0))
		}
		m, err := s.client.Read(b[filled:])
		filled += m
		if err != nil && m == 0 {
			s.in.giveBack(bp, nil)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return total, err
		}
	}
}

// dataBuffer is what a message passes through: a session holds one only
// while in DATA (or while the command reader has not yet read what
// followed the end), so that an idle session costs its command buffer
// alone.
const dataBuffer = 64 * 1024

var dataBuffers = sync.Pool{New: func() any { b := make([]byte, dataBuffer); return &b }}

// clientReader is what the command reader reads: the octets the client
// sent after a message's end (still in the DATA buffer), then the
// connection.
type clientReader struct {
	conn io.Reader
	rest []byte
	buf  *[]byte // rest's DATA buffer
}

func (c *clientReader) Read(p []byte) (int, error) {
	if len(c.rest) == 0 {
		return c.conn.Read(p)
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	if len(c.rest) == 0 {
		c.giveBack(c.buf, nil)
	}
	return n, nil
}

// take returns a DATA buffer and the rest, in it: the rest's own buffer,
// or one from the pool and no rest.
func (c *clientReader) take() (*[]byte, []byte) {
	bp, rest := c.buf, c.rest
	c.buf, c.rest = nil, nil
	if bp == nil {
		return dataBuffers.Get().(*[]byte), nil
	}
	return bp, rest
}

// giveBack keeps rest (in bp) for the command reader, or puts bp back in
// the pool when there is none.
func (c *clientReader) giveBack(bp *[]byte, rest []byte) {
	c.rest, c.buf = nil, nil
	if len(rest) == 0 {
		dataBuffers.Put(bp)
		return
	}
	c.rest, c.buf = rest, bp
}

// drop forgets the rest, and returns how many octets it held.
func (c *clientReader) drop() int {
	n := len(c.rest)
	if c.buf != nil {
		c.giveBack(c.buf, nil)
	}
	return n
}

// dataScanner finds the end of a message: a line of one dot after a line
// ended by CRLF, itself ended by CRLF. A dot line with a bare LF on
// either side is the end of some servers' reading and not of others':
// scan reports it apart. Only a dot after an LF can matter, so scan
// looks over the whole buffer with bytes.IndexByte for dots (or with
// bytes.Index for "\n." where dots inside lines are many), at the octets
// before each, and at the buffer's last two octets (what the next
// buffer's first ones follow); never at each octet.
type dataScanner struct {
	st int
}

// What the octets before the next one to scan were.
const (
	atStart     = iota // a line begins, after CRLF (or the message's start)
	atBareStart        // a line begins, after a bare LF
	inLine
	afterCR
)

var lfDot = []byte("\n.")

// scan looks at b, which follows what was scanned before, and returns how
// many octets may go on to the server now: all of b, or up to a dot at
// a line's start whose line is not yet whole (held back, and given again
// with more octets after it), or through the end. bare: b[n:] begins a
// dot line next to a bare LF.
func (sc *dataScanner) scan(b []byte) (n int, end, bare bool) {
	if len(b) == 0 {
		return 0, false, false
	}
	if (sc.st == atStart || sc.st == atBareStart) && b[0] == '.' {
		if n, end, bare, done := sc.dotLine(b, 0, sc.st == atBareStart); done {
			return n, end, bare
		}
	}
	// Dots first (base64 has none); where dots inside lines are many
	// (text), "\n." for the rest of b.
	misses := 0
	for p := 1; p < len(b); {
		var dot int
		if misses < 8+p>>8 {
			k := bytes.IndexByte(b[p:], '.')
			if k < 0 {
				break
			}
			dot = p + k
			p = dot + 1
			if b[dot-1] != '\n' {
				misses++
				continue
			}
		} else {
			k := bytes.Index(b[p-1:], lfDot)
			if k < 0 {
				break
			}
			dot = p + k
			p = dot + 1
		}
		crlf := dot >= 2 && b[dot-2] == '\r' || dot == 1 && sc.st == afterCR
		if n, end, bare, done := sc.dotLine(b, dot, !crlf); done {
			return n, end, bare
		}
	}
	switch last := b[len(b)-1]; {
	case last == '\r':
		sc.st = afterCR
	case last != '\n':
		sc.st = inLine
	case len(b) >= 2 && b[len(b)-2] == '\r' || len(b) == 1 && sc.st == afterCR:
		sc.st = atStart
	default:
		sc.st = atBareStart
	}
	return len(b), false, false
}

// dotLine judges the dot at b[dot], at a line's start (after a bare LF if
// bareBefore). done: scan returns n, end and bare; otherwise the line is
// not an end and scanning goes on after the dot.
func (sc *dataScanner) dotLine(b []byte, dot int, bareBefore bool) (n int, end, bare, done bool) {
	hold := func() (int, bool, bool, bool) {
		// Rescanned from the dot, after what came before it.
		sc.st = atStart
		if bareBefore {
			sc.st = atBareStart
		}
		return dot, false, false, true
	}
	if dot+1 >= len(b) {
		return hold()
	}
	switch b[dot+1] {
	case '\n':
		return dot, false, true, true
	case '\r':
		if dot+2 >= len(b) {
			return hold()
		}
		if b[dot+2] == '\n' {
			if bareBefore {
				return dot, false, true, true
			}
			return dot + 3, true, false, true
		}
	}
	return 0, false, false, false
}
