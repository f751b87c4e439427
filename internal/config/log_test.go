package config

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The hand-written handler writes what slog's TextHandler writes (but for
// the time, which is UTC here).
func TestLineHandlerMatchesTextHandler(t *testing.T) {
	var got string
	h := &lineHandler{send: func(_ slog.Level, line string) error { got = line; return nil }}
	var want bytes.Buffer
	th := slog.NewTextHandler(&want, &slog.HandlerOptions{ReplaceAttr: func(g []string, a slog.Attr) slog.Attr {
		if len(g) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}})
	attrs := []any{"ip", "192.0.2.7", "port", 4567, "reply", "554 5.7.1 go away", "helo", "", "odd", "a=b\"c\r\n\x00é",
		"duration", 1500 * time.Microsecond, "ok", true}
	for _, l := range []*slog.Logger{slog.New(h), slog.New(th)} {
		l.With("mode", "chain").Info("refused", attrs...)
	}
	if got != strings.TrimSuffix(want.String(), "\n") {
		t.Fatalf("lineHandler:  %s\nTextHandler: %s", got, want.String())
	}
}
