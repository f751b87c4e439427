package config

import (
	"os"

	"github.com/mxfront/mxfront/frontend"
)

// NewLogger returns the logger --log asks for. By default it is stderr,
// unless fd 2 is the client's connection (inetd gives the socket as fds 0,
// 1 and 2): a log line must never reach the client, so syslog is used, or
// nothing if syslog cannot be reached.
func NewLogger(where string) (*frontend.Logger, error) {
	if where == "" {
		where = "stderr"
		if frontend.IsInetSocket(2) {
			where = "syslog-or-none"
		}
	}
	switch where {
	case "stderr":
		return frontend.WriterLogger(os.Stderr), nil
	case "none":
		return &frontend.Logger{}, nil
	case "syslog", "syslog-or-none":
		w, err := dialSyslog(logMail, "mxfront")
		if err != nil {
			if where == "syslog-or-none" {
				return &frontend.Logger{}, nil
			}
			return nil, UsageErr("is a syslog daemon running? try --log stderr or --log journal", "--log syslog: %v", err)
		}
		return frontend.NewLogger(false, w.send), nil
	case "journal":
		j, err := dialJournal("mxfront", logMail)
		if err != nil {
			return nil, UsageErr("journald's socket is missing; try --log stderr", "--log journal: journal not available: %v", err)
		}
		return frontend.NewLogger(false, j.send), nil
	}
	return nil, UsageErr("--log takes stderr, syslog, journal or none", "bad --log %q", where)
}
