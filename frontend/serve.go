package frontend

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	mxexec "github.com/mxfront/mxfront/exec"
)

// Server is serve mode: one process accepts connections, decides each one
// in-process, refuses in a goroutine (no process is spent on a refused
// client) and starts PROGRAM for each client it passes.
type Server struct {
	Policy    *Policy
	Dialogue  DialogueConfig
	Argv      []string // PROGRAM and its arguments
	Path      string   // PROGRAM's resolved path
	Environ   []string // PROGRAM's base environment
	Log       *slog.Logger
	Stderr    *os.File // PROGRAM's stderr (mxfront's own log stream)
	Listeners []net.Listener

	wg sync.WaitGroup // connections being decided or refused
}

// Serve accepts on every listener until ctx is done, then closes the
// listeners and waits for refusal dialogues in progress (passed sessions
// belong to PROGRAM and are never killed).
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, len(s.Listeners))
	for _, l := range s.Listeners {
		go func(l net.Listener) { errc <- s.accept(ctx, l) }(l)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, l := range s.Listeners {
		l.Close()
	}
	s.wg.Wait()
	return err
}

func (s *Server) accept(ctx context.Context, l net.Listener) error {
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE and friends: back off and keep serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.Log.Error("accept failed", "listen", l.Addr().String(), "error", err.Error(), "retry_in", backoff.String())
			select {
			case <-time.After(backoff):
				continue
			case <-ctx.Done():
				return nil
			}
		}
		backoff = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, c)
		}()
	}
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	start := time.Now()
	remote := addrPort(c.RemoteAddr())
	client := Client{Remote: remote, Local: addrPort(c.LocalAddr())}
	v := s.Policy.Decide(ctx, client)
	ci := connInfo{local: client.Local}
	if s.Dialogue.greetDelayFor(v) {
		ci.greeted = true
		t0 := time.Now()
		talk, err := greetConn(c, s.Dialogue.Hostname, s.Dialogue.GreetDelay)
		switch talk {
		case HungUp:
			c.Close()
			logHungUp(s.Log, remote, v, err, time.Since(start))
			s.Policy.forgetGreylisted(ctx, remote.Addr(), v)
			return
		case Early:
			s.Policy.forgetGreylisted(ctx, remote.Addr(), v)
			v = earlyTalker(v, time.Since(t0), s.Dialogue.GreetDelay)
		}
	}
	if v.Action == Refuse {
		t := speak(c, v, s.Dialogue, ci)
		c.Close()
		v = s.Dialogue.afterDialogue(ctx, s.Policy, remote.Addr(), v, t)
		LogRefusal(s.Log, remote, v, t, time.Since(start))
		return
	}
	tc, ok := c.(interface{ File() (*os.File, error) })
	if !ok {
		c.Close()
		return
	}
	f, err := tc.File()
	c.Close() // the child's copy is the one that keeps the connection open
	if err != nil {
		s.Log.Error("pass failed", "ip", remote.Addr().String(), "error", err.Error())
		return
	}
	env := Environ(s.Environ, remote, client.Local, s.Dialogue.Hostname, v)
	child, err := mxexec.Spawn(f, s.Stderr, s.Path, s.Argv, env)
	if err != nil {
		f.WriteString("421 4.3.0 " + orLocalhost(s.Dialogue.Hostname) + " Service temporarily unavailable\r\n")
		f.Close()
		s.Log.Error("exec failed", "ip", remote.Addr().String(), "program", s.Argv[0], "error", err.Error())
		return
	}
	f.Close()
	LogPass(s.Log, remote, v, time.Since(start))
	// The session is PROGRAM's now: reap it without holding up a shutdown.
	go s.reap(child, remote, start)
}

func (s *Server) reap(child *mxexec.Child, remote netip.AddrPort, start time.Time) {
	err := child.Wait()
	attrs := []any{"ip", remote.Addr().String(), "pid", child.Process.Pid, "status", child.ProcessState.String(),
		"duration", time.Since(start).Round(time.Millisecond).String()}
	if err != nil && child.ProcessState == nil {
		attrs = append(attrs, "error", err.Error())
	}
	s.Log.Info("session ended", attrs...)
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
