package logline

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/mxfront/mxfront/internal/fail"
)

// Open returns the logger --log asks for: stderr, syslog, journal or none.
// By default it is stderr, unless fd 2 is the client's connection (inetd
// gives the socket as fds 0, 1 and 2): a log line must never reach the
// client, so syslog is used, or nothing if syslog cannot be reached
// ("syslog-or-none" asks for that explicitly).
func Open(where string) (*Logger, error) {
	if where == "" {
		where = "stderr"
		if IsInetSocket(2) {
			where = "syslog-or-none"
		}
	}
	switch where {
	case "stderr":
		if IsInetSocket(2) {
			return nil, fail.Usage("under inetd fd 2 is the client's connection: use --log syslog or --log journal",
				"--log stderr would write log lines into the client's session")
		}
		return WriterLogger(os.Stderr), nil
	case "none":
		return &Logger{}, nil
	case "syslog", "syslog-or-none":
		w, err := dialSyslog(logMail, "mxfront")
		if err != nil {
			if where == "syslog-or-none" {
				return &Logger{}, nil
			}
			return nil, fail.Usage("is a syslog daemon running? try --log stderr or --log journal", "--log syslog: %v", err)
		}
		return NewLogger(false, w.send), nil
	case "journal":
		j, err := dialJournal("mxfront", logMail)
		if err != nil {
			return nil, fail.Usage("journald's socket is missing; try --log stderr", "--log journal: journal not available: %v", err)
		}
		return NewLogger(false, j.send), nil
	}
	return nil, fail.Usage("--log takes stderr, syslog, journal or none", "bad --log %q", where)
}

// IsInetSocket reports whether fd is an IPv4 or IPv6 socket: under inetd,
// fd 2 is the client's connection and must never receive log lines.
func IsInetSocket(fd int) bool {
	d, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	return err == nil && (d == unix.AF_INET || d == unix.AF_INET6)
}
