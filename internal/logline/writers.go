package logline

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The syslog and journal writers are mxfront's own, on plain sockets:
// log/syslog and go-systemd's journal package go through package net,
// whose initialisation every chain-mode process start would pay.

const logMail = 2 // the mail facility (LOG_MAIL >> 3)

// severity maps a level to syslog's severity: err, warning or info.
func severity(l Level) int {
	switch {
	case l >= LevelError:
		return 3
	case l >= LevelWarn:
		return 4
	}
	return 6
}

// syslogWriter sends lines to the local syslog daemon in the form
// log/syslog uses for a local socket: <PRI>Mmm dd hh:mm:ss TAG[PID]: MSG.
// Its send, like journalWriter's, is called by one Logger, which
// sends one line at a time.
type syslogWriter struct {
	facility int
	tag      string
	fd       int
	pid      int // in every line's tag: serve's children exec at once, so it never changes
}

// syslogPaths are where a syslog daemon listens, in the order log/syslog
// tries them.
var syslogPaths = []string{"/dev/log", "/var/run/syslog", "/var/run/log"}

func dialSyslog(facility int, tag string) (*syslogWriter, error) {
	w := &syslogWriter{facility: facility, tag: tag, fd: -1, pid: os.Getpid()}
	if err := w.connect(); err != nil {
		return nil, err
	}
	return w, nil
}

// connect opens a datagram socket to the daemon, or a stream one if the
// daemon listens on a stream socket.
func (w *syslogWriter) connect() error {
	if w.fd >= 0 {
		syscall.Close(w.fd)
		w.fd = -1
	}
	var first error // /dev/log's, the one that matters on Linux
	for _, path := range syslogPaths {
		for _, typ := range []int{syscall.SOCK_DGRAM, syscall.SOCK_STREAM} {
			fd, err := syscall.Socket(syscall.AF_UNIX, typ|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			if err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path}); err == nil {
				w.fd = fd
				return nil
			}
			syscall.Close(fd)
			if first == nil {
				first = &os.PathError{Op: "connect", Path: path, Err: err}
			}
		}
	}
	return fmt.Errorf("no syslog daemon (%s): %w", strings.Join(syslogPaths, ", "), first)
}

func (w *syslogWriter) send(l Level, line []byte) error {
	b := make([]byte, 0, len(line)+64)
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(w.facility<<3|severity(l)), 10)
	b = append(b, '>')
	b = time.Now().AppendFormat(b, time.Stamp)
	b = append(b, ' ')
	b = append(b, w.tag...)
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(w.pid), 10)
	b = append(b, "]: "...)
	b = append(b, line...)
	b = append(b, '\n')
	// A daemon that restarted closed our socket: connect again, once.
	if err := w.write(b); err != nil {
		if err = w.connect(); err != nil {
			return err
		}
		return w.write(b)
	}
	return nil
}

func (w *syslogWriter) write(b []byte) error {
	if w.fd < 0 {
		return syscall.EBADF
	}
	for len(b) > 0 {
		n, err := syscall.Write(w.fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// journalSocket is where journald reads native-protocol datagrams.
var journalSocket = "/run/systemd/journal/socket"

// journalWriter sends lines to journald in its native protocol, with the
// fields go-systemd's journal.Send gave them before.
type journalWriter struct {
	tag      string
	facility int
	fd       int
	addr     syscall.SockaddrUnix
}

func dialJournal(tag string, facility int) (*journalWriter, error) {
	if _, err := os.Stat(journalSocket); err != nil {
		return nil, err
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &journalWriter{tag: tag, facility: facility, fd: fd, addr: syscall.SockaddrUnix{Name: journalSocket}}, nil
}

func (j *journalWriter) send(l Level, line []byte) error {
	var b []byte
	b = appendJournalField(b, "MESSAGE", string(line))
	b = appendJournalField(b, "PRIORITY", strconv.Itoa(severity(l)))
	b = appendJournalField(b, "SYSLOG_IDENTIFIER", j.tag)
	b = appendJournalField(b, "SYSLOG_FACILITY", strconv.Itoa(j.facility))
	err := syscall.Sendto(j.fd, b, 0, &j.addr)
	if err != syscall.EMSGSIZE && err != syscall.ENOBUFS {
		return err
	}
	// Too big for a datagram: journald reads it from a sealed memfd whose
	// descriptor travels with an empty datagram.
	return j.sendFile(b)
}

// appendJournalField writes KEY=value\n, or, for a value with a newline,
// KEY\n, its length as 64-bit little-endian, the value and \n.
func appendJournalField(b []byte, key, value string) []byte {
	b = append(b, key...)
	for i := 0; i < len(value); i++ {
		if value[i] == '\n' {
			b = append(b, '\n')
			n := uint64(len(value))
			for k := 0; k < 8; k++ {
				b = append(b, byte(n>>(8*k)))
			}
			return append(append(b, value...), '\n')
		}
	}
	b = append(b, '=')
	return append(append(b, value...), '\n')
}

func (j *journalWriter) sendFile(b []byte) error {
	fd, err := unix.MemfdCreate("mxfront-journal", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	for rest := b; len(rest) > 0; {
		n, err := syscall.Write(fd, rest)
		if err != nil {
			return err
		}
		rest = rest[n:]
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return err
	}
	return syscall.Sendmsg(j.fd, nil, syscall.UnixRights(fd), &j.addr, 0)
}
