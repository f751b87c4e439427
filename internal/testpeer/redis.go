package testpeer

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
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
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := RedisCommand(r.Addr, "PING"); err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("testpeer: redis-server does not answer on %s:\n%s", r.Addr, r.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
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
