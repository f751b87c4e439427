package relay

import (
	"io"
	"time"
)

// auth relays AUTH and its exchange of 334 challenges and the client's
// answers (lines that are not commands, up to 12288 octets, never
// logged). A 235 makes the client trusted: it may relay.
func (s *session) auth(line []byte) error {
	rp, err := s.relayed(line)
	for err == nil && rp.code == 334 {
		l, rerr := s.readLine(maxAuthLine)
		switch {
		case rerr == errTooLong:
			l = []byte("*\r\n") // RFC 4954 4: the client cancels
		case rerr != nil:
			return s.readFailed(rerr)
		}
		rp, err = s.relayed(l)
	}
	if err == nil && rp.code == 235 {
		s.authed = true
	}
	return err
}

// starttls relays STARTTLS when the relay has no certificate (with one,
// tls.go answers it): the
// server's 220 makes the session opaque (TLS between the client and the
// server), and the relay copies octets both ways until either side
// closes. Inspection ends there, and the log says so.
func (s *session) starttls(line []byte) error {
	if s.cfg.TLS != nil {
		return s.startTLS()
	}
	rp, err := s.relayed(line)
	if err != nil || rp.code != 220 {
		return err
	}
	if err := s.flush(); err != nil {
		return errEnd
	}
	s.passthru = true
	if s.tx.open() {
		s.logTransaction("starttls")
		s.tx = transaction{}
	}
	s.pipe()
	s.end = "tls-passthrough"
	return errEnd
}

// pipe copies both ways, each with the command timeout for a read, until
// either side closes or goes quiet.
func (s *session) pipe() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// What the client sent after STARTTLS (its ClientHello) is in
		// the read buffer: it goes first.
		w := deadlineWriter{w: s.srv.conn, set: s.srv.conn.SetWriteDeadline, d: s.cfg.Dialogue.CommandTimeout}
		copyTimed(w, s.cr, s.client.SetReadDeadline, s.cfg.Dialogue.CommandTimeout, &s.stopped)
		_ = s.srv.conn.Close()
	}()
	w := deadlineWriter{w: s.client, set: s.client.SetWriteDeadline, d: s.cfg.Dialogue.CommandTimeout}
	copyTimed(w, s.srv.conn, s.srv.conn.SetReadDeadline, s.cfg.Dialogue.CommandTimeout, nil)
	_ = s.client.SetReadDeadline(time.Unix(1, 0))
	<-done
}

// deadlineWriter writes with a deadline of d from each write.
type deadlineWriter struct {
	w   io.Writer
	set func(time.Time) error
	d   time.Duration
}

func (w deadlineWriter) Write(b []byte) (int, error) {
	_ = w.set(time.Now().Add(w.d))
	return w.w.Write(b)
}

// copyTimed copies r to w through a fixed buffer, each read within d.
func copyTimed(w io.Writer, r io.Reader, setRead func(time.Time) error, d time.Duration, stopped interface{ Load() bool }) {
	buf := make([]byte, 16*1024)
	for {
		if stopped != nil && stopped.Load() {
			return
		}
		_ = setRead(time.Now().Add(d))
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
