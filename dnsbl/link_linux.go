package dnsbl

import (
	"net/netip"
	"os"
	"slices"
	"syscall"
	"time"
	"unsafe"
)

// haveRawLink: this system has rawLink.
const haveRawLink = true

// rawLink waits in a blocking ppoll(2) on its own non-blocking sockets.
// A fresh process that makes one Check and exits (chain mode) is spared
// setting up Go's network poller, its timers and the goroutines that
// pollLink needs: a few hundred microseconds. The price is an OS thread
// held by each Check in flight, and a cancelled context that is noticed
// only at the deadline; so a long-running process uses pollLink.
type rawLink struct {
	servers []netip.AddrPort
	fds     []int // -1: not open
	polls   []pollFd
	last    int // the server whose socket had the last datagram, or -1
	turn    int // the poll entry looked at first
}

// pollFd is struct pollfd, the same on every Linux architecture.
type pollFd struct {
	fd      int32
	events  int16
	revents int16
}

const pollIn = 0x1

func newRawLink(servers []netip.AddrPort) link {
	l := &rawLink{servers: servers, fds: make([]int, len(servers)), last: -1}
	for i := range l.fds {
		l.fds[i] = -1
	}
	return l
}

func (l *rawLink) send(srv int, b []byte) error {
	if l.fds[srv] < 0 {
		fd, err := dial(l.servers[srv], syscall.SOCK_DGRAM)
		if err != nil {
			return err
		}
		l.fds[srv] = fd
		l.polls = append(l.polls, pollFd{fd: int32(fd), events: pollIn})
	}
	for {
		_, err := syscall.Write(l.fds[srv], b)
		if err != syscall.EINTR {
			return l.err("write", srv, err)
		}
	}
}

func (l *rawLink) recv(buf []byte, deadline time.Time) (int, int, error, bool) {
	for {
		// The socket that had a datagram may have another: one read
		// costs less than a poll.
		if l.last >= 0 {
			srv := l.last
			n, err := syscall.Read(l.fds[srv], buf)
			if err != syscall.EAGAIN && err != syscall.EINTR {
				return srv, max(n, 0), l.err("read", srv, err), true
			}
			l.last = -1
		}
		d := time.Until(deadline)
		if d <= 0 || len(l.polls) == 0 {
			return 0, 0, nil, false
		}
		ts := syscall.NsecToTimespec(int64(d))
		n, _, e := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&l.polls[0])),
			uintptr(len(l.polls)), uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
		if e != 0 && e != syscall.EINTR {
			return 0, 0, os.NewSyscallError("ppoll", e), true
		}
		if n > 0 {
			l.last = l.ready()
		}
	}
}

// ready returns the server of a socket that ppoll found ready, taking the
// sockets in turn so that none is starved.
func (l *rawLink) ready() int {
	for i := range l.polls {
		p := &l.polls[(l.turn+i)%len(l.polls)]
		if p.revents != 0 {
			l.turn = (l.turn + i + 1) % len(l.polls)
			return slices.Index(l.fds, int(p.fd))
		}
	}
	return -1
}

func (l *rawLink) close() {
	for _, fd := range l.fds {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
}

// err says what failed on server srv's socket, as pollLink's os.File would.
func (l *rawLink) err(op string, srv int, err error) error {
	if err == nil {
		return nil
	}
	return sockErr(op, syscall.SOCK_DGRAM, l.servers[srv], err)
}
