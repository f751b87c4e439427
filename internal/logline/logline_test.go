package logline

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Logger writes what log/slog's TextHandler writes (but for the time,
// which is UTC here and left out of this comparison).
func TestLoggerMatchesTextHandler(t *testing.T) {
	var got string
	l := NewLogger(false, func(_ Level, line []byte) error { got = string(line); return nil })
	var want bytes.Buffer
	th := slog.New(slog.NewTextHandler(&want, &slog.HandlerOptions{ReplaceAttr: func(g []string, a slog.Attr) slog.Attr {
		if len(g) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	kv := []any{"ip", "192.0.2.7", "port", 4567, "reply", "554 5.7.1 go away", "helo", "", "odd", "a=b\"c\r\n\x00é",
		"duration", 1500 * time.Microsecond, "ok", true, "n", int64(-3), "u", uint64(7), "f", 0.25,
		"error", errors.New("connection reset by peer"), "action", stringer("refuse"), "dangling"}
	for _, level := range []Level{LevelInfo, LevelWarn, LevelError} {
		want.Reset()
		l.Log(level, "refused", kv)
		th.Log(t.Context(), slog.Level(level), "refused", kv...)
		if got != strings.TrimSuffix(want.String(), "\n") {
			t.Fatalf("Logger:      %s\nTextHandler: %s", got, want.String())
		}
	}
}

func TestLoggerDiscards(t *testing.T) {
	var nilLogger *Logger
	for _, l := range []*Logger{nilLogger, {}} {
		if l.Enabled() {
			t.Fatal("a nil or zero Logger is enabled")
		}
		l.Info("nothing", "k", "v") // must not panic
	}
}

func TestWriterLoggerStampsLines(t *testing.T) {
	var b bytes.Buffer
	WriterLogger(&b).Warn("hello", "k", "v w")
	line := b.String()
	if !strings.HasPrefix(line, "time=") || !strings.HasSuffix(line, " level=WARN msg=hello k=\"v w\"\n") {
		t.Fatalf("line %q", line)
	}
	ts := strings.TrimPrefix(strings.Fields(line)[0], "time=")
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", ts); err != nil {
		t.Fatalf("time %q: %v", ts, err)
	}
}

type stringer string

func (s stringer) String() string { return string(s) }

// slogLine is what log/slog's TextHandler writes for msg and kv, without
// the time and the newline.
func slogLine(level Level, msg string, kv []any) string {
	var b bytes.Buffer
	h := slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: func(g []string, a slog.Attr) slog.Attr {
		if len(g) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	slog.New(h).Log(context.Background(), slog.Level(level), msg, kv...)
	return strings.TrimSuffix(b.String(), "\n")
}

// Every line the Logger writes is the line log/slog's TextHandler writes,
// for any text in the message, the keys and the values: quoting included
// (non-ASCII letters, DEL, invalid UTF-8, Unicode spaces).
func FuzzLoggerMatchesSlog(f *testing.F) {
	for _, s := range []string{"", "plain", "a b", "a=b", `q"uote`, "back\\slash", "é", "日本", "\x7f", "\xff\xfe",
		"\u00a0nbsp", "\u2028", "tab\there", "crlf\r\n", "nul\x00", "\u200b", "ok.example:25"} {
		f.Add("msg "+s, "key", s, int64(len(s)))
	}
	f.Fuzz(func(t *testing.T, msg, key, value string, n int64) {
		if key == "" {
			key = "k" // slog drops an attribute with an empty key: ours never have one
		}
		var got string
		l := NewLogger(false, func(_ Level, line []byte) error { got = string(line); return nil })
		kv := []any{key, value, "n", n, "d", time.Duration(n), "s", stringer(value), "err", errors.New(value)}
		for _, level := range []Level{LevelInfo, LevelWarn, LevelError} {
			l.Log(level, msg, kv)
			if want := slogLine(level, msg, kv); got != want {
				t.Fatalf("Logger:      %s\nTextHandler: %s", got, want)
			}
		}
	})
}

// Line buffers are reused: a line longer than a pooled buffer, one longer
// than any kept, and short lines after them are each whole and alone.
func TestWriterLoggerReusesBuffers(t *testing.T) {
	var b bytes.Buffer
	l := WriterLogger(&b)
	for _, v := range []string{"a", strings.Repeat("x", 600), "b", strings.Repeat("y", 9000), "c", "d"} {
		b.Reset()
		l.Info("m", "v", v)
		line := b.String()
		if !strings.HasSuffix(line, " level=INFO msg=m v="+v+"\n") || strings.Count(line, "\n") != 1 {
			t.Fatalf("line for a %d-octet value: %.120q", len(v), line)
		}
	}
}
