package config

import (
	"context"
	"log/slog"
	"log/syslog"
	"os"
	"strconv"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/mxfront/mxfront/frontend"
)

// NewLogger returns the logger --log asks for. By default it is stderr,
// unless fd 2 is the client's connection (inetd gives the socket as fds 0,
// 1 and 2): a log line must never reach the client, so syslog is used, or
// nothing if syslog cannot be reached.
func NewLogger(where string) (*slog.Logger, error) {
	if where == "" {
		where = "stderr"
		if frontend.IsInetSocket(2) {
			where = "syslog-or-none"
		}
	}
	switch where {
	case "stderr":
		return slog.New(&lineHandler{stamp: true, send: func(_ slog.Level, line string) error {
			_, err := os.Stderr.WriteString(line + "\n")
			return err
		}}), nil
	case "none":
		return slog.New(slog.DiscardHandler), nil
	case "syslog", "syslog-or-none":
		w, err := syslog.New(syslog.LOG_MAIL|syslog.LOG_INFO, "mxfront")
		if err != nil {
			if where == "syslog-or-none" {
				return slog.New(slog.DiscardHandler), nil
			}
			return nil, UsageErr("is a syslog daemon running? try --log stderr or --log journal", "--log syslog: %v", err)
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
			return nil, UsageErr("journald's socket is missing; try --log stderr", "--log journal: journal not available")
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
	return nil, UsageErr("--log takes stderr, syslog, journal or none", "bad --log %q", where)
}

// lineHandler formats records as key=value text, in slog's TextHandler
// form (time=... level=INFO msg=... key=value ...), and sends each one as
// one message. It is written out by hand because chain mode logs one line
// per process start and TextHandler's first line costs a millisecond
// there. Times are UTC; syslog and the journal stamp their own, so there
// it leaves the time out.
type lineHandler struct {
	send  func(slog.Level, string) error
	stamp bool
	attrs []slog.Attr
	mu    sync.Mutex
}

func (h *lineHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	b := make([]byte, 0, 256)
	if h.stamp {
		b = append(b, "time="...)
		b = r.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
		b = append(b, ' ')
	}
	b = append(b, "level="...)
	b = append(b, r.Level.String()...)
	b = appendAttr(b, "msg", slog.StringValue(r.Message))
	for _, a := range h.attrs {
		b = appendAttr(b, a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.send(r.Level, string(b))
}

func appendAttr(b []byte, key string, v slog.Value) []byte {
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	var s string
	switch v.Kind() {
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindString:
		s = v.String()
	default:
		s = v.Resolve().String()
	}
	if needsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// needsQuote follows slog's TextHandler: empty, spaces, '=', '"' and
// anything not printable ASCII are quoted.
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '=' || c == '"' || c >= 0x7f {
			return true
		}
	}
	return false
}

func (h *lineHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &lineHandler{send: h.send, stamp: h.stamp, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *lineHandler) WithGroup(string) slog.Handler { return h }
