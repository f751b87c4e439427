package relay

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// Bounds on the client's side. A command line is at most 512 octets (RFC
// 5321 4.5.3.1.4), an AUTH line 12288 (RFC 4954 4).
const (
	maxCommand   = 512
	maxAuthLine  = 12288
	clientBuffer = 16 * 1024 // commands; a message passes through a DATA buffer (data.go)
	clientWrites = 4096
)

// session is one relayed session in progress.
type session struct {
	relay  *Relay
	cfg    *Config
	rules  *Rules
	p      *frontend.Passed
	prog   Program
	ctx    context.Context
	client frontend.DialogueConn
	in     clientReader // the client's octets: cr reads them
	cr     *bufio.Reader
	cw     *bufio.Writer
	srv    *server
	// what PROGRAM was started with: a second start (after STARTTLS)
	// reads them
	tls string

	deadline time.Time // of the commands since the last message
	commands int       // since the last message
	errors   int
	badRcpts int
	messages int
	stopped  atomic.Bool // the shutdown cut the session short
	end      string      // why it ended: quit, eof, timeout, ...
	passthru bool        // STARTTLS passed through: inspection is over
	srvGone  bool        // the server's session cannot take a QUIT

	helo      string // the last HELO/EHLO name, sanitised
	heloBogus string // why it is bogus; "" if it is not
	heloReply *frontend.Reply
	authed    bool // the server accepted AUTH: the client may relay
	netState  int  // the network's greylisting (greylist.go)
	tx        transaction
}

// errEnd ends the session after its last reply was written.
var errEnd = errors.New("session over")

// Session relays the session of the passed client p on client until it
// ends: PROGRAM is started by prog when first needed. It returns an
// error only when PROGRAM could not be started (the caller answers 421);
// every other end has been answered already.
func (r *Relay) Session(ctx context.Context, client frontend.DialogueConn, p *frontend.Passed, prog Program) error {
	s := &session{relay: r, cfg: &r.cfg, rules: r.rules.Load(), p: p, prog: prog, ctx: ctx, client: client,
		in: clientReader{conn: client}, cw: bufio.NewWriterSize(client, clientWrites)}
	s.cr = bufio.NewReaderSize(&s.in, clientBuffer)
	defer s.in.drop()
	s.deadline = time.Now().Add(s.cfg.Dialogue.SessionTimeout)
	stop := context.AfterFunc(ctx, func() {
		// A shutdown: the next read fails at once, and the session ends
		// with 421 (in DATA: the message is not taken; the client
		// retries).
		s.stopped.Store(true)
		_ = client.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	s.reply(frontend.Reply{Code: 220, Text: s.cfg.Dialogue.Hostname + " ESMTP"})
	err := s.run()
	s.flush()
	if s.tx.open() {
		s.logTransaction("")
	}
	if s.srv != nil {
		s.srv.close(!s.srvGone && s.end != "quit" && s.end != "server-gone" && !s.passthru, prog)
	}
	s.logEnd(err)
	if errors.Is(err, errStart) {
		return err
	}
	return nil
}

var errStart = errors.New("cannot start PROGRAM")

func (s *session) run() error {
	for {
		line, err := s.readLine(maxCommand)
		switch {
		case err == errTooLong:
			s.count(true)
			s.reply(frontend.Reply{Code: 500, Status: frontend.StatusSyntax, Text: "Error: line too long"})
		case err != nil:
			return s.readFailed(err)
		case bytesHasNUL(line):
			s.count(true)
			s.reply(frontend.Reply{Code: 500, Status: frontend.StatusSyntax, Text: "Error: NUL character in command"})
		case bareCR(line):
			// A server that takes a CR for a line's end would see two
			// commands where the relay judged one.
			s.count(true)
			s.reply(frontend.Reply{Code: 500, Status: frontend.StatusSyntax, Text: "Error: bare CR in command"})
		default:
			if s.count(false); s.end != "" {
				return nil
			}
			if err := s.command(line); err != nil {
				if err == errEnd {
					return nil
				}
				return err
			}
		}
		if s.end != "" {
			return nil
		}
		if s.errors >= s.cfg.Dialogue.MaxErrors {
			s.closeWith(frontend.StatusSecurity, "Error: too many errors", "errors")
			return nil
		}
	}
}

// count counts a command (and an error), and ends the session past the
// command limit: --max-commands, plus --max-rcpts, between two messages.
func (s *session) count(bad bool) {
	s.commands++
	if bad {
		s.errors++
	}
	if s.commands > s.cfg.Dialogue.MaxCommands+s.cfg.Dialogue.MaxRecipients {
		s.closeWith(frontend.StatusSecurity, "Error: too many commands", "commands")
	}
}

// bareCR reports whether line holds a CR other than its line end's.
func bareCR(line []byte) bool {
	for i, c := range line {
		if c == '\r' && !(i == len(line)-2 && line[i+1] == '\n') {
			return true
		}
	}
	return false
}

func bytesHasNUL(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}

// readFailed ends the session on a failed read of a command.
func (s *session) readFailed(err error) error {
	switch {
	case s.stopped.Load():
		s.closeWith(frontend.StatusNotAccepting, "Service shutting down, try again later", "shutdown")
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.closeWith(frontend.Status{Class: 4, Subject: 4, Detail: 2}, "Error: timeout exceeded", "timeout")
	case errors.Is(err, io.EOF):
		s.end = "eof"
	default:
		s.end = "read-error"
	}
	return nil
}

// readLine reads one line from the client, flushing what was written
// before a read that would wait (so pipelined commands are answered in
// order and in one batch), within the command timeout and the session's
// deadline.
func (s *session) readLine(max int) ([]byte, error) {
	if s.cr.Buffered() == 0 && len(s.in.rest) == 0 {
		if err := s.flush(); err != nil {
			return nil, err
		}
	}
	dl := time.Now().Add(s.cfg.Dialogue.CommandTimeout)
	if s.deadline.Before(dl) {
		dl = s.deadline
	}
	if !s.stopped.Load() {
		_ = s.client.SetReadDeadline(dl)
	}
	return readBounded(s.cr, max)
}

// reply writes one of the relay's own replies (flushed before the next
// read waits).
func (s *session) reply(r frontend.Reply) {
	_, _ = s.cw.Write(r.AppendWire(nil, false))
}

// pass writes a reply of the server's as it came.
func (s *session) pass(rp reply) {
	for _, l := range rp.lines {
		_, _ = s.cw.Write(l)
	}
}

func (s *session) flush() error {
	if s.cw.Buffered() == 0 {
		return nil
	}
	_ = s.client.SetWriteDeadline(time.Now().Add(s.cfg.Dialogue.CommandTimeout))
	err := s.cw.Flush()
	if err != nil && s.end == "" {
		s.end = "write-error"
	}
	return err
}

// closeWith answers 421 and ends the session.
func (s *session) closeWith(st frontend.Status, text, why string) {
	s.reply(frontend.Reply{Code: 421, Status: st, Text: s.cfg.Dialogue.Hostname + " " + text})
	s.flush()
	s.end = why
}

// command handles one command line (its line end included).
func (s *session) command(line []byte) error {
	// Servers differ on white space before a verb and between it and its
	// argument: the relay judges as the most lenient would.
	text := strings.TrimLeft(strings.TrimRight(string(line), "\r\n"), " \t")
	verb, arg := text, ""
	if i := strings.IndexAny(text, " \t"); i >= 0 {
		verb, arg = text[:i], strings.TrimLeft(text[i:], " \t")
	}
	switch strings.ToUpper(verb) {
	case "EHLO", "HELO":
		return s.hello(strings.ToUpper(verb), strings.TrimSpace(arg), line)
	case "MAIL":
		return s.mail(arg, line)
	case "RCPT":
		return s.rcpt(arg, line)
	case "DATA":
		return s.data(line)
	case "BDAT":
		// CHUNKING is never offered: the message's octets would follow
		// the command, and only a relay that counts them could tell them
		// from commands.
		s.closeWith(frontend.StatusProtocol, "Error: BDAT was not offered", "bdat")
		return nil
	case "STARTTLS":
		return s.starttls(line)
	case "AUTH":
		return s.auth(line)
	case "RSET":
		if s.srv == nil {
			s.reply(frontend.Reply{Code: 250, Status: frontend.StatusOK, Text: "Ok"})
			return nil
		}
		if s.tx.open() {
			s.logTransaction("rset")
		}
		_, err := s.relayed(line)
		return err
	case "NOOP":
		if s.srv == nil {
			s.reply(frontend.Reply{Code: 250, Status: frontend.StatusOK, Text: "Ok"})
			return nil
		}
		_, err := s.relayed(line)
		return err
	case "QUIT":
		if s.srv == nil {
			s.reply(frontend.Reply{Code: 221, Status: frontend.StatusOK, Text: s.cfg.Dialogue.Hostname + " Bye"})
		} else if _, err := s.relayed(line); err != nil {
			return err
		}
		s.flush()
		s.end = "quit"
		return errEnd
	}
	if frontend.NonSMTP(text) {
		s.closeWith(frontend.StatusSecurity, "Error: this is an SMTP server", "non-smtp")
		return nil
	}
	_, err := s.relayed(line)
	return err
}

// relayed sends a command to the server (started if need be), passes its
// reply on, and returns it. A 5xx answer to anything but RCPT is a bad
// command.
func (s *session) relayed(line []byte) (reply, error) {
	rp, err := s.ask(line, s.cfg.ServerTimeout)
	if err != nil {
		return rp, err
	}
	s.pass(rp)
	if rp.code >= 500 && rp.code <= 504 {
		s.errors++
	}
	return rp, nil
}

// ask sends a line to the server and reads its reply. A server that is
// gone or broken ends the session with 421.
func (s *session) ask(line []byte, d time.Duration) (reply, error) {
	if err := s.ensureServer(); err != nil {
		return reply{}, err
	}
	rp, err := s.srv.ask(line, d)
	if err != nil {
		return rp, s.serverFailed(err)
	}
	return rp, nil
}

// serverFailed ends the session when the server died, closed, timed out
// or spoke no SMTP: the client hears 421 (nothing it sent since its last
// 250 to a message was taken).
func (s *session) serverFailed(err error) error {
	s.cfg.Log.Error("relay: server failed", "ip", s.ip(), "error", err.Error())
	s.closeWith(frontend.StatusSystem, "Service temporarily unavailable", "server-gone")
	return errEnd
}

// ensureServer starts PROGRAM if it is not running, and reads its
// greeting. A greeting other than 220 is the answer to the command that
// started it, and the session ends.
func (s *session) ensureServer() error {
	if s.srv != nil {
		return nil
	}
	env := frontend.Environ(s.prog.Environ, s.p.Client.Remote, s.p.Client.Local, s.p.Host, s.p.Verdict)
	env = append(append(env, s.prog.Extra...), "MXFRONT_INSPECTED=1")
	if s.helo != "" {
		env = append(env, "MXFRONT_HELO="+s.helo)
	}
	if s.tls != "" {
		env = append(env, "MXFRONT_TLS="+s.tls)
	}
	srv, err := startServer(s.prog, env)
	if err != nil {
		s.flush()
		s.end = "no-program"
		return errors.Join(errStart, err)
	}
	s.srv = srv
	g, err := srv.read(s.cfg.ServerTimeout)
	if err != nil {
		return s.serverFailed(err)
	}
	if g.code != 220 {
		s.pass(g)
		s.flush()
		s.end = "server-refused"
		return errEnd
	}
	return nil
}

func (s *session) ip() string { return s.p.Client.Remote.Addr().String() }

// sanitized is text from the network made safe for a log field.
func sanitized(s string) string { return sanitize.Text(s, sanitize.MaxField) }
