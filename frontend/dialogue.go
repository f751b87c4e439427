package frontend

import (
	"bufio"
	"errors"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mxfront/mxfront/internal/sanitize"
)

// DialogueConn is the client's connection as the dialogue needs it.
// *os.File (for a pollable fd), net.Conn and Pipes satisfy it.
type DialogueConn interface {
	io.Reader
	io.Writer
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// Where the verdict is given.
const (
	AtRcpt     = "rcpt"
	AtGreeting = "greeting"
)

// DialogueConfig bounds the refusal dialogue.
type DialogueConfig struct {
	Hostname       string
	RefuseAt       string        // AtRcpt (default) or AtGreeting
	CommandTimeout time.Duration // wait for each command line
	SessionTimeout time.Duration // the whole dialogue
	MaxErrors      int           // bad commands before 421
	MaxCommands    int           // commands before 421
	MaxRecipients  int           // RCPTs answered with the verdict; more get 452
	// GreetDelay is --greet-delay: the time a client must stay silent after
	// the first line of a multi-line greeting (greet.go); 0: none.
	GreetDelay time.Duration
	// EarlyTalkerLogOnly: an early talker is logged and passed
	// (--early-talker-action log).
	EarlyTalkerLogOnly bool
	// HELO judges the client's HELO/EHLO name (helo.go); zero: not judged.
	HELO HELOCheck
}

// DefaultDialogue holds the defaults documented in mxfront(8).
var DefaultDialogue = DialogueConfig{
	RefuseAt:       AtRcpt,
	CommandTimeout: 60 * time.Second,
	SessionTimeout: 5 * time.Minute,
	MaxErrors:      10,
	MaxCommands:    100,
	MaxRecipients:  50,
}

// maxLine is RFC 5321's limit for a command line, CRLF included.
const maxLine = 512

// Transcript is what the client tried during the dialogue, for the log.
type Transcript struct {
	HELO     string
	MailFrom string
	Rcpts    []string // the first few, sanitised
	NRcpts   int
	Commands int
	Errors   int
	End      string // quit, eof, timeout, errors, commands, non-smtp, greeting, write-error
	// HELOBogus says why the first bogus HELO/EHLO name was bogus; "" if
	// none was (or names were not checked).
	HELOBogus string
	verdict   Verdict // set when the dialogue changed the verdict (a bogus HELO)
}

// connInfo is what the dialogue knows of its connection beyond the bytes.
type connInfo struct {
	local netip.AddrPort // our address, for the HELO check
	// greeted: the first line of a multi-line greeting ("220-NAME ESMTP")
	// was sent during the greeting delay; the dialogue ends that reply with
	// its last line and never refuses at the greeting.
	greeted bool
	obs     Observer // told of every reply; nil: none
}

// maxLoggedRcpts bounds Transcript.Rcpts; NRcpts counts them all.
const maxLoggedRcpts = 10

// dialogue is one refusal dialogue in progress.
type dialogue struct {
	cfg      DialogueConfig
	v        Verdict
	conn     DialogueConn
	r        *bufio.Reader
	w        *bufio.Writer
	buf      []byte // a reply being rendered
	deadline time.Time
	t        Transcript
	helo     bool
	mail     bool
	ci       connInfo
	// heloVerdict is the verdict a bogus HELO made (--helo-check refuse).
	heloVerdict Verdict
}

// speak speaks the refusal dialogue with the client on conn, known by ci,
// and returns what it tried. It never accepts a message: the verdict
// answers every RCPT (or the greeting), DATA is refused, and every bound
// ends in 421 and a return.
func speak(conn DialogueConn, v Verdict, cfg DialogueConfig, ci connInfo) Transcript {
	cfg = withDefaults(cfg)
	bufs := dialogueBufs.Get().(*dialogueBuf)
	bufs.r.Reset(conn)
	bufs.w.Reset(conn)
	d := &dialogue{cfg: cfg, v: v, conn: conn, ci: ci, r: bufs.r, w: bufs.w,
		deadline: time.Now().Add(cfg.SessionTimeout)}
	d.run()
	d.t.verdict = d.heloVerdict
	// What the client sent after its last command, and a reply that
	// could not be written, go with the connection.
	bufs.r.Reset(nil)
	bufs.w.Reset(nil)
	dialogueBufs.Put(bufs)
	return d.t
}

// dialogueBuf is a dialogue's reader and writer, kept between dialogues:
// serve speaks one per refused connection.
type dialogueBuf struct {
	r *bufio.Reader
	w *bufio.Writer
}

var dialogueBufs = sync.Pool{New: func() any {
	return &dialogueBuf{r: bufio.NewReaderSize(nil, 1024), w: bufio.NewWriterSize(nil, 4096)}
}}

func withDefaults(c DialogueConfig) DialogueConfig {
	def := DefaultDialogue
	if c.RefuseAt == "" {
		c.RefuseAt = def.RefuseAt
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = def.CommandTimeout
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = def.SessionTimeout
	}
	if c.MaxErrors <= 0 {
		c.MaxErrors = def.MaxErrors
	}
	if c.MaxCommands <= 0 {
		c.MaxCommands = def.MaxCommands
	}
	if c.MaxRecipients <= 0 {
		c.MaxRecipients = def.MaxRecipients
	}
	if c.Hostname == "" {
		c.Hostname = "localhost"
	}
	return c
}

func (d *dialogue) run() {
	atGreeting := d.cfg.RefuseAt == AtGreeting && !d.ci.greeted
	switch {
	case atGreeting && d.v.Temporary():
		// RFC 5321 3.1: a 421 greeting closes at once.
		d.send(closing(d.cfg.Hostname, d.v.Reply.Status, d.v.Reply.Text))
		d.t.End = "greeting"
		d.flush()
		return
	case atGreeting:
		// A 554 greeting: wait for QUIT, 503 to anything else (RFC 5321 3.1).
		d.send(Reply{554, d.v.Reply.Status, d.cfg.Hostname + " " + d.v.Reply.Text})
	default:
		d.send(greeting(d.cfg.Hostname))
	}
	for {
		line, err := d.readLine()
		if err != nil && err != errTooLong && err != errNUL {
			// Replies to what came before a half-close (or a last line
			// without its LF) still leave.
			d.flush()
			d.end(err)
			return
		}
		d.t.Commands++
		if d.t.Commands > d.cfg.MaxCommands {
			d.closeWith(StatusSecurity, "Error: too many commands", "commands")
			return
		}
		switch err {
		case errTooLong:
			d.send(Reply{500, StatusSyntax, "Error: line too long"})
			d.t.Errors++
		case errNUL:
			d.send(Reply{500, StatusSyntax, "Error: NUL character in command"})
			d.t.Errors++
		default:
			if !d.command(line, atGreeting) {
				return
			}
		}
		if d.t.Errors >= d.cfg.MaxErrors {
			d.closeWith(StatusSecurity, "Error: too many errors", "errors")
			return
		}
	}
}

var (
	errTooLong = errors.New("line too long")
	errNUL     = errors.New("NUL in command")
)

// readLine returns the next command line without its line end. An over-long
// line is read to its end and discarded (errTooLong, bounded by the
// deadlines); a line with a NUL byte gives errNUL. Output is flushed before
// a read would wait, so pipelined commands are answered in order and in
// batches.
func (d *dialogue) readLine() (string, error) {
	var long bool
	var buf []byte
	for {
		if d.r.Buffered() == 0 {
			if err := d.flush(); err != nil {
				return "", err
			}
		}
		dl := time.Now().Add(d.cfg.CommandTimeout)
		if d.deadline.Before(dl) {
			dl = d.deadline
		}
		_ = d.conn.SetReadDeadline(dl)
		chunk, err := d.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull || (err == nil && len(buf)+len(chunk) > maxLine) {
			long = true
			buf = buf[:0]
			if err == nil {
				break
			}
			continue
		}
		if err != nil {
			return "", err
		}
		if !long {
			buf = append(buf, chunk...)
		}
		break
	}
	if long {
		return "", errTooLong
	}
	line := strings.TrimRight(string(buf), "\r\n")
	if strings.IndexByte(line, 0) >= 0 {
		return line, errNUL
	}
	return line, nil
}

// end handles a read error: a bad line gets its answer and the dialogue
// goes on; timeout and EOF end it.
func (d *dialogue) end(err error) {
	switch {
	case d.t.End != "":
	case errors.Is(err, os.ErrDeadlineExceeded):
		d.closeWith(Status{4, 4, 2}, "Error: timeout exceeded", "timeout")
	case errors.Is(err, io.EOF):
		d.t.End = "eof"
	default:
		d.t.End = "read-error"
	}
}

// command answers one line; false ends the dialogue.
func (d *dialogue) command(line string, atGreeting bool) bool {
	verb, arg, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	if atGreeting && verb != "QUIT" && verb != "NOOP" {
		// After a 554 greeting nothing but QUIT is in sequence.
		d.send(Reply{503, StatusProtocol, "Error: " + d.v.Reply.Text})
		d.t.Errors++
		return true
	}
	switch verb {
	case "EHLO", "HELO":
		return d.hello(verb, strings.TrimSpace(arg))
	case "MAIL":
		d.mailFrom(arg)
	case "RCPT":
		d.rcptTo(arg)
	case "DATA", "BDAT":
		switch {
		case !d.mail:
			d.send(Reply{503, StatusProtocol, "Error: need MAIL command"})
		case d.t.NRcpts == 0:
			d.send(Reply{503, StatusProtocol, "Error: need RCPT command"})
		default:
			d.send(Reply{554, StatusProtocol, "Error: no valid recipients"})
		}
	case "RSET":
		d.mail = false
		d.send(Reply{250, StatusOK, "Ok"})
	case "NOOP":
		d.send(Reply{250, StatusOK, "Ok"})
	case "QUIT":
		d.send(Reply{221, StatusOK, "Bye"})
		d.t.End = "quit"
		d.flush()
		return false
	case "VRFY", "EXPN", "HELP", "ETRN", "TURN", "STARTTLS", "AUTH", "SEND", "SOML", "SAML":
		d.send(Reply{502, StatusProtocol, "Error: command not implemented"})
	default:
		if NonSMTP(line) {
			// An HTTP request or a proxy probe: no point in talking on.
			d.closeWith(StatusSecurity, "Error: this is an SMTP server", "non-smtp")
			return false
		}
		d.send(Reply{500, StatusSyntax, "Error: command not recognized"})
		d.t.Errors++
	}
	return true
}

func (d *dialogue) hello(verb, arg string) bool {
	if arg == "" || strings.ContainsAny(arg, " \t") && verb == "HELO" {
		d.send(Reply{501, StatusArgs, "Syntax: " + verb + " hostname"})
		d.t.Errors++
		return true
	}
	name, _, _ := strings.Cut(arg, " ")
	d.t.HELO = sanitize.Text(name, sanitize.MaxField)
	d.helo, d.mail = true, false
	if d.t.HELOBogus == "" {
		if why, public := d.cfg.HELO.Judge(name, d.cfg.Hostname, d.ci.local); why != "" {
			d.t.HELOBogus = why
			if d.cfg.HELO.Mode == HELORefuse {
				// Still 250 to the HELO, so that the log shows what the
				// client tries; every RCPT from now on gets 5xx.
				d.v = heloRefusal(d.v, d.t.HELO, why, public)
				d.heloVerdict = d.v
			}
		}
	}
	if verb == "HELO" {
		d.send(Reply{Code: 250, Text: d.cfg.Hostname})
		return true
	}
	d.send(Reply{Code: 250, Text: d.cfg.Hostname + "\nPIPELINING\nENHANCEDSTATUSCODES\n8BITMIME"})
	return true
}

func (d *dialogue) mailFrom(arg string) {
	path, ok := pathArg(arg, "FROM:")
	switch {
	case !d.helo:
		d.send(Reply{503, StatusProtocol, "Error: send HELO/EHLO first"})
	case d.mail:
		d.send(Reply{503, StatusProtocol, "Error: nested MAIL command"})
	case !ok:
		d.send(Reply{501, StatusArgs, "Syntax: MAIL FROM:<address>"})
		d.t.Errors++
	default:
		d.mail = true
		if d.t.MailFrom == "" {
			d.t.MailFrom = sanitize.Text(path, sanitize.MaxField)
		}
		d.send(Reply{250, Status{2, 1, 0}, "Ok"})
	}
}

func (d *dialogue) rcptTo(arg string) {
	path, ok := pathArg(arg, "TO:")
	switch {
	case !d.mail:
		d.send(Reply{503, StatusProtocol, "Error: need MAIL command"})
	case !ok || path == "":
		d.send(Reply{501, StatusArgs, "Syntax: RCPT TO:<address>"})
		d.t.Errors++
	case d.t.NRcpts >= d.cfg.MaxRecipients:
		d.send(Reply{452, Status{4, 5, 3}, "Error: too many recipients"})
		d.t.Errors++
	default:
		d.t.NRcpts++
		if len(d.t.Rcpts) < maxLoggedRcpts {
			d.t.Rcpts = append(d.t.Rcpts, sanitize.Text(path, sanitize.MaxField))
		}
		d.send(d.v.Reply)
	}
}

// pathArg parses "FROM:<path> [params]" (a space after the colon is
// tolerated, as most servers do) and returns the path without brackets.
func pathArg(arg, keyword string) (string, bool) {
	if len(arg) < len(keyword) || !strings.EqualFold(arg[:len(keyword)], keyword) {
		return "", false
	}
	rest := strings.TrimLeft(arg[len(keyword):], " ")
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", false
	}
	path := rest[1:end]
	if strings.ContainsAny(path, " <\t") || len(path) > sanitize.MaxField {
		return "", false
	}
	if after := rest[end+1:]; after != "" && after[0] != ' ' {
		return "", false
	}
	return path, true
}

// NonSMTP recognises lines no SMTP client sends, as Postfix's postscreen
// does (the refusal dialogue and the relay close on them): HTTP requests and headers, and a PROXY header (serve reads a listed
// proxy's before the dialogue: this one is from a peer not allowed to send
// one, or a second).
func NonSMTP(line string) bool {
	u := strings.ToUpper(line)
	for _, p := range []string{"GET ", "POST ", "HEAD ", "PUT ", "CONNECT ", "OPTIONS ", "USER-AGENT:", "HOST:", "PROXY "} {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}

// closeWith sends 421 and ends the dialogue.
func (d *dialogue) closeWith(st Status, text, why string) {
	d.send(closing(d.cfg.Hostname, st, text))
	d.flush()
	d.t.End = why
}

// send buffers one reply; readLine flushes before it waits.
func (d *dialogue) send(r Reply) {
	d.buf = r.AppendWire(d.buf[:0], false)
	d.w.Write(d.buf)
	if d.ci.obs != nil {
		d.ci.obs.Replied(r)
	}
}

func (d *dialogue) flush() error {
	if d.w.Buffered() == 0 {
		return nil
	}
	// Bounded by the session, but a last reply (421 at the session's end)
	// still gets a second to leave.
	now := time.Now()
	dl := now.Add(d.cfg.CommandTimeout)
	end := d.deadline
	if end.Before(now.Add(time.Second)) {
		end = now.Add(time.Second)
	}
	if end.Before(dl) {
		dl = end
	}
	_ = d.conn.SetWriteDeadline(dl)
	err := d.w.Flush()
	if err != nil && d.t.End == "" {
		d.t.End = "write-error"
	}
	return err
}
