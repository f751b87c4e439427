// Package logline writes mxfront's log: one line of key=value pairs per
// event, in the form of log/slog's TextHandler, to stderr, the local syslog
// daemon or the journal. It knows nothing of mail; it never writes to a
// client's connection (Open looks at fd 2 for that).
package logline

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Level is a log line's severity.
type Level int8

// The levels mxfront logs at, numbered as log/slog numbers them.
const (
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

func (l Level) String() string {
	switch {
	case l >= LevelError:
		return "ERROR"
	case l >= LevelWarn:
		return "WARN"
	}
	return "INFO"
}

// Logger writes mxfront's log: one line of key=value pairs per event, in
// the form of log/slog's TextHandler (time=... level=INFO msg=... key=value
// ...), so the lines stay greppable and parse as logfmt.
//
// It is not log/slog: chain mode starts a process per connection, and
// linking log/slog (its default handler brings encoding/json and reflect,
// and its package initialisation runs at every start) cost each start more
// than all of mxfront's own work. A nil or zero Logger writes nothing.
type Logger struct {
	send  func(Level, []byte) error
	w     io.Writer // WriterLogger's: the line and its newline in one write
	stamp bool
	mu    sync.Mutex
}

// NewLogger returns a Logger that hands each line, without its newline, to
// send, which must not keep it; stamp starts each line with time= (UTC,
// milliseconds), which syslog and the journal add themselves.
func NewLogger(stamp bool, send func(Level, []byte) error) *Logger {
	return &Logger{send: send, stamp: stamp}
}

// WriterLogger returns a Logger that writes time-stamped lines to w, each
// with its newline in one Write.
func WriterLogger(w io.Writer) *Logger {
	return &Logger{w: w, stamp: true}
}

// Enabled reports whether l writes anything.
func (l *Logger) Enabled() bool { return l != nil && (l.send != nil || l.w != nil) }

// lineBufs holds line buffers between lines: a refusal's line is ~300
// octets, and serve writes one per connection.
var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledLine: a buffer grown past it by one long line is dropped.
const maxPooledLine = 4 << 10

// Info, Warn and Error write one line: msg, then kv as key-value pairs
// (string keys; values are strings, integers, booleans, durations, errors
// or anything fmt can print).
func (l *Logger) Info(msg string, kv ...any)  { l.Log(LevelInfo, msg, kv) }
func (l *Logger) Warn(msg string, kv ...any)  { l.Log(LevelWarn, msg, kv) }
func (l *Logger) Error(msg string, kv ...any) { l.Log(LevelError, msg, kv) }

// Log writes one line at level. A key that is not a string, or a key
// without its value, is written as !BADKEY=value, as log/slog does.
func (l *Logger) Log(level Level, msg string, kv []any) {
	if !l.Enabled() {
		return
	}
	bp := lineBufs.Get().(*[]byte)
	b := (*bp)[:0]
	if l.stamp {
		b = append(b, "time="...)
		b = time.Now().UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
		b = append(b, ' ')
	}
	b = append(b, "level="...)
	b = append(b, level.String()...)
	b = appendPair(b, "msg", msg)
	for i := 0; i < len(kv); i++ {
		key, ok := kv[i].(string)
		if !ok || i+1 == len(kv) {
			b = appendPair(b, "!BADKEY", kv[i])
			continue
		}
		i++
		b = appendPair(b, key, kv[i])
	}
	l.mu.Lock()
	if l.w != nil {
		b = append(b, '\n')
		_, _ = l.w.Write(b)
	} else {
		_ = l.send(level, b)
	}
	l.mu.Unlock()
	if cap(b) <= maxPooledLine {
		*bp = b
		lineBufs.Put(bp)
	}
}

func appendPair(b []byte, key string, v any) []byte {
	b = append(b, ' ')
	b = appendString(b, key)
	b = append(b, '=')
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case bool:
		return strconv.AppendBool(b, v)
	case float64:
		return strconv.AppendFloat(b, v, 'g', -1, 64)
	case time.Duration:
		s = v.String()
	case error:
		s = v.Error()
	case fmt.Stringer:
		s = v.String()
	default:
		s = fmt.Sprint(v)
	}
	return appendString(b, s)
}

func appendString(b []byte, s string) []byte {
	if needsQuote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

// needsQuote is log/slog's TextHandler's rule, so that the lines are the
// same: the empty string, a space, '=', '"', an ASCII control character, a
// Unicode space or unprintable rune and invalid UTF-8 are quoted; other
// text, non-ASCII letters and DEL among it, is not. FuzzLoggerMatchesSlog
// holds the two together.
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}
