package dnsbl

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
)

// maxUDP bounds a datagram we read: we offer ednsSize, a server may send
// a little more; a longer one is cut and fails to unpack.
const maxUDP = 4096

// link carries one exchange's datagrams: one connected UDP socket per
// server, opened when first needed. A connected socket hears of an ICMP
// port unreachable, so a dead server fails at once instead of timing out.
type link interface {
	// send writes one datagram to server srv.
	send(srv int, b []byte) error
	// recv waits until the deadline for a datagram (n bytes into buf) or
	// an error on a socket (err, and srv names the socket); ok is false
	// when the deadline passed (or, for pollLink, the Check was cancelled).
	recv(buf []byte, deadline time.Time) (srv, n int, err error, ok bool)
	close()
}

// pollLink waits in Go's network poller, so that a Check in flight holds
// no OS thread, as a long-running process serving many connections needs.
// While one socket is open (one server answers) the caller's goroutine
// reads it in place; a second one makes a reader goroutine per socket
// feed one channel.
type pollLink struct {
	servers []netip.AddrPort
	mu      sync.Mutex // conns, for the cancel hook
	conns   []*os.File
	only    *os.File      // the one socket open, read in place
	in      chan datagram // the readers', once two sockets are open
	quit    chan struct{}
	ctx     context.Context
	unhook  func() bool
	timer   *time.Timer
}

type datagram struct {
	srv int
	b   []byte
	err error
}

// aLongTimeAgo is a read deadline that interrupts a read at once.
func aLongTimeAgo() time.Time { return time.Unix(1, 0) }

func newPollLink(servers []netip.AddrPort, ctx context.Context) *pollLink {
	l := &pollLink{servers: servers, conns: make([]*os.File, len(servers)), quit: make(chan struct{}), ctx: ctx}
	if ctx.Done() != nil {
		// A cancelled Check ends at once: the reads are interrupted.
		l.unhook = context.AfterFunc(ctx, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, c := range l.conns {
				if c != nil {
					_ = c.SetReadDeadline(aLongTimeAgo())
				}
			}
		})
	}
	return l
}

func (l *pollLink) send(srv int, b []byte) error {
	c := l.conns[srv]
	if c == nil {
		var err error
		if c, err = l.dial(srv); err != nil {
			return err
		}
	}
	_, err := c.Write(b)
	return err
}

func (l *pollLink) dial(srv int) (*os.File, error) {
	c, err := dialUDP(l.servers[srv])
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.conns[srv] = c
	l.mu.Unlock()
	switch {
	case l.in != nil:
		go l.read(srv, c)
	case l.only == nil:
		l.only = c
	default:
		// A second socket: from now on, readers and a channel.
		l.in = make(chan datagram, 8)
		_ = l.only.SetReadDeadline(time.Time{})
		for i, c := range l.conns {
			if c != nil {
				go l.read(i, c)
			}
		}
		l.only = nil
	}
	return c, nil
}

func (l *pollLink) read(srv int, c *os.File) {
	for {
		b := make([]byte, maxUDP)
		n, err := readDatagram(c, b)
		if errors.Is(err, os.ErrClosed) {
			return
		}
		select {
		case l.in <- datagram{srv, b[:n], err}:
		case <-l.quit:
			return
		}
		if err != nil && !isRefused(err) {
			return
		}
	}
}

func (l *pollLink) recv(buf []byte, deadline time.Time) (int, int, error, bool) {
	if c := l.only; c != nil {
		_ = c.SetReadDeadline(deadline)
		if l.ctx.Err() != nil {
			return 0, 0, nil, false // the hook may have run before
		}
		n, err := readDatagram(c, buf)
		if err != nil && isTimeout(err) {
			return 0, 0, nil, false
		}
		return slices.Index(l.conns, c), n, err, true
	}
	d := time.Until(deadline)
	if d <= 0 {
		return 0, 0, nil, false
	}
	if l.timer == nil {
		l.timer = time.NewTimer(d)
	} else {
		l.timer.Reset(d)
	}
	defer l.timer.Stop()
	select {
	case g := <-l.in: // nil (blocks) while no socket is open
		return g.srv, copy(buf, g.b), g.err, true
	case <-l.timer.C:
	case <-l.ctx.Done():
	}
	return 0, 0, nil, false
}

// readDatagram reads one datagram from c. os.File takes an empty one for
// the end of a stream: it is a datagram like another.
func readDatagram(c *os.File, b []byte) (int, error) {
	n, err := c.Read(b)
	if err == io.EOF {
		return 0, nil
	}
	return n, err
}

func (l *pollLink) close() {
	if l.unhook != nil {
		l.unhook()
	}
	close(l.quit)
	for _, c := range l.conns {
		if c != nil {
			c.Close()
		}
	}
}
