package main

import (
	"bytes"
	"context"
	"log/slog"
	"log/syslog"
	"os"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/mxfront/mxfront/frontend"
)

// newLogger returns the logger --log asks for. By default it is stderr,
// unless fd 2 is the client's connection (inetd gives the socket as fds 0,
// 1 and 2): a log line must never reach the client, so syslog is used, or
// nothing if syslog cannot be reached.
func newLogger(where string) (*slog.Logger, error) {
	if where == "" {
		where = "stderr"
		if frontend.IsInetSocket(2) {
			where = "syslog-or-none"
		}
	}
	switch where {
	case "stderr":
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), nil
	case "none":
		return slog.New(slog.DiscardHandler), nil
	case "syslog", "syslog-or-none":
		w, err := syslog.New(syslog.LOG_MAIL|syslog.LOG_INFO, "mxfront")
		if err != nil {
			if where == "syslog-or-none" {
				return slog.New(slog.DiscardHandler), nil
			}
			return nil, usageErr("is a syslog daemon running? try --log stderr or --log journal", "--log syslog: %v", err)
		}
		return slog.New(&lineHandler{send: func(l slog.Level, line string) error {
			switch {
			case l >= slog.LevelError:
				return w.Err(line)
			case l >= slog.LevelWarn:
				return w.Warning(line)
			}
			return w.Info(line)
		}}), nil
	case "journal":
		if !journal.Enabled() {
			return nil, usageErr("journald's socket is missing; try --log stderr", "--log journal: journal not available")
		}
		return slog.New(&lineHandler{send: func(l slog.Level, line string) error {
			p := journal.PriInfo
			switch {
			case l >= slog.LevelError:
				p = journal.PriErr
			case l >= slog.LevelWarn:
				p = journal.PriWarning
			}
			return journal.Send(line, p, map[string]string{"SYSLOG_IDENTIFIER": "mxfront", "SYSLOG_FACILITY": "2"})
		}}), nil
	}
	return nil, usageErr("--log takes stderr, syslog, journal or none", "bad --log %q", where)
}

// lineHandler formats records as key=value text without a time (syslog and
// the journal stamp their own) and sends each one as one message.
type lineHandler struct {
	send  func(slog.Level, string) error
	attrs []slog.Attr
	mu    sync.Mutex
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *lineHandler) Handle(ctx context.Context, r slog.Record) error {
	var buf bytes.Buffer
	th := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	if err := th.WithAttrs(h.attrs).Handle(ctx, r); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.send(r.Level, string(bytes.TrimRight(buf.Bytes(), "\n")))
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &lineHandler{send: h.send, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }
