package main

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	for _, args := range [][]string{
		{"--deny-file", "/nonexistent/deny", "--", "/bin/true"},
		{"--no-such-flag", "/bin/true"},
		{"--deny", "192.0.2.0/24"},                                                   // no PROGRAM
		{"--greylist", "--greylist-store", "redis://127.0.0.1:1", "--", "/bin/true"}, // no mxfront-cli beside it
		{"--log", "stderr", "--deny", "127.0.0.0/8", "--", "/bin/true"},              // log lines would go into the session
	} {
		got, code := underInetd(t, mx, args...)
		if code != 100 {
			t.Errorf("%q: exit %d, want 100", args, code)
		}
		if !isOne421(got) {
			t.Errorf("%q: the client got %q, want one 421 line and nothing else", args, got)
		}
	}
}

// underInetd runs bin with a connected TCP socket as fds 0, 1 and 2, as
// inetd does, and returns what the client received and the exit code.
func underInetd(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, err := server.(*net.TCPConn).File()
	server.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, f
	err = cmd.Run()
	f.Close()
	_ = client.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, _ := io.ReadAll(client)
	return string(got), exitCode(err)
}

func isOne421(s string) bool {
	return strings.HasPrefix(s, "421 4.3.0 ") && strings.HasSuffix(s, " Service temporarily unavailable\r\n") &&
		strings.Count(s, "\n") == 1
}

// Chain mode with a Redis store is mxfront-cli's (which links the Redis
// client; mxfront does not, see TestLeanImports): mxfront execs it with
// the same arguments. Without it, exit 100 and a hint; with it, the
// client is greylisted in Redis, and passes (logged) when Redis is not
// there. Under inetd mxfront-cli too answers a configuration error with
// 421 only.
func TestChainModeWithRedisRunsCLI(t *testing.T) {
	mx := testpeer.Build(t, "./cmd/mxfront")
	cli := testpeer.Build(t, "./cmd/mxfront-cli")
	r := testpeer.StartRedis(t)
	session := "EHLO client.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nQUIT\r\n"
	chain := func(bin, store string) (string, string, int) {
		cmd := exec.Command(bin, "--greylist", "--greylist-store", store, "--log", "stderr", "--hostname", "mx.example.test",
			"--", "/bin/echo", "PROGRAM ran")
		cmd.Env = append(os.Environ(), "TCPREMOTEIP=192.0.2.7", "TCPREMOTEPORT=4000", "TCPLOCALIP=127.0.0.1", "TCPLOCALPORT=25")
		cmd.Stdin = strings.NewReader(session)
		var out, errs strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errs
		err := cmd.Run()
		return out.String(), errs.String(), exitCode(err)
	}

	alone := filepath.Join(t.TempDir(), "mxfront")
	copyFile(t, mx, alone)
	if _, errs, code := chain(alone, r.URL()); code != 100 || !strings.Contains(errs, "mxfront: error: mxfront-cli not found") ||
		!strings.Contains(errs, "mxfront: hint: chain mode with a Redis store") {
		t.Errorf("without mxfront-cli: exit %d\n%s", code, errs)
	}

	dir := t.TempDir()
	copyFile(t, mx, filepath.Join(dir, "mxfront"))
	copyFile(t, cli, filepath.Join(dir, "mxfront-cli"))
	out, errs, code := chain(filepath.Join(dir, "mxfront"), r.URL())
	if code != 0 || !strings.Contains(out, "451 4.7.1 Greylisted") || !strings.Contains(errs, "msg=greylisted ip=192.0.2.7 ") {
		t.Errorf("a new client: exit %d\n%s%s", code, out, errs)
	}
	if key, err := testpeer.RedisCommand(r.Addr, "EXISTS mxfront:gl:192.0.2.0/24"); err != nil || key != ":1" {
		t.Errorf("no record in Redis: %q %v", key, err)
	}
	down := "redis://127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
	out, errs, code = chain(filepath.Join(dir, "mxfront"), down)
	if code != 0 || out != "PROGRAM ran\n" || !strings.Contains(errs, `level=ERROR msg="greylist failed: client passed" ip=192.0.2.7`) {
		t.Errorf("Redis not there: exit %d\n%s%s", code, out, errs)
	}

	got, code := underInetd(t, filepath.Join(dir, "mxfront"), "--greylist", "--greylist-store", r.URL(),
		"--greylist-store-password-file", "/nonexistent/password", "--", "/bin/true")
	if code != 100 || !isOne421(got) {
		t.Errorf("inetd, a missing password file: exit %d, the client got %q", code, got)
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
