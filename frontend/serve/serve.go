// Package serve is serve mode: one long-running process that accepts
// connections itself (--listen, or systemd's Accept=no sockets), bounds
// what clients may hold (connections, per network, children), reads the
// PROXY header of its load balancers, runs each connection's life
// (package frontend) in a goroutine, and starts PROGRAM for each client it
// passes. Refused clients never cost a process. It replaces its rules on
// SIGHUP (SetRules) and stops gracefully (Serve's context).
package serve

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

	"golang.org/x/sys/unix"

	mxexec "github.com/mxfront/mxfront/exec"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/frontend/proxy"
	"github.com/mxfront/mxfront/frontend/relay"
	"github.com/mxfront/mxfront/internal/logline"
)

// Server is serve mode.
type Server struct {
	Policy   *frontend.Policy // the rules at start; SetRules replaces them
	Dialogue frontend.DialogueConfig
	Log      *logline.Logger
	Observer Observer // nil: none
	Argv     []string // PROGRAM and its arguments
	Path     string   // PROGRAM's resolved path
	Environ  []string // PROGRAM's base environment
	Stderr   *os.File // PROGRAM's stderr (mxfront's own log stream)
	// Listeners are the sockets to accept on.
	Listeners []net.Listener
	Limits    Limits
	// ShutdownTimeout is how long refusal dialogues may go on after the
	// stop; then they get 421 and are closed. 0: 30s.
	ShutdownTimeout time.Duration
	// ProxyFrom are the peers that must send a PROXY header (and the only
	// ones that may); nil: the PROXY protocol is off.
	ProxyFrom *frontend.NetList
	// Credential, when set, is the user PROGRAM runs as.
	Credential *syscall.Credential
	// Relay, when set (--inspect), relays passed clients (relay.go).
	Relay *relay.Relay

	// hardConns and hardChildren are serve's own ceilings (limits.go);
	// 0: none.
	hardConns, hardChildren int

	env   atomic.Pointer[frontend.BaseEnv] // Environ, read once
	life  atomic.Pointer[frontend.Life]
	once  sync.Once
	tally tally
	wg    sync.WaitGroup // connections being decided or refused
	jobs  chan job       // to an idle worker (serve's goroutines are reused)
	// workers counts the workers started and running; idle those waiting.
	workersStarted, workers, idle atomic.Int64
	workerIdle                    time.Duration // workerIdle when Serve began
	mu                            sync.Mutex
	talking                       map[*stoppableConn]struct{} // refusal dialogues in progress
	stats                         struct{ refusing, passed, refused, rejected atomic.Int64 }
}

// SetRules replaces the policy and the dialogue configuration for the
// connections accepted from now on; a connection keeps the rules it
// started with.
func (s *Server) SetRules(p *frontend.Policy, d frontend.DialogueConfig) {
	s.life.Store(&frontend.Life{Policy: p, Dialogue: d, Log: s.Log, Observer: counting{s}})
}

func (s *Server) current() *frontend.Life {
	s.once.Do(func() {
		if s.life.Load() == nil {
			s.life.CompareAndSwap(nil, &frontend.Life{Policy: s.Policy, Dialogue: s.Dialogue, Log: s.Log, Observer: counting{s}})
		}
	})
	return s.life.Load()
}

// Observer counts what happens in serve mode (metrics): every connection's
// life (frontend.Observer; a client turned away before any check, by a
// limit or a bad PROXY header, ends as frontend.OutcomeBusy too, with the
// log line's reason in Ending.Why) and what only serve sees. Its methods
// must not block.
type Observer interface {
	frontend.Observer
	// ChildExited: a PROGRAM ended, after running for took.
	ChildExited(status mxexec.Status, took time.Duration)
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

// counting keeps the Stats and hands every event on to the Server's
// Observer.
type counting struct{ s *Server }

func (c counting) Decided(cl frontend.Client, v frontend.Verdict) {
	if o := c.s.Observer; o != nil {
		o.Decided(cl, v)
	}
}

func (c counting) Replied(r frontend.Reply) {
	if o := c.s.Observer; o != nil {
		o.Replied(r)
	}
}

func (c counting) Ended(e frontend.Ending) {
	switch e.Outcome {
	case frontend.OutcomePassed, frontend.OutcomeTrusted:
		c.s.stats.passed.Add(1)
	case frontend.OutcomeRefused:
		c.s.stats.refused.Add(1)
	case frontend.OutcomeBusy:
		c.s.stats.rejected.Add(1)
	}
	if o := c.s.Observer; o != nil {
		o.Ended(e)
	}
}

// Serve accepts on every listener until ctx is done, then closes the
// listeners and lets refusal dialogues in progress end, for at most
// ShutdownTimeout; those still talking then get 421. Passed sessions
// belong to PROGRAM and are never killed.
func (s *Server) Serve(ctx context.Context) error {
	s.current()
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil {
		s.hardConns, s.hardChildren = ceilings(rl.Cur, mxexec.PidFDs())
		if s.Limits.MaxConns == 0 || s.Limits.MaxConns > s.hardConns {
			s.Log.Warn("connections limited by the fd limit", "max_conns", s.Limits.MaxConns, "fd_limit", rl.Cur,
				"ceiling", s.hardConns, "hint", "raise LimitNOFILE= (systemd) or ulimit -n, or lower --max-conns")
		}
		if s.hardChildren > 0 && (s.Limits.MaxChildren == 0 || s.Limits.MaxChildren > s.hardChildren) {
			s.Log.Warn("children limited by threads: this kernel has no pidfds", "max_children", s.Limits.MaxChildren, "ceiling", s.hardChildren)
		}
	}
	s.jobs, s.workerIdle = make(chan job), workerIdle
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
		if max, hard := s.connLimit(); !s.tally.takeConn(max) {
			if hard {
				s.rejectWith(c, addrPort(c.RemoteAddr()), frontend.Overloaded(s.current().Dialogue.Hostname), "fd-ceiling")
			} else {
				s.reject(c, addrPort(c.RemoteAddr()), "Error: too many connections", "max-conns")
			}
			continue
		}
		s.wg.Add(1)
		select {
		case s.jobs <- job{c, socket}:
		default:
			go s.work(connCtx, job{c, socket})
		}
	}
}

// job is an accepted connection and the name of its socket.
type job struct {
	c      net.Conn
	socket string
}

// workerIdle is how long a worker waits for its next connection before it
// ends: a burst's goroutines, and their stacks, are gone a while after it.
var workerIdle = 10 * time.Second

// work handles j, then each connection the accept loops give it while it
// waits for them, until it has waited workerIdle or ctx is done. A
// goroutine that is reused keeps the stack it grew: a refusal's deep
// calls (the life, the dialogue, the log line) would grow a new
// goroutine's stack, copying it frame by frame, for every connection.
func (s *Server) work(ctx context.Context, j job) {
	s.workersStarted.Add(1)
	s.workers.Add(1)
	defer s.workers.Add(-1)
	idle := time.NewTimer(s.workerIdle)
	defer idle.Stop()
	for {
		s.handle(ctx, j.c, j.socket)
		s.wg.Done()
		idle.Reset(s.workerIdle)
		s.idle.Add(1)
		select {
		case j = <-s.jobs:
			s.idle.Add(-1)
		case <-idle.C:
			s.idle.Add(-1)
			return
		case <-ctx.Done():
			s.idle.Add(-1)
			return
		}
	}
}

// base is PROGRAM's base environment, filtered once.
func (s *Server) base() *frontend.BaseEnv {
	if b := s.env.Load(); b != nil {
		return b
	}
	b := frontend.NewBaseEnv(s.Environ)
	s.env.CompareAndSwap(nil, b)
	return s.env.Load()
}

// connLimit is the limit on connections now: --max-conns, or serve's fd
// ceiling below it (hard).
func (s *Server) connLimit() (max int, hard bool) {
	return limit(s.Limits.MaxConns, s.hardConns)
}

// childLimit is the limit on children now: --max-children, or serve's
// thread ceiling below it (hard).
func (s *Server) childLimit() (max int, hard bool) {
	return limit(s.Limits.MaxChildren, s.hardChildren)
}

// limit is the configured limit (0: none) or the ceiling (0: none) when
// that is lower.
func limit(configured, ceiling int) (int, bool) {
	if ceiling > 0 && (configured == 0 || configured > ceiling) {
		return ceiling, true
	}
	return configured, false
}

// reject turns a client away before any check: one 421 line into an empty
// socket buffer (it never blocks), then close. A connection's place is
// freed before (serveConn.release), so that a client that reads the 421
// and reconnects at once is not turned away by its own last connection.
func (s *Server) reject(c net.Conn, remote netip.AddrPort, text, why string, attrs ...any) {
	r := frontend.TooBusy(s.current().Dialogue.Hostname, text)
	s.rejectWith(c, remote, r, why, attrs...)
}

func (s *Server) rejectWith(c net.Conn, remote netip.AddrPort, r frontend.Reply, why string, attrs ...any) {
	s.stats.rejected.Add(1)
	say(c, r)
	c.Close()
	frontend.LogRejected(s.Log, remote, why, attrs...)
	if s.Observer != nil {
		s.Observer.Replied(r)
		s.Observer.Ended(frontend.Ending{Outcome: frontend.OutcomeBusy, Why: why, Client: frontend.Client{Remote: remote}})
	}
}

// handle is one connection in serve mode: the PROXY header and the
// per-network limit, then the connection's life. The connection's counts
// are dropped when mxfront is done with it: at once, or when PROGRAM exits.
func (s *Server) handle(ctx context.Context, c net.Conn, socket string) {
	start := time.Now()
	life := s.current()
	conn := &serveConn{Conn: c, s: s}
	defer conn.release()
	// The life survives its own bugs; this is for the PROXY header's.
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("internal error: connection dropped", "ip", addrPort(c.RemoteAddr()).Addr().String(),
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			say(c, frontend.InternalError(life.Dialogue.Hostname))
			c.Close()
		}
	}()
	peer := addrPort(c.RemoteAddr())
	client := frontend.Client{Remote: peer, Local: addrPort(c.LocalAddr())}
	var via []any
	if s.ProxyFrom != nil {
		var ok bool
		if client, ok = s.proxied(conn, client); !ok {
			return
		}
		if client.Remote != peer {
			via = []any{"via", peer.Addr().String()}
		}
	}
	if !s.tally.takeNet(client.Remote.Addr(), s.Limits.MaxConnsPerIP) {
		conn.release()
		s.reject(c, client.Remote, "Error: too many connections from your address", "max-conns-per-ip", via...)
		return
	}
	conn.net = client.Remote.Addr()
	h := s.handover(socket, start, via)
	_ = life.Run(ctx, conn, client, h, start, via...)
}

// proxied reads the PROXY header of a peer listed in ProxyFrom and returns
// the client it names; a peer not listed must not send one. False: the
// connection was refused and closed.
func (s *Server) proxied(conn *serveConn, client frontend.Client) (frontend.Client, bool) {
	c, peer := conn.Conn, client.Remote
	if _, listed := s.ProxyFrom.Lookup(peer.Addr()); !listed {
		if b := peekNow(c); proxy.LooksLike(b) {
			conn.release()
			s.reject(c, peer, "Error: PROXY header from a peer not allowed to send one", "proxy-not-allowed")
			return client, false
		}
		return client, true
	}
	_ = c.SetReadDeadline(time.Now().Add(proxyHeaderTimeout))
	h, err := proxy.Read(c)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		conn.release()
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

func addrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// say writes one reply line into the socket with a bounded wait.
func say(c net.Conn, r frontend.Reply) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(r.AppendWire(nil, false))
}
