// Package relay is the inspecting relay, the third way of handing a passed
// client over (after exec in place and serve's spawn): PROGRAM runs on one
// end of a socketpair and the relay stays in the session, reading the
// client's commands and the server's replies. It answers itself where a
// check refuses (a bogus HELO, a sender domain that cannot receive mail,
// a recipient that does not exist, a relay attempt, too many recipients),
// so that a refused command never reaches the server; everything else,
// DATA included, passes through as it was sent.
//
// PROGRAM is started at the client's first command that needs it (HELO
// or EHLO, usually), so that its environment holds MXFRONT_HELO; the
// greeting the client hears is the relay's, and PROGRAM's own is read and
// dropped. The relay never buffers a message whole, and every session
// holds a fixed amount of memory whatever either side sends or fails to
// read. It knows nothing of flags, nor of how the connection came (chain
// mode's fds or serve's socket): it is given a frontend.DialogueConn.
package relay

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	mxexec "github.com/mxfront/mxfront/exec"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/mxfront/mxfront/internal/recipients"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// Check is what a relay check does: off, log (what it would refuse is
// logged, and passes), or refuse.
type Check uint8

const (
	Off Check = iota
	Log
	Refuse
)

func (c Check) String() string { return [...]string{"off", "log", "refuse"}[min(int(c), 2)] }

// ParseCheck reads a --*-check value.
func ParseCheck(s string) (Check, error) {
	switch s {
	case "off":
		return Off, nil
	case "log":
		return Log, nil
	case "refuse":
		return Refuse, nil
	}
	return Off, fmt.Errorf("bad check %q: want off, log or refuse", sanitize.Text(s, 32))
}

// MailDomains says whether a sender's domain can receive mail
// (*dnsbl.Resolver).
type MailDomains interface {
	MailDomain(ctx context.Context, domain string) dnsbl.MailDomain
}

// Config is a relay's configuration, fixed for its life.
type Config struct {
	// Dialogue gives the host name, the command and session timeouts,
	// the error and command limits, --max-rcpts (per transaction here)
	// and the HELO check (its mode: off, log or refuse).
	Dialogue frontend.DialogueConfig
	// Sender checks MAIL FROM: its syntax, and with Domains its domain.
	Sender  Check
	Domains MailDomains // nil: sender domains are not looked up
	// DNSFailTemp: a sender domain DNS cannot tell about gets 451 4.4.3
	// (--dns-fail tempfail); otherwise it passes.
	DNSFailTemp bool
	// Rcpt checks each RCPT against the Rules' recipients and local
	// domains.
	Rcpt Check
	// MaxBadRcpts ends the session with 421 at the Nth refused recipient
	// (0: never); BadRcptDelay is waited before each such refusal.
	MaxBadRcpts  int
	BadRcptDelay time.Duration
	// Observe (--observe): every check only logs.
	Observe bool
	// Greylist greylists each RCPT by its triplet; nil: not in the relay.
	Greylist *Greylist
	// TLS, when set (--tls-cert), makes the relay offer STARTTLS itself
	// and terminate TLS (tls.go); nil: the server's STARTTLS passes
	// through, and inspection ends there.
	TLS *tls.Config
	// ServerTimeout bounds the wait for each of the server's replies;
	// FinalTimeout the one to the end of a message (RFC 5321 4.5.3.2:
	// 10 minutes); DataTimeout each read of a message from the client.
	ServerTimeout, FinalTimeout, DataTimeout time.Duration
	Log                                      *logline.Logger
}

// Defaults for the zero fields of a Config.
const (
	DefaultServerTimeout = 5 * time.Minute
	DefaultFinalTimeout  = 10 * time.Minute
	DefaultDataTimeout   = 3 * time.Minute
)

// Rules are what SIGHUP reads anew: the recipient sources and the local
// domains. Nil fields: none.
type Rules struct {
	Recipients   *recipients.Set
	LocalDomains *recipients.Domains
	// HELO replaces the Config's HELO check (its patterns re-read); nil:
	// the Config's.
	HELO *frontend.HELOCheck
}

// Relay relays sessions; one Relay serves many at once.
type Relay struct {
	cfg   Config
	rules atomic.Pointer[Rules]
}

// New returns a relay with cfg and the first rules.
func New(cfg Config, rules *Rules) *Relay {
	if cfg.ServerTimeout <= 0 {
		cfg.ServerTimeout = DefaultServerTimeout
	}
	if cfg.FinalTimeout <= 0 {
		cfg.FinalTimeout = DefaultFinalTimeout
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = DefaultDataTimeout
	}
	d := frontend.DefaultDialogue
	if cfg.Dialogue.CommandTimeout <= 0 {
		cfg.Dialogue.CommandTimeout = d.CommandTimeout
	}
	if cfg.Dialogue.SessionTimeout <= 0 {
		cfg.Dialogue.SessionTimeout = d.SessionTimeout
	}
	if cfg.Dialogue.MaxErrors <= 0 {
		cfg.Dialogue.MaxErrors = d.MaxErrors
	}
	if cfg.Dialogue.MaxCommands <= 0 {
		cfg.Dialogue.MaxCommands = d.MaxCommands
	}
	if cfg.Dialogue.MaxRecipients <= 0 {
		cfg.Dialogue.MaxRecipients = d.MaxRecipients
	}
	if cfg.Dialogue.Hostname == "" {
		cfg.Dialogue.Hostname = "localhost"
	}
	r := &Relay{cfg: cfg}
	r.SetRules(rules)
	return r
}

// SetRules replaces the rules for the sessions that start from now on.
func (r *Relay) SetRules(rules *Rules) {
	if rules == nil {
		rules = &Rules{}
	}
	r.rules.Store(rules)
}

// Started is a PROGRAM the relay started (*exec.Child).
type Started interface {
	Wait() (mxexec.Status, error)
}

// Program is how a session starts PROGRAM: Start runs it with conn (the
// server's end of the socketpair) as its fds 0 and 1 and env as its
// environment. Exited, if set, hears how it ended.
type Program struct {
	Environ []string // the base of PROGRAM's environment
	Extra   []string // more variables, after mxfront's (MXFRONT_SOCKET=...)
	Start   func(conn *os.File, env []string) (Started, error)
	Exited  func(status mxexec.Status, took time.Duration)
}

// Chain is chain mode's hand-over with --inspect: PROGRAM as a child on a
// socketpair, this process relaying the client's fds until the session
// ends.
type Chain struct {
	Relay   *Relay
	Argv    []string // PROGRAM and its arguments
	Environ []string
}

// Hand relays the session; it returns when the session is over. An error
// means PROGRAM could not be run (the life answers 421).
func (h *Chain) Hand(ctx context.Context, p *frontend.Passed) error {
	path, err := mxexec.LookPath(h.Argv[0])
	if err != nil {
		return fmt.Errorf("cannot run %s: %v", h.Argv[0], err)
	}
	dc, err := p.Conn.Dialogue()
	if err != nil {
		return fmt.Errorf("client connection: %v", err)
	}
	p.Announce()
	prog := Program{Environ: h.Environ, Start: func(conn *os.File, env []string) (Started, error) {
		return mxexec.Spawn(conn, os.Stderr, path, h.Argv, env, nil)
	}}
	err = h.Relay.Session(ctx, dc, p, prog)
	p.Conn.DialogueDone()
	p.Conn.Close()
	return err
}

// RunChain is chain mode's whole life with --inspect, as
// frontend.Life.RunChain is without: find the connection, read
// RELAYCLIENT and RBLSMTPD, run the life with Chain as its hand-over.
func (r *Relay) RunChain(ctx context.Context, l *frontend.Life, argv []string, lookupEnv func(string) (string, bool), environ []string) error {
	start := time.Now()
	getenv := func(k string) string { v, _ := lookupEnv(k); return v }
	conn, err := frontend.FindConnection(getenv)
	if err != nil {
		return err
	}
	client := frontend.Client{Remote: conn.Remote, Local: conn.Local}
	_, client.RelayClient = lookupEnv("RELAYCLIENT")
	client.RBLSMTPD, client.HasRBLSMTPD = lookupEnv("RBLSMTPD")
	return l.Run(ctx, conn.Conn(), client, &Chain{Relay: r, Argv: argv, Environ: environ}, start)
}
