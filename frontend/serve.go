//go:build !mxfront_lean

// Serve mode lives behind the mxfront_lean build tag, which the Makefile
// sets for the chain-mode executable: serve needs package net, and a
// chain-mode process that merely links net pays its initialisation at
// every start. mxfront-cli, which runs serve, is built without the tag.

package frontend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mxexec "github.com/mxfront/mxfront/exec"
	"golang.org/x/sys/unix"
)

// Server is serve mode: one process accepts connections, decides each one
// in-process, refuses in a goroutine (no process is spent on a refused
// client) and starts PROGRAM for each client it passes.
type Server struct {
	Policy    *Policy // the rules at start; SetRules replaces them
	Dialogue  DialogueConfig
	Argv      []string // PROGRAM and its arguments
	Path      string   // PROGRAM's resolved path
	Environ   []string // PROGRAM's base environment
	Log       *Logger
	Stderr    *os.File // PROGRAM's stderr (mxfront's own log stream)
	Listeners []net.Listener
	Limits    Limits
	// ShutdownTimeout is how long refusal dialogues may go on after the
	// stop; then they get 421 and are closed. 0: 30s.
	ShutdownTimeout time.Duration
	// ProxyFrom are the peers that must send a PROXY header (and the only
	// ones that may); nil: the PROXY protocol is off.
	ProxyFrom *NetList
	// Credential, when set, is the user PROGRAM runs as.
	Credential *syscall.Credential

	rules   atomic.Pointer[rules]
	once    sync.Once
	tally   tally
	wg      sync.WaitGroup // connections being decided or refused
	mu      sync.Mutex
	talking map[*stoppableConn]struct{} // refusal dialogues in progress
	stats   struct{ refusing, passed, refused, rejected atomic.Int64 }
}

// rules are what a SIGHUP may replace. A connection keeps the rules it
// started with.
type rules struct {
	policy   *Policy
	dialogue DialogueConfig
}

// SetRules replaces the policy and the dialogue configuration for the
// connections accepted from now on.
func (s *Server) SetRules(p *Policy, d DialogueConfig) {
	s.rules.Store(&rules{policy: p, dialogue: d})
}

func (s *Server) current() *rules {
	s.once.Do(func() {
		if s.rules.Load() == nil {
			s.rules.CompareAndSwap(nil, &rules{policy: s.Policy, dialogue: s.Dialogue})
		}
	})
	return s.rules.Load()
}

// Stats are serve mode's live counters (sd_notify STATUS=).
type Stats struct {
	Conns    int // connections open: being decided, refused, or passed and running
	Refusing int // refusal dialogues in progress
	Children int // PROGRAM processes running
	Passed   int64
	Refused  int64
	Rejected int64 // turned away by a limit, or by a PROXY header problem
}

// Stats returns the live counters.
func (s *Server) Stats() Stats {
	s.tally.mu.Lock()
	st := Stats{Conns: s.tally.conns, Children: s.tally.children}
	s.tally.mu.Unlock()
	st.Refusing = int(s.stats.refusing.Load())
	st.Passed, st.Refused, st.Rejected = s.stats.passed.Load(), s.stats.refused.Load(), s.stats.rejected.Load()
	return st
}

// Serve accepts on every listener until ctx is done, then closes the
// listeners and lets refusal dialogues in progress end, for at most
// ShutdownTimeout; those still talking then get 421. Passed sessions
// belong to PROGRAM and are never killed.
func (s *Server) Serve(ctx context.Context) error {
	s.current()
	// Connections outlive ctx (the stop signal) until the shutdown timeout.
	connCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, len(s.Listeners))
	for _, l := range s.Listeners {
		go func(l net.Listener) { errc <- s.accept(ctx, connCtx, l) }(l)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, l := range s.Listeners {
		l.Close()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	timeout := s.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	select {
	case <-done:
		return err
	case <-time.After(timeout):
	}
	cancel()
	s.mu.Lock()
	for c := range s.talking {
		c.stop()
	}
	s.mu.Unlock()
	<-done
	return err
}

func (s *Server) accept(ctx, connCtx context.Context, l net.Listener) error {
	socket := ""
	if sl, ok := l.(SystemdListener); ok {
		socket = sl.Name
	}
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
		if !s.tally.takeConn(s.Limits.MaxConns) {
			s.reject(c, addrPort(c.RemoteAddr()), "Error: too many connections", "max-conns")
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.survive(c)
			s.handle(connCtx, c, socket)
		}()
	}
}

// survive keeps a bug in one connection's checks from ending serve and
// every other connection with it: the client hears 421 (nothing was
// accepted: it retries) and the panic is logged with its stack.
func (s *Server) survive(c net.Conn) {
	p := recover()
	if p == nil {
		return
	}
	s.Log.Error("internal error: connection dropped", "ip", addrPort(c.RemoteAddr()).Addr().String(),
		"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte("421 4.3.0 " + orLocalhost(s.current().dialogue.Hostname) + " Internal error, try again later\r\n"))
	c.Close()
}

// reject turns a client away before any check: one 421 line into an empty
// socket buffer (it never blocks), then close.
func (s *Server) reject(c net.Conn, remote netip.AddrPort, text, why string, attrs ...any) {
	s.stats.rejected.Add(1)
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte("421 4.7.0 " + orLocalhost(s.current().dialogue.Hostname) + " " + text + "\r\n"))
	c.Close()
	attrs = append([]any{"ip", remote.Addr().String(), "port", int(remote.Port()), "verdict", "reject", "reason", why}, attrs...)
	logLine(s.Log, "rejected", attrs)
}

// handle is one connection's life in serve mode; the connection's count is
// dropped when mxfront is done with it (at once, or when PROGRAM exits).
func (s *Server) handle(ctx context.Context, c net.Conn, socket string) {
	start := time.Now()
	held := true
	defer func() {
		if held {
			s.tally.dropConn()
		}
	}()
	r := s.current()
	peer := addrPort(c.RemoteAddr())
	client := Client{Remote: peer, Local: addrPort(c.LocalAddr())}
	var via []any
	if s.ProxyFrom != nil {
		var ok bool
		if client, ok = s.proxied(c, client); !ok {
			return
		}
		if client.Remote != peer {
			via = []any{"via", peer.Addr().String()}
		}
	}
	remote := client.Remote
	if !s.tally.takeNet(remote.Addr(), s.Limits.MaxConnsPerIP) {
		s.reject(c, remote, "Error: too many connections from your address", "max-conns-per-ip", via...)
		return
	}
	defer func() {
		if held {
			s.tally.dropNet(remote.Addr())
		}
	}()
	v := r.policy.Decide(ctx, client)
	ci := connInfo{local: client.Local}
	if r.dialogue.greetDelayFor(v) {
		ci.greeted = true
		t0 := time.Now()
		talk, err := greetConn(c, r.dialogue.Hostname, r.dialogue.GreetDelay)
		switch talk {
		case HungUp:
			c.Close()
			logHungUp(s.Log, remote, v, err, time.Since(start), via...)
			r.policy.forgetGreylisted(ctx, remote.Addr(), v)
			return
		case Early:
			r.policy.forgetGreylisted(ctx, remote.Addr(), v)
			v = earlyTalker(v, time.Since(t0), r.dialogue.GreetDelay)
		}
	}
	if v.Action == Refuse {
		s.refuse(ctx, r, c, remote, v, ci, start, via)
		return
	}
	if !s.tally.takeChild(s.Limits.MaxChildren) {
		s.reject(c, remote, "Error: too busy, try again later", "max-children", via...)
		return
	}
	if s.pass(r, c, client, socket, v, start, via) {
		held = false // dropped when PROGRAM exits
		return
	}
	s.tally.dropChild()
}

// proxied reads the PROXY header of a peer listed in ProxyFrom and returns
// the client it names; a peer not listed must not send one. False: the
// connection was refused and closed.
func (s *Server) proxied(c net.Conn, client Client) (Client, bool) {
	peer := client.Remote
	if _, listed := s.ProxyFrom.Lookup(peer.Addr()); !listed {
		if b := peekNow(c); looksLikeProxy(b) {
			s.reject(c, peer, "Error: PROXY header from a peer not allowed to send one", "proxy-not-allowed")
			return client, false
		}
		return client, true
	}
	_ = c.SetReadDeadline(time.Now().Add(proxyHeaderTimeout))
	h, err := ReadProxyHeader(c)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		s.reject(c, peer, "Error: no valid PROXY header", "proxy-header", "error", err.Error())
		return client, false
	}
	if h.Source.IsValid() {
		client.Remote, client.Local = h.Source, h.Dest
	}
	return client, true
}

// proxyHeaderTimeout bounds the wait for a PROXY header: a proxy sends it
// as soon as it has connected.
const proxyHeaderTimeout = 5 * time.Second

// peekNow returns what the client has already sent, without consuming it
// or waiting.
func peekNow(c net.Conn) []byte {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var b [16]byte
	var n int
	_ = rc.Read(func(fd uintptr) bool {
		k, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err == nil {
			n = k
		}
		return true // never wait
	})
	return b[:n]
}

// refuse speaks the refusal dialogue; a stop that outlasts the shutdown
// timeout ends it with 421.
func (s *Server) refuse(ctx context.Context, r *rules, c net.Conn, remote netip.AddrPort, v Verdict, ci connInfo, start time.Time, via []any) {
	sc := &stoppableConn{Conn: c}
	s.mu.Lock()
	if s.talking == nil {
		s.talking = make(map[*stoppableConn]struct{})
	}
	s.talking[sc] = struct{}{}
	s.mu.Unlock()
	s.stats.refusing.Add(1)
	t := speak(sc, v, r.dialogue, ci)
	s.stats.refusing.Add(-1)
	s.mu.Lock()
	delete(s.talking, sc)
	s.mu.Unlock()
	if sc.stopped.Load() && t.End != "quit" {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte("421 4.3.2 " + orLocalhost(r.dialogue.Hostname) + " Service shutting down, try again later\r\n"))
		t.End = "shutdown"
	}
	c.Close()
	v = r.dialogue.afterDialogue(ctx, r.policy, remote.Addr(), v, t)
	s.stats.refused.Add(1)
	LogRefusal(s.Log, remote, v, t, time.Since(start), via...)
}

// pass starts PROGRAM on the connection; false: it could not (the client
// was told 421).
func (s *Server) pass(r *rules, c net.Conn, client Client, socket string, v Verdict, start time.Time, via []any) bool {
	remote := client.Remote
	tc, ok := c.(interface{ File() (*os.File, error) })
	if !ok {
		c.Close()
		return false
	}
	f, err := tc.File()
	if err != nil {
		// Out of fds (EMFILE): the client hears it is temporary.
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte("421 4.3.0 " + orLocalhost(r.dialogue.Hostname) + " Service temporarily unavailable\r\n"))
		c.Close()
		s.Log.Error("pass failed", "ip", remote.Addr().String(), "error", err.Error())
		return false
	}
	c.Close() // the child's copy is the one that keeps the connection open
	env := Environ(s.Environ, remote, client.Local, r.dialogue.Hostname, v)
	if socket != "" {
		env = append(env, "MXFRONT_SOCKET="+Sanitize(socket, maxField))
	}
	child, err := s.spawn(f, env)
	if err != nil {
		f.WriteString("421 4.3.0 " + orLocalhost(r.dialogue.Hostname) + " Service temporarily unavailable\r\n")
		f.Close()
		s.Log.Error("exec failed", "ip", remote.Addr().String(), "program", s.Argv[0], "error", err.Error())
		return false
	}
	f.Close()
	s.stats.passed.Add(1)
	LogPass(s.Log, remote, v, time.Since(start), via...)
	// The session is PROGRAM's now: reap it without holding up a shutdown.
	go s.reap(child, remote, start, via)
	return true
}

// spawn starts PROGRAM on conn (see exec.Spawn: its own process group, as
// Credential when set).
func (s *Server) spawn(conn *os.File, env []string) (*mxexec.Child, error) {
	return mxexec.Spawn(conn, s.Stderr, s.Path, s.Argv, env, s.Credential)
}

func (s *Server) reap(child *mxexec.Child, remote netip.AddrPort, start time.Time, via []any) {
	err := child.Wait()
	s.tally.dropChild()
	s.tally.dropNet(remote.Addr())
	s.tally.dropConn()
	attrs := append([]any{"ip", remote.Addr().String(), "pid", child.Process.Pid, "status", child.ProcessState.String()}, via...)
	attrs = append(attrs, "duration", time.Since(start).Round(time.Millisecond).String())
	if err != nil && child.ProcessState == nil {
		attrs = append(attrs, "error", err.Error())
	}
	logLine(s.Log, "session ended", attrs)
}

// stoppableConn is a refusal dialogue's connection that the shutdown can
// interrupt: once stopped, every read fails at once, so the dialogue ends
// after flushing what it had to say, and the server adds a last 421.
type stoppableConn struct {
	net.Conn
	stopped atomic.Bool
}

var errShutdown = errors.New("mxfront is shutting down")

// stopWrite bounds a write after the stop: a client that reads nothing
// cannot hold the shutdown for a whole command timeout.
const stopWrite = time.Second

func (c *stoppableConn) stop() {
	c.stopped.Store(true)
	_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
	_ = c.Conn.SetWriteDeadline(time.Now().Add(stopWrite))
}

func (c *stoppableConn) SetWriteDeadline(t time.Time) error {
	if c.stopped.Load() {
		t = time.Now().Add(stopWrite)
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *stoppableConn) Read(b []byte) (int, error) {
	if c.stopped.Load() {
		return 0, errShutdown
	}
	n, err := c.Conn.Read(b)
	if err != nil && c.stopped.Load() {
		err = errShutdown
	}
	return n, err
}

func (c *stoppableConn) SetReadDeadline(t time.Time) error {
	err := c.Conn.SetReadDeadline(t)
	if c.stopped.Load() {
		return c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
	return err
}

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// greetConn is GreetFD for serve mode: the wait is done by Go's poller, so
// that a goroutine, not a thread, waits for each client in its delay.
func greetConn(c net.Conn, hostname string, d time.Duration) (Talk, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return Silent, errors.New("greeting delay: not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return Silent, err
	}
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(greetLine(hostname))); err != nil {
		return HungUp, fmt.Errorf("greeting: %v", err)
	}
	_ = c.SetWriteDeadline(time.Time{})
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	t := Silent
	err = rc.Read(func(fd uintptr) bool {
		var ok bool
		t, ok = peek(int(fd))
		return ok
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return Silent, nil
	}
	if err != nil {
		return HungUp, err
	}
	return t, nil
}
