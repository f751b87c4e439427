package frontend

import (
	"context"
	"fmt"
	"time"

	mxexec "github.com/mxfront/mxfront/exec"
)

// Chain mode: the connection this process was started with (fd 0, systemd's
// fd 3, or pipes) is the Conn; the hand-over execs PROGRAM in place on it.

// Conn returns the connection as a connection's life uses it.
func (c Connection) Conn() Conn { return &chainConn{c: c} }

type chainConn struct {
	c       Connection
	talking bool // the fds are non-blocking for the dialogue
	moved   bool // the hand-over moved the connection onto fds 0 and 1
}

func (cc *chainConn) Greet(first Reply, d time.Duration) (Talk, error) {
	return GreetFD(cc.c.ReadFD, cc.c.WriteFD, first, d)
}

func (cc *chainConn) Dialogue() (DialogueConn, error) {
	dc, err := cc.c.DialogueConn()
	if err != nil {
		return nil, fmt.Errorf("client connection: %v", err)
	}
	cc.talking = true
	return dc, nil
}

func (cc *chainConn) DialogueDone() bool {
	cc.c.restoreBlocking()
	cc.talking = false
	return false
}

// Say writes r where the client reads: after a failed hand-over the
// connection may have been moved onto fd 1 already.
func (cc *chainConn) Say(r Reply) {
	fd := cc.c.WriteFD
	if cc.moved || fd < 0 {
		fd = 1
	}
	_ = writeAll(fd, r.AppendWire(nil, false))
}

// Close leaves the fds alone: the process exits after the dialogue.
func (cc *chainConn) Close() {}

// Exec is chain mode's hand-over: PROGRAM in place of this process, on
// the connection, with no process left in the middle.
type Exec struct {
	Argv    []string // PROGRAM and its arguments, untouched
	Environ []string // the environment PROGRAM starts from (os.Environ)
}

// Hand execs PROGRAM; it returns only if that failed.
func (e *Exec) Hand(_ context.Context, p *Passed) error {
	cc := p.Conn.(*chainConn)
	path, err := mxexec.LookPath(e.Argv[0])
	if err == nil {
		env := Environ(e.Environ, p.Client.Remote, p.Client.Local, p.Host, p.Verdict)
		p.Announce()
		cc.moved = true
		err = mxexec.Handover(cc.c.ReadFD, cc.c.WriteFD, path, e.Argv, env)
	}
	return fmt.Errorf("cannot run %s: %v", e.Argv[0], err)
}

// RunChain is chain mode's whole life: find the connection, read
// RELAYCLIENT and RBLSMTPD, and run the life with Exec. On a pass it does
// not return; a nil error means a refusal dialogue ended (or the client
// left).
func (l *Life) RunChain(ctx context.Context, argv []string, lookupEnv func(string) (string, bool), environ []string) error {
	start := time.Now()
	getenv := func(k string) string { v, _ := lookupEnv(k); return v }
	conn, err := FindConnection(getenv)
	if err != nil {
		return err
	}
	client := Client{Remote: conn.Remote, Local: conn.Local}
	_, client.RelayClient = lookupEnv("RELAYCLIENT")
	client.RBLSMTPD, client.HasRBLSMTPD = lookupEnv("RBLSMTPD")
	return l.Run(ctx, conn.Conn(), client, &Exec{Argv: argv, Environ: environ}, start)
}
