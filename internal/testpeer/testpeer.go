// Package testpeer starts the real programs the end-to-end tests run beside
// mxfront and mxfilter (tcpserver, swaks, exim4, rbldnsd, clamd, ...), on
// loopback and on free ports, and stops them by PID when the test ends.
//
// A missing peer skips the test on a developer's machine and fails it in CI
// (CI=true): the end-to-end suite never passes by not running.
package testpeer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI, where a missing peer is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need returns the path of the program name, looked up in PATH and in the
// sbin directories. Missing: the test fails in CI and is skipped elsewhere,
// with a hint to run test/peers.sh.
func Need(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("peer %q is not installed (run test/peers.sh as root)", name)
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a port that is free for both TCP and UDP on 127.0.0.1
// (a DNS server wants both) and reserves it for the rest of the test.
//
// Several test processes run at once (go test runs packages in parallel,
// and a second `make test` may run beside the first), and a port is
// chosen before the peer binds it. So the port is drawn below the
// kernel's ephemeral range, where no bind(0) or outgoing connection takes
// it, and claimed with an exclusive lock on a file named after it (shared
// by every process of the suite on this machine) until the test ends: no
// other test takes it in the meantime, and a port that a test keeps
// closed ("nothing listens there") stays closed. The kernel drops the
// lock of a process that dies.
func FreePort(t testing.TB) int {
	t.Helper()
	port, lock, err := reservePort()
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	t.Cleanup(func() { release(lock) })
	return port
}

// reservePort claims a free port as FreePort does, until release(lock):
// for a peer that outlives one test (SharedRedis).
func reservePort() (int, *os.File, error) {
	low, high := portRange()
	if err := os.MkdirAll(portDir, 0o777); err != nil {
		return 0, nil, err
	}
	_ = os.Chmod(portDir, 0o777|os.ModeSticky)
	for i := 0; i < 500; i++ {
		port := low + rand.IntN(high-low)
		lock, ok := claim(strconv.Itoa(port))
		if !ok {
			continue
		}
		if portFree(port) {
			return port, lock, nil
		}
		release(lock)
	}
	return 0, nil, errors.New("no free port")
}

// portDir holds one lock file per port claimed by FreePort.
var portDir = filepath.Join(os.TempDir(), "mxfront-test-ports")

// portRange is where FreePort draws ports: below the ephemeral range
// (net.ipv4.ip_local_port_range), from 10000.
func portRange() (low, high int) {
	low, high = 10000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var eph int
		if _, err := fmt.Sscan(string(b), &eph); err == nil && eph > low+1000 {
			high = eph
		}
	}
	return low, high
}

// FreeDNSAddr returns a loopback address (127.0.53.N) whose port 53 is
// free for UDP and TCP, reserved for the rest of the test as FreePort
// reserves a port: for a client that asks port 53 only (rblsmtpd's
// DNSCACHEIP), where two test runs at once cannot both have 127.0.0.x:53.
func FreeDNSAddr(t testing.TB) string {
	t.Helper()
	if err := os.MkdirAll(portDir, 0o777); err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	for i := 0; i < 500; i++ {
		ip := fmt.Sprintf("127.0.53.%d", 1+rand.IntN(254))
		lock, ok := claim(ip + ":53")
		if !ok {
			continue
		}
		if addrFree(net.JoinHostPort(ip, "53")) {
			t.Cleanup(func() { release(lock) })
			return ip
		}
		release(lock)
	}
	t.Fatal("testpeer: no loopback address with port 53 free")
	return ""
}

// claim takes the lock named name (a port, or address:port) without
// waiting; ok is false when another test holds it.
func claim(name string) (*os.File, bool) {
	f, err := os.OpenFile(filepath.Join(portDir, name), os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	// A holder removes the file as it lets go: a lock had on a file that
	// is no longer the one at its name is no claim.
	fi, err1 := f.Stat()
	pi, err2 := os.Stat(f.Name())
	if err1 != nil || err2 != nil || !os.SameFile(fi, pi) {
		f.Close()
		return nil, false
	}
	return f, true
}

// release gives a claim up, removing its file while the lock is held.
func release(f *os.File) {
	os.Remove(f.Name())
	f.Close()
}

// portFree reports whether port can be bound for TCP and UDP on 127.0.0.1.
func portFree(port int) bool { return addrFree(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))) }

// addrFree reports whether addr can be bound for TCP and UDP.
func addrFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// Proc is a peer program started by Start.
type Proc struct {
	Cmd *exec.Cmd
	out *Buffer
}

// Output returns what the program wrote to stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Stop sends SIGTERM to the process (by its PID), then SIGKILL after two
// seconds, and waits for it. Stopping twice is harmless.
func (p *Proc) Stop() {
	if p.Cmd.Process == nil || p.Cmd.ProcessState != nil {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _, _ = p.Cmd.Process.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-done
	}
}

// Start runs cmd in the background with its output captured, and stops it
// when the test ends; the output is logged if the test failed.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Cmd: cmd, out: &Buffer{}}
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.out
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testpeer: start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("output of %s:\n%s", strings.Join(cmd.Args, " "), p.Output())
		}
	})
	return p
}

// WaitTCP waits until something accepts connections on addr.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testpeer: nothing listens on %s after %v: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Run runs a command to completion (bounded by timeout) and returns its
// combined output and exit code (-1 when it could not run or was killed).
func Run(t testing.TB, timeout time.Duration, cmd *exec.Cmd) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Env, c.Dir, c.Stdin = cmd.Env, cmd.Dir, cmd.Stdin
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	code := -1
	if c.ProcessState != nil {
		code = c.ProcessState.ExitCode()
	}
	if err != nil && code == -1 {
		t.Logf("testpeer: %s: %v", strings.Join(cmd.Args, " "), err)
	}
	return out.String(), code
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binaries builds ./cmd/... (mxfront, mxfilter and any other command) and
// the test programs mxsink (a demo SMTP server) and goexec once per test
// process, and returns the directory holding them.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "mxfront-bin-")
		if buildErr != nil {
			return
		}
		// Readable by the unprivileged users that xinetd or exim run as.
		_ = os.Chmod(buildDir, 0o755)
		// As the Makefile builds them: static.
		for _, pkgs := range [][]string{{"./cmd/...", "./testdata/mxsink", "./testdata/goexec"}} {
			args := append([]string{"build", "-o", buildDir + "/"}, pkgs...)
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("testpeer: %v", buildErr)
	}
	return buildDir
}

// ModuleRoot returns the directory holding go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the mxfront module")
	}
	return filepath.Dir(gomod), nil
}

// Buffer is a bytes.Buffer that one goroutine may write while another
// reads it: a peer's output, or a log sink a test reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var (
	builtMu sync.Mutex
	built   = map[string]string{} // package → binary
	builtIn []string              // directories to remove
)

// Build builds one command package (e.g. "./cmd/mxfilter") alone, once per
// test process and as the Makefile does (static, without cli's doc
// generators), and returns the binary's path, in a directory every user
// can read (exim runs mxfilter as its own user). A suite that needs only
// that command then does not depend on the rest of ./cmd/... compiling.
func Build(tb testing.TB, pkg string) string {
	tb.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	root, err := ModuleRoot()
	if err != nil {
		tb.Fatalf("testpeer: %v", err)
	}
	dir, err := os.MkdirTemp("", "mxfront-build-")
	if err != nil {
		tb.Fatalf("testpeer: %v", err)
	}
	_ = os.Chmod(dir, 0o755)
	builtIn = append(builtIn, dir)
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("testpeer: go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// RemoveBuilds removes what Build built; for a TestMain after m.Run.
func RemoveBuilds() {
	builtMu.Lock()
	defer builtMu.Unlock()
	for _, d := range builtIn {
		os.RemoveAll(d)
	}
	builtIn, built = nil, map[string]string{}
}
