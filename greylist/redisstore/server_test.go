package redisstore

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// The real redis-server (and redis-sentinel) the tests run, on 127.0.0.1
// on free ports, each stopped by its PID. A missing program skips a test
// on a developer's machine and fails it in CI (testpeer.Need).

// peerWait is the generous deadline for a real server to come up or to
// reach a state (a replica in sync, a fail-over done).
const peerWait = 60 * time.Second

// server is one redis-server (or sentinel) process this test started.
type server struct {
	cmd  *exec.Cmd
	Addr string // 127.0.0.1:PORT
	Port int
	Dir  string
	out  *testpeer.Buffer
	done chan struct{} // closed when the process has exited and been waited for
}

func (s *server) URL() string { return "redis://" + s.Addr }

// PID is the server process's id.
func (s *server) PID() int { return s.cmd.Process.Pid }

// Signal sends sig to the server's own PID.
func (s *server) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to redis-server %d: %v", sig, s.PID(), err)
	}
}

// Stop ends the server by its PID: SIGCONT (it may be stopped), SIGTERM,
// and SIGKILL if it has not exited within peerWait. Stopping twice is
// harmless.
func (s *server) Stop() {
	if s.exited() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(peerWait):
		s.Kill()
	}
}

// Kill ends the server at once by its PID, as a crash would, and waits
// for it.
func (s *server) Kill() {
	if !s.exited() {
		_ = s.cmd.Process.Kill()
	}
	<-s.done
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Output is what the server logged.
func (s *server) Output() string { return s.out.String() }

// redisBin returns redis-server's path, or fails (CI) or skips the test.
func redisBin(t testing.TB) string {
	t.Helper()
	return testpeer.Need(t, "redis-server")
}

// sentinelBin returns how to run a sentinel: redis-sentinel if it is
// installed (Debian's redis-sentinel package), else redis-server with
// --sentinel after the configuration file: the same program.
func sentinelBin(t testing.TB) (string, []string) {
	t.Helper()
	if p, err := exec.LookPath("redis-sentinel"); err == nil {
		return p, nil
	}
	return redisBin(t), []string{"--sentinel"}
}

// launch starts bin with args, the port filled in by portArgs, and waits
// until it answers PING (any reply: it may want a password). A port taken
// by someone else between choosing and binding it is tried again.
func launch(t testing.TB, bin string, portArgs func(port int, dir string) []string) (*server, error) {
	t.Helper()
	dir, err := os.MkdirTemp("", "mxfront-redis-")
	if err != nil {
		return nil, err
	}
	var last error
	for range 5 {
		port := testpeer.FreePort(t)
		s := &server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, Dir: dir, out: &testpeer.Buffer{}}
		s.cmd = exec.Command(bin, portArgs(port, dir)...)
		s.cmd.Dir = dir
		s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
		if err := s.cmd.Start(); err != nil {
			return nil, err
		}
		s.done = make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(s.done) }()
		if last = s.awaitPING(); last == nil {
			return s, nil
		}
		s.Kill()
	}
	os.RemoveAll(dir)
	return nil, last
}

func (s *server) awaitPING() error {
	deadline := time.Now().Add(peerWait)
	for {
		if s.exited() {
			return fmt.Errorf("%s exited at start:\n%s", s.cmd.Path, s.Output())
		}
		if _, err := ping(s.Addr); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer on %s after %v:\n%s", s.cmd.Path, s.Addr, peerWait, s.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends PING on a new connection and returns the reply line.
func ping(addr string) (string, error) {
	return command(addr, "PING")
}

// command sends one inline command on a new connection and returns the
// first line of the reply.
func command(addr, cmd string) (string, error) { return testpeer.RedisCommand(addr, cmd) }

// startRedis starts a redis-server of its own for the test, with extra
// configuration arguments ("--requirepass", "x"), and stops it when the
// test ends.
func startRedis(t testing.TB, extra ...string) *server {
	t.Helper()
	return startServer(t, redisBin(t), func(port int, dir string) []string {
		return append(redisArgs(port, dir), extra...)
	})
}

// startSentinel starts a sentinel watching the master named master at
// masterAddr, quick to judge it down (one second), and stops it when the
// test ends.
func startSentinel(t testing.TB, master, masterAddr string) *server {
	t.Helper()
	host, port, _ := net.SplitHostPort(masterAddr)
	bin, flag := sentinelBin(t)
	return startServer(t, bin, func(p int, dir string) []string {
		conf := writeFile(t, dir, fmt.Sprintf("sentinel-%d.conf", p), fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
loglevel notice
dir %s
sentinel monitor %s %s %s 2
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
`, p, dir, master, host, port, master, master, master), 0o644)
		return append([]string{conf}, flag...)
	})
}

// startServer launches a server (see launch) and stops it when the test
// ends.
func startServer(t testing.TB, bin string, portArgs func(port int, dir string) []string) *server {
	t.Helper()
	s, err := launch(t, bin, portArgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("%s on %s:\n%s", s.cmd.Path, s.Addr, s.Output())
		}
		os.RemoveAll(s.Dir)
	})
	return s
}

// redisArgs is a throw-away server: loopback only, nothing saved.
func redisArgs(port int, dir string) []string {
	return []string{
		// Loopback only; not protected mode, which would refuse the
		// clients of 127.0.0.2 (another "host").
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--daemonize", "no", "--loglevel", "warning",
		"--enable-debug-command", "local",
	}
}

var (
	sharedOnce sync.Once
	shared     *server
	sharedErr  error
)

// sharedRedis is one server for the tests that need nothing special of it;
// they keep apart by key prefixes. TestMain stops it.
func sharedRedis(t testing.TB) *server {
	t.Helper()
	bin := redisBin(t)
	sharedOnce.Do(func() {
		shared, sharedErr = launch(t, bin, redisArgs)
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func stopShared() {
	if shared != nil {
		shared.Stop()
		os.RemoveAll(shared.Dir)
	}
}

// writeFile writes a file into dir and returns its path.
func writeFile(t testing.TB, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}
