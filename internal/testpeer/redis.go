package testpeer

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisWait is the generous deadline for a redis-server or sentinel to
// answer once started and to exit once told to (a loaded machine is slow,
// not broken); tests use it for the states they wait for too (a replica in
// sync, a fail-over done).
const RedisWait = 60 * time.Second

// Redis is a redis-server (or sentinel) this test process started on
// 127.0.0.1 on a free port, saving nothing, in a directory of its own,
// and stopped by its PID: when the test ends (StartRedis, StartSentinel)
// or when the test binary's TestMain says so (SharedRedis). If the test
// failed, its output is logged.
type Redis struct {
	Addr string // 127.0.0.1:PORT
	Port int
	Dir  string // its --dir and working directory

	bin  string
	args []string
	out  *Buffer
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been waited for
}

// URL is the server's --greylist-store URL.
func (r *Redis) URL() string { return "redis://" + r.Addr }

// PID is the server process's id.
func (r *Redis) PID() int { return r.cmd.Process.Pid }

// Output is what the server wrote to stdout and stderr, across restarts.
func (r *Redis) Output() string { return r.out.String() }

// Signal sends sig (SIGSTOP, SIGCONT, ...) to the server's own PID.
func (r *Redis) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("testpeer: signal %v to %s %d: %v", sig, r.bin, r.PID(), err)
	}
}

// Stop ends the server by its PID: SIGCONT (it may have been stopped with
// SIGSTOP), SIGTERM, and SIGKILL if it has not exited within RedisWait.
// Stopping twice is harmless.
func (r *Redis) Stop() {
	if r.exited() {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGCONT)
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(RedisWait):
		r.Kill()
	}
}

// Kill ends the server at once by its PID, as a crash would, and waits
// for it.
func (r *Redis) Kill() {
	if !r.exited() {
		_ = r.cmd.Process.Kill()
	}
	if r.done != nil {
		<-r.done
	}
}

// Restart stops the server (by its PID) if it runs, and starts it again
// with the same arguments on the same port, as an administrator would
// after an outage.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	if err := r.start(); err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	if err := r.awaitPING(); err != nil {
		t.Fatalf("testpeer: restart: %v", err)
	}
}

func (r *Redis) exited() bool {
	if r.done == nil {
		return true
	}
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// start runs the program in the background.
func (r *Redis) start() error {
	cmd := exec.Command(r.bin, r.args...)
	cmd.Dir = r.Dir
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %v", r.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	return nil
}

// awaitPING waits (RedisWait at most) until the server answers PING with
// a Redis reply (any: it may want a password), or exits.
func (r *Redis) awaitPING() error {
	deadline := time.Now().Add(RedisWait)
	for {
		if r.exited() {
			return fmt.Errorf("%s exited at start:\n%s", r.bin, r.Output())
		}
		// Asked again and again: a slow answer is waited for in the
		// loop, where an exit is seen.
		if reply, err := redisCommand(r.Addr, "PING", time.Second); err == nil && (strings.HasPrefix(reply, "+") || strings.HasPrefix(reply, "-")) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer on %s after %v:\n%s", r.bin, r.Addr, RedisWait, r.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// launchRedis starts bin with the arguments args gives for a port that
// port chose, in dir, and waits until it answers PING. A port someone
// else bound between choosing and binding it (the server exits: address
// in use) is chosen again, a few times.
func launchRedis(bin, dir string, port func() (int, error), args func(port int) ([]string, error)) (*Redis, error) {
	var last error
	for range 5 {
		p, err := port()
		if err != nil {
			return nil, err
		}
		a, err := args(p)
		if err != nil {
			return nil, err
		}
		r := &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), Port: p, Dir: dir, bin: bin, args: a, out: &Buffer{}}
		if err := r.start(); err != nil {
			return nil, err
		}
		if last = r.awaitPING(); last == nil {
			return r, nil
		}
		taken := r.exited() && strings.Contains(r.Output(), "already in use")
		r.Kill()
		if !taken {
			return nil, last
		}
	}
	return nil, last
}

// startRedis launches a server for the test t in a directory of its own
// and stops it when the test ends.
func startRedis(t testing.TB, bin, prefix string, args func(port int, dir string) ([]string, error)) *Redis {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r, err := launchRedis(bin, dir,
		func() (int, error) { return FreePort(t), nil },
		func(port int) ([]string, error) { return args(port, dir) })
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("output of %s on %s:\n%s", r.bin, r.Addr, r.Output())
		}
	})
	return r
}

// redisArgs is a throw-away server on port: loopback only, nothing saved,
// then extra.
func redisArgs(port int, dir string, extra []string) []string {
	return append([]string{
		// Loopback only, but not protected mode, which would refuse the
		// clients of 127.0.0.2, 127.0.0.10, ... (other "hosts").
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning",
	}, extra...)
}

// StartRedis runs redis-server in the foreground for this test, with extra
// configuration arguments ("--requirepass", "x"), waits (RedisWait at
// most) until it answers PING, and stops it when the test ends.
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	bin := Need(t, "redis-server")
	return startRedis(t, bin, "mxfront-redis-", func(port int, dir string) ([]string, error) {
		return redisArgs(port, dir, extra), nil
	})
}

// StartSentinel runs a Redis Sentinel (redis-sentinel, or redis-server
// --sentinel: the same program) for this test, watching the master named
// master at masterAddr with a quorum of 2, waits until it answers PING,
// and stops it when the test ends. It starts patient (down-after-
// milliseconds 60000): a loaded machine can leave a master unanswered for
// over a second, and sentinels quick to judge would fail it over before
// the test's own kill. The test calls JudgeQuickly once it has killed the
// master.
func StartSentinel(t testing.TB, master, masterAddr string) *Redis {
	t.Helper()
	bin, flag := "", []string{"--sentinel"}
	if p, err := exec.LookPath("redis-sentinel"); err == nil {
		bin, flag = p, nil
	} else {
		bin = Need(t, "redis-server")
	}
	host, mport, err := net.SplitHostPort(masterAddr)
	if err != nil {
		t.Fatalf("testpeer: sentinel of %q: %v", masterAddr, err)
	}
	return startRedis(t, bin, "mxfront-sentinel-", func(port int, dir string) ([]string, error) {
		// The sentinel rewrites its configuration file: it is its own.
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
loglevel notice
dir %s
sentinel monitor %s %s %s 2
sentinel down-after-milliseconds %s 60000
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
`, port, dir, master, host, mport, master, master, master)), 0o644); err != nil {
			return nil, err
		}
		return append([]string{conf}, flag...), nil
	})
}

// JudgeQuickly tells the sentinel r to judge master down after 1 s
// without an answer (SENTINEL SET master down-after-milliseconds 1000, as
// mxfront(8)'s fail-over figure assumes), so that a master the test has
// killed is failed over within seconds.
func (r *Redis) JudgeQuickly(t testing.TB, master string) {
	t.Helper()
	if reply, err := RedisCommand(r.Addr, "SENTINEL SET "+master+" down-after-milliseconds 1000"); err != nil || reply != "+OK" {
		t.Fatalf("testpeer: SENTINEL SET %s down-after-milliseconds 1000 on %s: %q, %v", master, r.Addr, reply, err)
	}
}

// shared is SharedRedis's server, its arguments, and what it holds until
// StopSharedRedis: its directory and the ports it claimed.
var shared struct {
	sync.Mutex
	r     *Redis
	extra []string
	err   error
	dir   string
	locks []*os.File
}

// SharedRedis returns the one redis-server of this test process, for tests
// that need nothing special of it (they keep apart by key prefixes). The
// first call starts it with extra (as StartRedis does); every later call
// must pass the same extra. It outlives the test that started it: the
// package's TestMain stops it with StopSharedRedis after m.Run. A test that
// fails gets its output logged. Tests must not stop or signal it.
func SharedRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	bin := Need(t, "redis-server")
	shared.Lock()
	defer shared.Unlock()
	if shared.r == nil && shared.err == nil {
		shared.extra = slices.Clone(extra)
		shared.r, shared.err = launchShared(bin, extra)
	}
	if shared.err != nil {
		t.Fatalf("testpeer: shared redis-server: %v", shared.err)
	}
	if !slices.Equal(extra, shared.extra) {
		t.Fatalf("testpeer: SharedRedis(%q) after SharedRedis(%q): the shared server has one configuration", extra, shared.extra)
	}
	r := shared.r
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output of the shared %s on %s:\n%s", r.bin, r.Addr, r.Output())
		}
	})
	return r
}

// launchShared starts the shared server; shared is locked. Its ports are
// claimed as FreePort claims them, until StopSharedRedis rather than the
// end of a test.
func launchShared(bin string, extra []string) (*Redis, error) {
	dir, err := os.MkdirTemp("", "mxfront-redis-")
	if err != nil {
		return nil, err
	}
	shared.dir = dir
	return launchRedis(bin, dir,
		func() (int, error) {
			port, lock, err := reservePort()
			if err == nil {
				shared.locks = append(shared.locks, lock)
			}
			return port, err
		},
		func(port int) ([]string, error) { return redisArgs(port, dir, extra), nil })
}

// StopSharedRedis stops SharedRedis's server by its PID, if one runs, and
// removes its directory; for a TestMain after m.Run. A later SharedRedis
// starts another.
func StopSharedRedis() {
	shared.Lock()
	defer shared.Unlock()
	if shared.r != nil {
		shared.r.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	for _, lock := range shared.locks {
		release(lock)
	}
	shared.r, shared.extra, shared.err, shared.dir, shared.locks = nil, nil, nil, "", nil
}

// RedisCommand sends one inline command to addr on a new connection and
// returns the first line of the reply.
func RedisCommand(addr, cmd string) (string, error) { return redisCommand(addr, cmd, 10*time.Second) }

// redisCommand is RedisCommand with the reply expected within timeout.
func redisCommand(addr, cmd string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}
