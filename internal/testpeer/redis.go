package testpeer

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Redis is a redis-server this test started on 127.0.0.1 on a free port,
// saving nothing, stopped by its PID when the test ends.
type Redis struct {
	*Proc
	Addr string // 127.0.0.1:PORT
	Dir  string
}

// URL is the server's --greylist-store URL.
func (r *Redis) URL() string { return "redis://" + r.Addr }

// StartRedis runs redis-server in the foreground with extra configuration
// arguments ("--requirepass", "x") and waits (60s at most) until it
// answers PING (any reply: it may want a password).
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	bin := Need(t, "redis-server")
	dir, err := os.MkdirTemp("", "mxfront-redis-")
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port := FreePort(t)
	args := append([]string{
		// Loopback only, but not protected mode, which would refuse the
		// clients of 127.0.0.10 and 127.0.0.11 (other "hosts").
		"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning",
	}, extra...)
	r := &Redis{Proc: Start(t, exec.Command(bin, args...)), Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir}
	r.awaitPING(t)
	return r
}

// Restart stops the server (by its PID) if it runs, and starts it again
// with the same arguments on the same port, as an administrator would
// after an outage.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	r.Proc = Start(t, exec.Command(r.Cmd.Path, r.Cmd.Args[1:]...))
	r.awaitPING(t)
}

// RedisCommand sends one inline command to addr on a new connection and
// returns the first line of the reply.
func RedisCommand(addr, cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// StartSentinel runs a Redis Sentinel (redis-sentinel, or redis-server
// --sentinel: the same program) on 127.0.0.1 on a free port, watching the
// master named master at masterAddr with a quorum of 2, quick to judge it
// down (down-after-milliseconds 1000, as mxfront(8)'s fail-over figure
// assumes), and waits until it answers PING. It is stopped by its PID when
// the test ends.
func StartSentinel(t testing.TB, master, masterAddr string) *Redis {
	t.Helper()
	bin, flag := "", []string{"--sentinel"}
	if p, err := exec.LookPath("redis-sentinel"); err == nil {
		bin, flag = p, nil
	} else {
		bin = Need(t, "redis-server")
	}
	dir, err := os.MkdirTemp("", "mxfront-sentinel-")
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	host, port, _ := net.SplitHostPort(masterAddr)
	p := FreePort(t)
	// The sentinel rewrites its configuration file: it is its own.
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
loglevel notice
dir %s
sentinel monitor %s %s %s 2
sentinel down-after-milliseconds %s 1000
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
`, p, dir, master, host, port, master, master, master)), 0o644); err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	s := &Redis{Proc: Start(t, exec.Command(bin, append([]string{conf}, flag...)...)), Addr: fmt.Sprintf("127.0.0.1:%d", p), Dir: dir}
	s.awaitPING(t)
	return s
}

func (r *Redis) awaitPING(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := RedisCommand(r.Addr, "PING"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testpeer: %s does not answer on %s:\n%s", r.Cmd.Path, r.Addr, r.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill ends the server at once by its PID, as a crash would.
func (r *Redis) Kill() {
	if r.Cmd.Process != nil {
		_ = r.Cmd.Process.Kill()
	}
	r.Stop()
}
