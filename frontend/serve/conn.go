package serve

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mxfront/mxfront/frontend"
)

// serveConn is an accepted connection as a connection's life uses it. It
// holds the connection's counts until the life is done with it, or, once
// the client was handed over, until PROGRAM exits (spawn's reap).
type serveConn struct {
	net.Conn
	s      *Server
	net    netip.Addr // the per-network count taken, if valid
	handed bool       // PROGRAM has the connection, and its counts
	// released: the counts were dropped (the connection was closed).
	released bool
	talk     *stoppableConn
}

func (c *serveConn) release() {
	if c.handed || c.released {
		return
	}
	c.released = true
	if c.net.IsValid() {
		c.s.tally.dropNet(c.net)
	}
	c.s.tally.dropConn()
}

// Greet waits in Go's poller, so that a goroutine, not a thread, waits for
// each client in its delay.
func (c *serveConn) Greet(first frontend.Reply, d time.Duration) (frontend.Talk, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return frontend.Silent, errors.New("greeting delay: not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return frontend.Silent, err
	}
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(first.AppendWire(nil, true)); err != nil {
		return frontend.HungUp, fmt.Errorf("greeting: %v", err)
	}
	_ = c.SetWriteDeadline(time.Time{})
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	t := frontend.Silent
	err = rc.Read(func(fd uintptr) bool {
		var ok bool
		t, ok = frontend.Peek(int(fd))
		return ok
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return frontend.Silent, nil
	}
	if err != nil {
		return frontend.HungUp, err
	}
	return t, nil
}

// Dialogue registers the connection with the shutdown, which may stop it.
func (c *serveConn) Dialogue() (frontend.DialogueConn, error) {
	c.talk = &stoppableConn{Conn: c.Conn}
	c.s.mu.Lock()
	if c.s.talking == nil {
		c.s.talking = make(map[*stoppableConn]struct{})
	}
	c.s.talking[c.talk] = struct{}{}
	c.s.mu.Unlock()
	c.s.stats.refusing.Add(1)
	return c.talk, nil
}

func (c *serveConn) DialogueDone() bool {
	c.s.stats.refusing.Add(-1)
	c.s.mu.Lock()
	delete(c.s.talking, c.talk)
	c.s.mu.Unlock()
	return c.talk.stopped.Load()
}

func (c *serveConn) Say(r frontend.Reply) { say(c.Conn, r) }

// Close closes the connection and, unless PROGRAM has it, frees its place
// at once: before the connection's log line, so that a client that has
// read that line's refusal and reconnects finds its place free.
func (c *serveConn) Close() {
	c.Conn.Close()
	c.release()
}

// stoppableConn is a refusal dialogue's connection that the shutdown can
// interrupt: once stopped, every read fails at once, so the dialogue ends
// after flushing what it had to say, and the life adds a last 421.
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
