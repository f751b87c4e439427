package logline

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listenUnixgram is a syslog daemon's or journald's socket, for a test.
func listenUnixgram(t *testing.T, name string) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

func receive(t *testing.T, c *net.UnixConn) ([]byte, []byte) {
	t.Helper()
	buf, oob := make([]byte, 1<<20), make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n], oob[:oobn]
}

// Lines reach syslog in log/syslog's form for a local socket, with the
// mail facility and the level's severity, and the writer connects again
// after the daemon restarted.
func TestSyslogWriter(t *testing.T) {
	c, path := listenUnixgram(t, "log")
	old := syslogPaths
	syslogPaths = []string{filepath.Join(t.TempDir(), "missing"), path}
	t.Cleanup(func() { syslogPaths = old })

	w, err := dialSyslog(logMail, "mxfront")
	if err != nil {
		t.Fatal(err)
	}
	l := NewLogger(false, w.send)
	for _, tt := range []struct {
		level Level
		pri   int
	}{{LevelInfo, 2<<3 | 6}, {LevelWarn, 2<<3 | 4}, {LevelError, 2<<3 | 3}} {
		l.Log(tt.level, "refused", []any{"ip", "192.0.2.7"})
		got, _ := receive(t, c)
		re := regexp.MustCompile(fmt.Sprintf(`^<%d>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d mxfront\[%d\]: level=%s msg=refused ip=192\.0\.2\.7\n$`,
			tt.pri, os.Getpid(), tt.level))
		if !re.Match(got) {
			t.Errorf("syslog got %q", got)
		}
	}

	// The daemon restarts: the old socket is gone, a new one is there.
	c.Close()
	os.Remove(path)
	c2, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	l.Info("after restart")
	if got, _ := receive(t, c2); !bytes.Contains(got, []byte("msg=\"after restart\"")) {
		t.Errorf("after the restart syslog got %q", got)
	}
}

func TestSyslogMissing(t *testing.T) {
	old := syslogPaths
	syslogPaths = []string{filepath.Join(t.TempDir(), "log")}
	t.Cleanup(func() { syslogPaths = old })
	if _, err := Open("syslog"); err == nil || !strings.Contains(err.Error(), "--log syslog: no syslog daemon") {
		t.Fatalf("no syslog daemon: %v", err)
	}
	if l, err := Open("syslog-or-none"); err != nil || l.Enabled() {
		t.Fatalf("syslog-or-none without a daemon: %v, enabled %v", err, l.Enabled())
	}
}

// journalFields parses journald's native protocol.
func journalFields(t *testing.T, b []byte) map[string]string {
	t.Helper()
	f := map[string]string{}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			t.Fatalf("unterminated field %q", b)
		}
		line := string(b[:i])
		b = b[i+1:]
		if k, v, ok := strings.Cut(line, "="); ok {
			f[k] = v
			continue
		}
		n := binary.LittleEndian.Uint64(b[:8])
		f[line] = string(b[8 : 8+n])
		if b[8+n] != '\n' {
			t.Fatalf("binary field %s not ended by a newline", line)
		}
		b = b[9+n:]
	}
	return f
}

// Lines reach journald as the fields go-systemd's journal.Send gave them;
// one too big for a datagram travels in a sealed memfd.
func TestJournalWriter(t *testing.T) {
	c, path := listenUnixgram(t, "socket")
	old := journalSocket
	journalSocket = path
	t.Cleanup(func() { journalSocket = old })
	if err := c.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}

	j, err := dialJournal("mxfront", logMail)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLogger(false, j.send)
	l.Warn("DNS list failed", "zone", "bl.example")
	got, _ := receive(t, c)
	f := journalFields(t, got)
	want := map[string]string{"MESSAGE": "level=WARN msg=\"DNS list failed\" zone=bl.example", "PRIORITY": "4",
		"SYSLOG_IDENTIFIER": "mxfront", "SYSLOG_FACILITY": "2"}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s=%q, want %q (all: %q)", k, f[k], v, got)
		}
	}

	// A value with a newline (never written by Logger, which quotes it)
	// takes the binary form.
	if f := journalFields(t, appendJournalField(nil, "MESSAGE", "a\nb")); f["MESSAGE"] != "a\nb" {
		t.Errorf("binary field: %q", f["MESSAGE"])
	}

	big := strings.Repeat("x", 1<<20)
	l.Info("big", "rcpt", big)
	got, oob := receive(t, c)
	if len(got) != 0 {
		t.Fatalf("a big line came as a %d-byte datagram, not a memfd", len(got))
	}
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages: %v, %v", msgs, err)
	}
	fds, err := syscall.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights: %v, %v", fds, err)
	}
	mf := os.NewFile(uintptr(fds[0]), "memfd")
	defer mf.Close()
	// journald maps the file; its offset is ours, at the end.
	var data bytes.Buffer
	if _, err := data.ReadFrom(io.NewSectionReader(mf, 0, 1<<30)); err != nil {
		t.Fatal(err)
	}
	if f := journalFields(t, data.Bytes()); f["MESSAGE"] != "level=INFO msg=big rcpt="+big || f["PRIORITY"] != "6" {
		t.Errorf("memfd message: %d bytes, priority %q", len(f["MESSAGE"]), f["PRIORITY"])
	}
}
