package frontend

import (
	"errors"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/mxfront/mxfront/internal/fail"
	"github.com/mxfront/mxfront/internal/sanitize"
	"golang.org/x/sys/unix"
)

// Connection is the client's connection in chain mode.
type Connection struct {
	ReadFD  int // the socket, or the pipe mxfront reads
	WriteFD int // the socket, or the pipe mxfront writes
	Remote  netip.AddrPort
	Local   netip.AddrPort
}

// FindConnection finds the client's connection for chain mode: systemd's
// LISTEN_FDS=1 (fd 3), else fd 0 if it is a connected socket, else pipes
// described by the TCPREMOTEIP family of variables.
func FindConnection(getenv func(string) string) (Connection, error) {
	if pid, _ := strconv.Atoi(getenv("LISTEN_PID")); pid == os.Getpid() {
		n, _ := strconv.Atoi(getenv("LISTEN_FDS"))
		if n != 1 {
			return Connection{}, fail.Usage("use Accept=yes in the .socket unit, or run `mxfront serve` for Accept=no",
				"systemd passed %d sockets (LISTEN_FDS=%s); chain mode takes one connection", n, sanitize.Text(getenv("LISTEN_FDS"), 64))
		}
		return socketConnection(3)
	}
	if isSocket(0) {
		return socketConnection(0)
	}
	if ip := getenv("TCPREMOTEIP"); ip != "" {
		// Pipes (a launcher that is not a TCP one): fd 0 and 1.
		c := Connection{ReadFD: 0, WriteFD: 1}
		remote, err := envAddrPort(ip, getenv("TCPREMOTEPORT"))
		if err != nil {
			return c, fail.Usage("TCPREMOTEIP must be the client's IP address", "TCPREMOTEIP=%q: %v", sanitize.Text(ip, 64), err)
		}
		c.Remote = remote
		c.Local, _ = envAddrPort(getenv("TCPLOCALIP"), getenv("TCPLOCALPORT"))
		return c, nil
	}
	return Connection{}, fail.Usage("run mxfront from tcpserver, inetd/xinetd (nowait) or a systemd Accept=yes socket; `mxfront serve` listens itself",
		"no connection: fd 0 is not a socket, LISTEN_FDS is not set, TCPREMOTEIP is not set")
}

func socketConnection(fd int) (Connection, error) {
	c := Connection{ReadFD: fd, WriteFD: fd}
	peer, err := unix.Getpeername(fd)
	if err != nil {
		return c, fail.Usage("is the socket a listening one? use nowait (inetd), Accept=yes (systemd), or `mxfront serve`",
			"fd %d: getpeername: %v", fd, err)
	}
	c.Remote = sockaddrAddrPort(peer)
	if local, err := unix.Getsockname(fd); err == nil {
		c.Local = sockaddrAddrPort(local)
	}
	if !c.Remote.IsValid() {
		return c, fail.Usage("mxfront wants a TCP connection (IPv4 or IPv6)", "fd %d is not a TCP connection", fd)
	}
	return c, nil
}

func isSocket(fd int) bool {
	_, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	return err == nil
}

func sockaddrAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}

func envAddrPort(ip, port string) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.AddrPort{}, errors.New("not an IP address")
	}
	// A port that is not one (TCPREMOTEPORT=99999) is unknown: 0.
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		p = 0
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

// DialogueConn opens the connection for the refusal dialogue: the fds are
// made non-blocking so that deadlines work. Hand-over sets them back.
func (c Connection) DialogueConn() (DialogueConn, error) {
	if err := unix.SetNonblock(c.ReadFD, true); err != nil {
		return nil, err
	}
	r := os.NewFile(uintptr(c.ReadFD), "client")
	if c.WriteFD == c.ReadFD {
		return r, nil
	}
	if err := unix.SetNonblock(c.WriteFD, true); err != nil {
		return nil, err
	}
	return Pipes{R: r, W: os.NewFile(uintptr(c.WriteFD), "client-out")}, nil
}

// restoreBlocking undoes DialogueConn's non-blocking mode: O_NONBLOCK
// belongs to the open file, which a launcher's pipes share with others.
func (c Connection) restoreBlocking() {
	_ = unix.SetNonblock(c.ReadFD, false)
	_ = unix.SetNonblock(c.WriteFD, false)
}

// Pipes joins a read and a write file into one DialogueConn.
type Pipes struct{ R, W *os.File }

func (p Pipes) Read(b []byte) (int, error)        { return p.R.Read(b) }
func (p Pipes) Write(b []byte) (int, error)       { return p.W.Write(b) }
func (p Pipes) SetReadDeadline(t time.Time) error { return p.R.SetReadDeadline(t) }
func (p Pipes) SetWriteDeadline(t time.Time) error {
	return p.W.SetWriteDeadline(t)
}
