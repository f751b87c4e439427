package serve

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	mxexec "github.com/mxfront/mxfront/exec"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/frontend/proxy"
	"github.com/mxfront/mxfront/internal/sanitize"
	"golang.org/x/sys/unix"
)

// spawn is serve mode's hand-over: PROGRAM as a child on the connection
// (its own process group, as Credential when set), reaped when it exits.
type spawn struct {
	s      *Server
	socket string // the systemd socket's name, for MXFRONT_SOCKET
	start  time.Time
	via    []any
}

// admit turns a passed client away before PROGRAM runs, or takes its
// place among the children (the caller drops it when PROGRAM is done): a
// PROXY header that came after the accept's look, from a peer not allowed
// to send one, must not reach PROGRAM as its client's; then the child
// limits.
func (s *Server) admit(c *serveConn) error {
	if s.ProxyFrom != nil {
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
	return nil
}

func (h *spawn) Hand(_ context.Context, p *frontend.Passed) error {
	s := h.s
	c := p.Conn.(*serveConn)
	if err := s.admit(c); err != nil {
		return err
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		s.tally.dropChild()
		return fmt.Errorf("pass: %T is not a socket", c.Conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		s.tally.dropChild()
		return fmt.Errorf("pass: %v", err)
	}
	env := s.base().Environ(p.Client.Remote, p.Client.Local, p.Host, p.Verdict)
	if h.socket != "" {
		env = append(env, "MXFRONT_SOCKET="+sanitize.Text(h.socket, sanitize.MaxField))
	}
	// The child gets the connection's own fd (no dup): after the spawn,
	// it is the child's, in blocking mode; serve only closes its copy.
	var child *mxexec.Child
	cerr := rc.Control(func(fd uintptr) {
		child, err = mxexec.SpawnFD(int(fd), s.Stderr, s.Path, s.Argv, env, s.Credential)
		if err != nil {
			_ = unix.SetNonblock(int(fd), true) // serve's again, for the 421
		}
	})
	if err == nil {
		err = cerr
	}
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
