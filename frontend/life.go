package frontend

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/mxfront/mxfront/internal/logline"
)

// Conn is a client's connection as a connection's life needs it: what
// chain mode (the fds it was started with) and serve mode (a socket it
// accepted) do differently with it.
type Conn interface {
	// Greet writes first, the first line of a multi-line greeting, and
	// watches the connection for d without reading from it (greet.go).
	Greet(first Reply, d time.Duration) (Talk, error)
	// Dialogue returns the connection the refusal dialogue reads and
	// writes, with deadlines that work.
	Dialogue() (DialogueConn, error)
	// DialogueDone is called when the dialogue is over; stopped reports
	// that a shutdown cut it short (the client then hears ShuttingDown).
	DialogueDone() (stopped bool)
	// Say writes one last reply, waiting a bounded time: the client may
	// be gone, and nothing is done about it.
	Say(Reply)
	// Close closes mxfront's copy of the connection.
	Close()
}

// Handover gives a passed client to the real SMTP server: exec in place
// (chain mode), a child on the connection (serve mode), or a relay that
// stays in the session.
type Handover interface {
	// Hand returns nil once the client is the server's (exec in place
	// does not return then). It calls p.Announce once, when nothing can
	// fail any more. An error means the client was not handed over and
	// hears 421; a *TurnedAway error says why it was turned away.
	Hand(ctx context.Context, p *Passed) error
}

// Passed is a client on its way to the real server.
type Passed struct {
	Conn    Conn
	Client  Client
	Verdict Verdict
	// Host is our name for TCPLOCALHOST and replies.
	Host     string
	announce func()
}

// Announce writes the connection's pass line and tells the observer; a
// Handover calls it once, just before the point of no return.
func (p *Passed) Announce() {
	if p.announce != nil {
		p.announce()
		p.announce = nil
	}
}

// TurnedAway is a Handover's refusal before any byte of PROGRAM's: for
// lack of room (serve's --max-children) or a late PROXY header. The client
// hears 421 4.7.0 with Text, or 421 4.3.2 when Overloaded (a ceiling of
// our own resources, not a configured limit), and the log says Why.
type TurnedAway struct {
	Text       string // "Error: too busy, try again later"
	Why        string // the limit: "max-children"
	Overloaded bool
}

func (b *TurnedAway) Error() string { return "turned away: " + b.Why }

// Outcome is how a connection's life ended.
type Outcome uint8

const (
	OutcomePassed  Outcome = iota // handed over
	OutcomeTrusted                // handed over, trusted
	OutcomeRefused                // the refusal dialogue ran (the verdict's By says which check)
	OutcomeHungUp                 // the client left during the greeting delay
	OutcomeBusy                   // a limit turned the passed client away
	OutcomeFailed                 // the hand-over failed, or a bug: the client heard 421
)

func (o Outcome) String() string {
	names := [...]string{"passed", "trusted", "refused", "hung-up", "busy", "failed"}
	if int(o) < len(names) {
		return names[o]
	}
	return "unknown"
}

// Ending is what an Observer hears when a connection's life ends.
type Ending struct {
	Outcome Outcome
	// Why is a turned-away client's reason, as its log line gives it
	// (max-children, out-of-resources, ...); "" otherwise.
	Why        string
	Client     Client
	Verdict    Verdict
	Transcript *Transcript // the refusal dialogue's; nil without one
	Duration   time.Duration
}

// Observer counts what happens to connections (metrics). Its methods are
// called on the connection's goroutine and must not block.
type Observer interface {
	// Decided: the checks' verdict, before the greeting delay.
	Decided(Client, Verdict)
	// Replied: a reply mxfront wrote (the dialogue's, and every 421).
	Replied(Reply)
	// Ended: once per connection the life ran.
	Ended(Ending)
}

// Life runs connections from their verdict to their end, the same way in
// every mode: decide; sit through the greeting delay (a client that hangs
// up or talks early); then refuse the client in the dialogue or hand it
// over. One Life serves many connections at once.
type Life struct {
	Policy   *Policy
	Dialogue DialogueConfig
	Log      *logline.Logger
	Observer Observer // nil: none
}

// Run is one connection's life. Fields are more key-value pairs for each
// of its log lines (serve's via=, the proxy it came through). It returns
// nil when the client was refused, left, or was handed over; an error
// when the client could not be handed over or a bug struck (the client
// heard 421 either way).
func (l *Life) Run(ctx context.Context, c Conn, client Client, h Handover, start time.Time, fields ...any) (err error) {
	host := orLocalhost(l.Dialogue.Hostname)
	// A bug in a check must not end the process (serve: every other
	// connection with it) nor print a Go panic into fd 2, which under
	// inetd is the client's connection: log it, tell the client 421 (it
	// retries; nothing was accepted).
	defer func() {
		if p := recover(); p != nil {
			l.Log.Error("internal error: connection dropped", "ip", client.Remote.Addr().String(),
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			l.say(c, InternalError(host))
			c.Close()
			l.ended(Ending{Outcome: OutcomeFailed, Client: client}, start)
			err = fmt.Errorf("internal error: %v", p)
		}
	}()
	v := l.Policy.Decide(ctx, client)
	if l.Observer != nil {
		l.Observer.Decided(client, v)
	}
	greeted := false
	if l.Dialogue.greetDelayFor(v) {
		greeted = true
		t0 := time.Now()
		talk, err := c.Greet(greeting(host), l.Dialogue.GreetDelay)
		switch talk {
		case HungUp:
			c.Close()
			logHungUp(l.Log, client.Remote, v, err, time.Since(start), fields...)
			l.Policy.forgetGreylisted(ctx, client.Remote.Addr(), v)
			l.ended(Ending{Outcome: OutcomeHungUp, Client: client, Verdict: v}, start)
			return nil
		case Early:
			// Heard only once the delay was over (a loaded machine wakes
			// late): the client may have spoken in time. Unsure: accept.
			if after := time.Since(t0); after < l.Dialogue.GreetDelay {
				l.Policy.forgetGreylisted(ctx, client.Remote.Addr(), v)
				early := earlyTalker(v, after, l.Dialogue.GreetDelay)
				if l.Policy.Observe || l.Dialogue.EarlyTalkerLogOnly {
					// Enforced, an early talker's refusal would replace
					// greylisting's, and no other refusal meets the delay.
					if v.Observed != nil && !v.Observed.Greylisted() {
						early.Observed = v.Observed
					}
					early = observedPass(early)
				}
				v = early
			}
		}
	}
	if v.By == ByResources {
		// No dialogue: one 421 line and close, as serve's limits do.
		l.say(c, closing(host, v.Reply.Status, v.Reply.Text))
		c.Close()
		LogRejected(l.Log, client.Remote, "out-of-resources", append([]any{"error", v.Reason()}, fields...)...)
		l.ended(Ending{Outcome: OutcomeBusy, Why: "out-of-resources", Client: client, Verdict: v}, start)
		return nil
	}
	if v.Action == Refuse {
		l.refuse(ctx, c, client, v, greeted, start, fields)
		return nil
	}
	return l.hand(ctx, c, client, v, h, start, fields)
}

// hand gives a passed client to h; after a greeting delay, PROGRAM's own
// 220 line ends the greeting.
func (l *Life) hand(ctx context.Context, c Conn, client Client, v Verdict, h Handover, start time.Time, fields []any) error {
	host := orLocalhost(l.Dialogue.Hostname)
	p := &Passed{Conn: c, Client: client, Verdict: v, Host: l.Dialogue.Hostname}
	p.announce = func() {
		LogPass(l.Log, client.Remote, v, time.Since(start), fields...)
		o := OutcomePassed
		if v.Action == Trusted {
			o = OutcomeTrusted
		}
		l.ended(Ending{Outcome: o, Client: client, Verdict: v}, start)
	}
	err := h.Hand(ctx, p)
	if err == nil {
		return nil
	}
	var away *TurnedAway
	if errors.As(err, &away) {
		r := TooBusy(host, away.Text)
		if away.Overloaded {
			r = Overloaded(host)
		}
		l.say(c, r)
		c.Close()
		LogRejected(l.Log, client.Remote, away.Why, fields...)
		l.ended(Ending{Outcome: OutcomeBusy, Why: away.Why, Client: client, Verdict: v}, start)
		return nil
	}
	// PROGRAM could not run: the client learns it is temporary.
	l.Log.Error("exec failed", append([]any{"ip", client.Remote.Addr().String(), "error", err.Error()}, fields...)...)
	l.say(c, Unavailable(host))
	c.Close()
	if p.announce != nil {
		l.ended(Ending{Outcome: OutcomeFailed, Client: client, Verdict: v}, start)
	}
	return err
}

// refuse speaks the refusal dialogue and writes the connection's line. A
// bogus HELO under --helo-check refuse made the refusal permanent, and a
// greylisted client that gave one never earns a pass.
func (l *Life) refuse(ctx context.Context, c Conn, client Client, v Verdict, greeted bool, start time.Time, fields []any) {
	dc, err := c.Dialogue()
	if err != nil {
		l.Log.Error("refusal dialogue failed", "ip", client.Remote.Addr().String(), "error", err.Error())
		l.say(c, Unavailable(l.Dialogue.Hostname))
		c.Close()
		l.ended(Ending{Outcome: OutcomeFailed, Client: client, Verdict: v}, start)
		return
	}
	t := speak(dc, v, l.Dialogue, connInfo{local: client.Local, greeted: greeted, obs: l.Observer})
	if c.DialogueDone() && t.End != "quit" {
		l.say(c, ShuttingDown(l.Dialogue.Hostname))
		t.End = "shutdown"
	}
	c.Close()
	if t.verdict.Action == Refuse {
		l.Policy.forgetGreylisted(ctx, client.Remote.Addr(), v)
		v = t.verdict
	}
	LogRefusal(l.Log, client.Remote, v, t, time.Since(start), fields...)
	l.ended(Ending{Outcome: OutcomeRefused, Client: client, Verdict: v, Transcript: &t}, start)
}

func (l *Life) say(c Conn, r Reply) {
	c.Say(r)
	if l.Observer != nil {
		l.Observer.Replied(r)
	}
}

func (l *Life) ended(e Ending, start time.Time) {
	if l.Observer != nil {
		e.Duration = time.Since(start)
		l.Observer.Ended(e)
	}
}

// LogPass writes the one line of a connection that was handed over; extra
// are more key-value pairs (serve's via=, the proxy a client came through).
// attrCap holds a connection line's pairs without growing: the lines are
// written once per connection, serve's hot path.
const attrCap = 40

func LogPass(log *logline.Logger, remote netip.AddrPort, v Verdict, took time.Duration, extra ...any) {
	if v.Observed != nil {
		logObserved(log, remote, v, took, extra...)
		return
	}
	attrs := append(make([]any, 0, attrCap), "ip", remote.Addr().String(), "port", int(remote.Port()), "verdict", v.Action.String())
	if r := v.Reason(); r != "" {
		attrs = append(attrs, "reason", r)
	}
	for _, e := range v.Exports() {
		attrs = append(attrs, e.Name, e.Value)
	}
	attrs = append(attrs, extra...)
	attrs = append(attrs, "duration", took.Round(time.Microsecond).String())
	log.Log(logline.LevelInfo, v.Action.String(), attrs)
}

// logObserved writes the one line of a client passed with a refusal that
// was not enforced (--observe, a check's log action): the line the
// refusal would have had (refused or greylisted, the reply, the network),
// with verdict=would-refuse, every reason, and what PROGRAM was given.
func logObserved(log *logline.Logger, remote netip.AddrPort, v Verdict, took time.Duration, extra ...any) {
	o := v.Observed
	msg := "refused"
	attrs := append(make([]any, 0, attrCap), "ip", remote.Addr().String(), "port", int(remote.Port()), "verdict", "would-refuse")
	if o.Greylisted() {
		msg = "greylisted"
		attrs = append(attrs, "network", o.Greylist.Network.String(), "retry_in", o.Greylist.RetryIn.String())
	}
	attrs = append(attrs, "reply", o.Reply.String(), "reason", v.Reason())
	for _, e := range v.Exports() {
		attrs = append(attrs, e.Name, e.Value)
	}
	attrs = append(attrs, extra...)
	attrs = append(attrs, "duration", took.Round(time.Millisecond).String())
	log.Log(logline.LevelInfo, msg, attrs)
}

// LogRefusal writes the one line of a refused connection: who, what they
// tried and why. A greylisted client's line says "greylisted", with its
// network and the time left before a retry can pass.
func LogRefusal(log *logline.Logger, remote netip.AddrPort, v Verdict, t Transcript, took time.Duration, extra ...any) {
	msg := "refused"
	attrs := append(make([]any, 0, attrCap), "ip", remote.Addr().String(), "port", int(remote.Port()), "verdict", "refuse")
	if v.Greylisted() {
		msg = "greylisted"
		attrs = append(attrs, "network", v.Greylist.Network.String(), "retry_in", v.Greylist.RetryIn.String())
	}
	attrs = append(attrs, "reply", v.Reply.String(), "reason", v.Reason(),
		"helo", t.HELO, "mail", t.MailFrom, "rcpt", joinRcpts(t), "end", t.End)
	if t.HELOBogus != "" {
		attrs = append(attrs, "helo_bogus", t.HELOBogus)
	}
	if v.DNS != nil && v.DNS.RDNS != nil {
		attrs = append(attrs, "RDNS", v.DNS.RDNS.String())
	}
	attrs = append(attrs, extra...)
	attrs = append(attrs, "duration", took.Round(time.Millisecond).String())
	log.Log(logline.LevelInfo, msg, attrs)
}

// LogRejected writes the line of a client turned away before any check
// (serve's limits, a bad PROXY header) or after them (--max-children).
func LogRejected(log *logline.Logger, remote netip.AddrPort, why string, extra ...any) {
	attrs := append(append(make([]any, 0, attrCap), "ip", remote.Addr().String(), "port", int(remote.Port()), "verdict", "reject", "reason", why), extra...)
	log.Log(logline.LevelInfo, "rejected", attrs)
}

// logHungUp writes the one line of a client that hung up (or whose
// connection failed) during the greeting delay.
func logHungUp(log *logline.Logger, remote netip.AddrPort, v Verdict, err error, took time.Duration, extra ...any) {
	attrs := append(make([]any, 0, attrCap), "ip", remote.Addr().String(), "port", int(remote.Port()), "verdict", v.Action.String(),
		"end", "hung up in the greeting delay")
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	if v.DNS != nil && v.DNS.RDNS != nil {
		attrs = append(attrs, "RDNS", v.DNS.RDNS.String())
	}
	attrs = append(attrs, extra...)
	attrs = append(attrs, "duration", took.Round(time.Millisecond).String())
	log.Log(logline.LevelInfo, "hung up", attrs)
}

func joinRcpts(t Transcript) string {
	s := ""
	for i, r := range t.Rcpts {
		if i > 0 {
			s += ","
		}
		s += r
	}
	if extra := t.NRcpts - len(t.Rcpts); extra > 0 {
		s += fmt.Sprintf(",+%d more", extra)
	}
	return s
}
