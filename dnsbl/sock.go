//go:build unix

package dnsbl

import (
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
)

// The sockets are made with package syscall, not net: mxfront's chain mode
// starts a process per connection, and merely linking net (its init, its
// resolver) costs every start a few hundred microseconds. os.File gives a
// non-blocking socket Go's network poller, with deadlines, as net would.

// dial opens a non-blocking socket of type typ (syscall.SOCK_DGRAM or
// SOCK_STREAM) and connects it to server. A stream socket's connect may
// be still under way: see dialTCP.
func dial(server netip.AddrPort, typ int) (int, error) {
	a := server.Addr()
	family := syscall.AF_INET6
	if a.Is4() || a.Is4In6() {
		family = syscall.AF_INET
	}
	fd, err := socket(family, typ)
	if err != nil {
		return -1, sockErr("socket", typ, server, err)
	}
	var sa syscall.Sockaddr
	if family == syscall.AF_INET {
		sa = &syscall.SockaddrInet4{Port: int(server.Port()), Addr: a.Unmap().As4()}
	} else {
		sa = &syscall.SockaddrInet6{Port: int(server.Port()), Addr: a.As16(), ZoneId: zoneIndex(fd, a.Zone())}
	}
	if err := syscall.Connect(fd, sa); err != nil && err != syscall.EINPROGRESS && err != syscall.EINTR {
		syscall.Close(fd)
		return -1, sockErr("connect", typ, server, err)
	}
	return fd, nil
}

// dialUDP opens a UDP socket connected to server, in Go's poller.
func dialUDP(server netip.AddrPort) (*os.File, error) {
	fd, err := dial(server, syscall.SOCK_DGRAM)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "udp "+server.String()), nil
}

// dialTCP connects to server over TCP before deadline, in Go's poller; the
// deadline stays the connection's.
func dialTCP(server netip.AddrPort, deadline time.Time) (*os.File, error) {
	fd, err := dial(server, syscall.SOCK_STREAM)
	if err != nil {
		return nil, err
	}
	c := os.NewFile(uintptr(fd), "tcp "+server.String())
	if err := c.SetDeadline(deadline); err != nil {
		c.Close()
		return nil, err
	}
	if err := connected(c); err != nil {
		c.Close()
		return nil, &os.PathError{Op: "connect", Path: c.Name(), Err: err}
	}
	return c, nil
}

// connected waits for c's connect to end and tells how it ended: the
// socket turns writable, and SO_ERROR says why it failed. The poller may
// wake us before: then the socket has no peer yet, and we wait again (as
// net does).
func connected(c *os.File) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var connErr error
	err = rc.Write(func(fd uintptr) bool {
		n, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_ERROR)
		switch {
		case err != nil:
			connErr = err
		case n != 0:
			connErr = syscall.Errno(n)
		default:
			_, err := syscall.Getpeername(int(fd))
			return err == nil
		}
		return true
	})
	if err != nil {
		return err
	}
	return connErr
}

// zoneIndex is the interface index of an IPv6 zone: a number, or an
// interface's name (looked up with the help of socket fd); 0 when
// unknown, as net has it.
func zoneIndex(fd int, zone string) uint32 {
	if zone == "" {
		return 0
	}
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n)
	}
	return interfaceIndex(fd, zone)
}

// sockErr says what failed, as os.File does ("read udp 127.0.0.1:53:
// connection refused"), keeping the errno for errors.Is.
func sockErr(op string, typ int, server netip.AddrPort, err error) error {
	network := "udp "
	if typ == syscall.SOCK_STREAM {
		network = "tcp "
	}
	return &os.PathError{Op: op, Path: network + server.String(), Err: err}
}
