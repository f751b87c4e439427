package main

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testpeer.RemoveBuilds()
	os.Exit(code)
}

// Chain mode starts a process per connection: what mxfront links is what
// every connection pays for at start (each package's initialisation, and
// the pages it touches). These stay out of it; mxfront-cli has them.
func TestLeanImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	if !deps["github.com/mxfront/mxfront/internal/config"] || !deps["github.com/mxfront/mxfront/frontend"] {
		t.Fatalf("go list printed no dependencies we know:\n%s", out)
	}
	for _, heavy := range []string{
		"github.com/urfave/cli/v2",                // help, subcommands: mxfront-cli
		"github.com/miekg/dns",                    // links crypto/tls and x509: dnsbl has its own A/TXT codec
		"github.com/coreos/go-systemd/v22/daemon", // sd_notify: serve only
		"crypto/tls", "crypto/x509", "text/template", "os/user", "os/signal", "regexp",
		// Package net's initialisation and what it reaches: serve mode
		// (frontend/serve, mxfront-cli's), log/syslog and go-systemd's
		// journal (mxfront writes to their sockets itself) and the DNS
		// lists' sockets (dnsbl opens its own).
		"net", "log/syslog", "github.com/coreos/go-systemd/v22/journal",
		// log/slog's default handler brings encoding/json and reflect's
		// method tables: frontend.Logger writes the lines.
		"log/slog", "encoding/json",
	} {
		if deps[heavy] {
			t.Errorf("mxfront links %s: chain mode's start would pay for it", heavy)
		}
	}
}

// Everything but chain mode is mxfront-cli's: found beside mxfront, or
// missing with a clear error and a hint.
func TestHandsOffToCLI(t *testing.T) {
	mx := testpeer.Build(t, "./cmd/mxfront")
	cli := testpeer.Build(t, "./cmd/mxfront-cli")

	alone := filepath.Join(t.TempDir(), "mxfront")
	copyFile(t, mx, alone)
	out, err := exec.Command(alone, "check", "192.0.2.7").CombinedOutput()
	if code := exitCode(err); code != 100 || !strings.Contains(string(out), "mxfront: error: mxfront-cli not found") ||
		!strings.Contains(string(out), "mxfront: hint: ") {
		t.Errorf("without mxfront-cli: exit %d\n%s", code, out)
	}

	dir := t.TempDir()
	copyFile(t, mx, filepath.Join(dir, "mxfront"))
	copyFile(t, cli, filepath.Join(dir, "mxfront-cli"))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"check", "--deny", "192.0.2.0/24", "192.0.2.7"}, 1, "verdict: refuse"},
		{[]string{"check", "198.51.100.1"}, 0, "verdict: pass"},
		{[]string{"--help"}, 0, "mxfront serve [--listen ADDR]"},
		{[]string{"version"}, 0, "mxfront "},
		{[]string{"--no-such-flag", "prog"}, 100, "mxfront: error: flag provided but not defined"},
		{[]string{"--deny", "192.0.2.0/24"}, 100, "no PROGRAM given"},
		{[]string{"--max-errors", "x", "prog"}, 100, "mxfront: error: "},
	} {
		out, err := exec.Command(filepath.Join(dir, "mxfront"), tc.args...).CombinedOutput()
		if code := exitCode(err); code != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("mxfront %q: exit %d, want %d and %q\n%s", tc.args, code, tc.code, tc.want, out)
		}
	}
}

// `make install` puts mxfront-cli under $(PREFIX)/libexec/mxfront, not
// beside mxfront, and builds mxfront to look there.
func TestMakeInstallFindsCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every command")
	}
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	prefix, bin := t.TempDir(), t.TempDir()
	cmd := exec.Command("make", "-s", "install", "PREFIX="+prefix, "BIN="+bin)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"sbin/mxfront", "sbin/mxfilter", "libexec/mxfront/mxfront-cli", "share/man/man8/mxfront.8",
		"share/doc/mxfront/examples/mxfront.socket", "share/doc/mxfront/examples/xinetd.d/mxfront"} {
		if _, err := os.Stat(filepath.Join(prefix, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(prefix, "sbin", "mxfront-cli")); err == nil {
		t.Fatal("mxfront-cli installed beside mxfront: the libexec lookup would go untested")
	}
	out, err := exec.Command(filepath.Join(prefix, "sbin", "mxfront"), "check", "--deny", "192.0.2.0/24", "192.0.2.7").CombinedOutput()
	if code := exitCode(err); code != 1 || !strings.Contains(string(out), "verdict: refuse") {
		t.Fatalf("installed mxfront check: exit %d\n%s", code, out)
	}
}

// Under inetd the client's connection is fds 0, 1 and 2: a configuration
// or command-line error must not be written into it. The client hears
// 421 (it retries later) and nothing else; mxfront exits 100.
func TestErrorsUnderInetdReachSyslogNotTheClient(t *testing.T) {
	mx := testpeer.Build(t, "./cmd/mxfront")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, args := range [][]string{
		{"--deny-file", "/nonexistent/deny", "--", "/bin/true"},
		{"--no-such-flag", "/bin/true"},
		{"--deny", "192.0.2.0/24"}, // no PROGRAM
	} {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		f, err := server.(*net.TCPConn).File()
		server.Close()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(mx, args...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
		err = cmd.Run()
		f.Close()
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, _ := io.ReadAll(client)
		client.Close()
		if code := exitCode(err); code != 100 {
			t.Errorf("%q: exit %d, want 100", args, code)
		}
		if !strings.HasPrefix(string(got), "421 4.3.0 ") || !strings.HasSuffix(string(got), " Service temporarily unavailable\r\n") ||
			strings.Count(string(got), "\n") != 1 {
			t.Errorf("%q: the client got %q, want one 421 line and nothing else", args, got)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
