package serve

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	mxexec "github.com/mxfront/mxfront/exec"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/frontend/proxy"
	"github.com/mxfront/mxfront/internal/sanitize"
)

// spawn is serve mode's hand-over: PROGRAM as a child on the connection
// (its own process group, as Credential when set), reaped when it exits.
type spawn struct {
	s      *Server
	socket string // the systemd socket's name, for MXFRONT_SOCKET
	start  time.Time
	via    []any
}

func (h *spawn) Hand(_ context.Context, p *frontend.Passed) error {
	s := h.s
	c := p.Conn.(*serveConn)
	if s.ProxyFrom != nil {
		// A PROXY header that came after the accept's look, from a peer
		// not allowed to send one, must not reach PROGRAM as its client's.
		if _, listed := s.ProxyFrom.Lookup(addrPort(c.RemoteAddr()).Addr()); !listed && proxy.LooksLike(peekNow(c.Conn)) {
			return &frontend.TurnedAway{Text: "Error: PROXY header from a peer not allowed to send one", Why: "proxy-not-allowed"}
		}
	}
	if max, hard := s.childLimit(); !s.tally.takeChild(max) {
		if hard {
			return &frontend.TurnedAway{Why: "thread-ceiling", Overloaded: true}
		}
		return &frontend.TurnedAway{Text: "Error: too busy, try again later", Why: "max-children"}
	}
	tc, ok := c.Conn.(interface{ File() (*os.File, error) })
	if !ok {
		s.tally.dropChild()
		return fmt.Errorf("pass: %T is not a socket", c.Conn)
	}
	f, err := tc.File()
	if err != nil {
		// Out of fds (EMFILE): the client hears it is temporary.
		s.tally.dropChild()
		return fmt.Errorf("pass: %v", err)
	}
	env := frontend.Environ(s.Environ, p.Client.Remote, p.Client.Local, p.Host, p.Verdict)
	if h.socket != "" {
		env = append(env, "MXFRONT_SOCKET="+sanitize.Text(h.socket, sanitize.MaxField))
	}
	child, err := mxexec.Spawn(f, s.Stderr, s.Path, s.Argv, env, s.Credential)
	f.Close() // the child's copy is the one that keeps the connection open
	if err != nil {
		s.tally.dropChild()
		return fmt.Errorf("cannot run %s: %v", s.Argv[0], err)
	}
	c.handed = true
	c.Close()
	p.Announce()
	// The session is PROGRAM's now: reap it without holding up a shutdown.
	go h.reap(child, p.Client.Remote)
	return nil
}

func (h *spawn) reap(child *mxexec.Child, remote netip.AddrPort) {
	s := h.s
	status, err := child.Wait()
	if s.Observer != nil && err == nil {
		s.Observer.ChildExited(status, time.Since(h.start))
	}
	s.tally.dropChild()
	s.tally.dropNet(remote.Addr())
	s.tally.dropConn()
	st := status.String()
	if err != nil {
		st = "unknown"
	}
	attrs := append([]any{"ip", remote.Addr().String(), "pid", child.Pid, "status", st}, h.via...)
	attrs = append(attrs, "duration", time.Since(h.start).Round(time.Millisecond).String())
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	s.Log.Info("session ended", attrs...)
}
