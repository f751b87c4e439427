package testpeer

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A server frozen by SIGSTOP still stops: Stop sends SIGCONT before
// SIGTERM, so it exits on the SIGTERM (status 0) rather than by the
// SIGKILL that ends Stop's wait.
func TestRedisStopFrozen(t *testing.T) {
	r := StartRedis(t)
	if reply, err := RedisCommand(r.Addr, "PING"); err != nil || reply != "+PONG" {
		t.Fatalf("PING: %q, %v", reply, err)
	}
	r.Signal(t, syscall.SIGSTOP)
	r.Stop()
	if !r.exited() {
		t.Fatal("still running after Stop")
	}
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit status %d (%v), want 0: SIGTERM after SIGCONT\n%s", code, r.cmd.ProcessState, r.Output())
	}
	r.Stop() // again: harmless
}

// Restart brings a server back on the same port as another process; Kill
// ends it as a crash would.
func TestRedisRestartKill(t *testing.T) {
	r := StartRedis(t, "--requirepass", "x")
	addr, pid := r.Addr, r.PID()
	if reply, err := RedisCommand(r.Addr, "PING"); err != nil || !strings.HasPrefix(reply, "-NOAUTH") {
		t.Fatalf("PING without the password: %q, %v", reply, err)
	}
	r.Restart(t)
	if r.Addr != addr || r.PID() == pid {
		t.Fatalf("restarted as %s pid %d, was %s pid %d", r.Addr, r.PID(), addr, pid)
	}
	if reply, err := RedisCommand(r.Addr, "AUTH x"); err != nil || reply != "+OK" {
		t.Fatalf("AUTH after the restart (same arguments): %q, %v", reply, err)
	}
	r.Kill()
	if ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("after Kill: %v", r.cmd.ProcessState)
	}
}

// A port someone took between its choice and the server's bind is chosen
// again.
func TestRedisPortTaken(t *testing.T) {
	bin := Need(t, "redis-server")
	taken, free := FreePort(t), FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(taken)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	ports := []int{taken, free}
	var tried []int
	r, err := launchRedis(bin, dir,
		func() (int, error) { p := ports[len(tried)]; tried = append(tried, p); return p, nil },
		func(port int) ([]string, error) { return redisArgs(port, dir, nil), nil })
	if err != nil {
		t.Fatalf("tried %v: %v", tried, err)
	}
	defer r.Stop()
	if r.Port != free || len(tried) != 2 {
		t.Fatalf("on port %d after trying %v, want %d after %d", r.Port, tried, free, taken)
	}
}

// The shared server outlives the test that started it, its port stays
// claimed until StopSharedRedis, and every test gets the same one.
func TestSharedRedis(t *testing.T) {
	Need(t, "redis-server")
	var first *Redis
	t.Run("first", func(t *testing.T) { first = SharedRedis(t, "--maxmemory-policy", "noeviction") })
	t.Cleanup(StopSharedRedis)
	if first == nil {
		t.FailNow()
	}
	t.Run("second", func(t *testing.T) {
		r := SharedRedis(t, "--maxmemory-policy", "noeviction")
		if r != first {
			t.Fatalf("a second server: %s pid %d, first %s pid %d", r.Addr, r.PID(), first.Addr, first.PID())
		}
		if reply, err := RedisCommand(r.Addr, "PING"); err != nil || reply != "+PONG" {
			t.Fatalf("PING after the first test ended: %q, %v", reply, err)
		}
	})
	if lock, ok := claim(strconv.Itoa(first.Port)); ok {
		release(lock)
		t.Fatalf("port %d of the running shared server not claimed", first.Port)
	}
	StopSharedRedis()
	if !first.exited() {
		t.Fatal("shared server still running after StopSharedRedis")
	}
	lock, ok := claim(strconv.Itoa(first.Port))
	if !ok {
		t.Fatalf("port %d still claimed after StopSharedRedis", first.Port)
	}
	release(lock)
}

// A sentinel watches the master it was given.
func TestStartSentinel(t *testing.T) {
	m := StartRedis(t)
	s := StartSentinel(t, "m", m.Addr)
	if reply, err := RedisCommand(s.Addr, "PING"); err != nil || reply != "+PONG" {
		t.Fatalf("sentinel PING: %q, %v", reply, err)
	}
	if reply, err := RedisCommand(s.Addr, "SENTINEL GET-MASTER-ADDR-BY-NAME m"); err != nil || reply != "*2" {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME m: %q, %v", reply, err)
	}
	if got := sentinelOption(t, s, "m", "down-after-milliseconds"); got != "60000" {
		t.Fatalf("down-after-milliseconds at start: %q, want 60000", got)
	}
	s.JudgeQuickly(t, "m")
	if got := sentinelOption(t, s, "m", "down-after-milliseconds"); got != "1000" {
		t.Fatalf("down-after-milliseconds after JudgeQuickly: %q, want 1000", got)
	}
}

// sentinelOption reads one field of SENTINEL MASTER name from s (a RESP2
// flat array of field, value bulk strings).
func sentinelOption(t *testing.T, s *Redis, name, field string) string {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("SENTINEL MASTER " + name + "\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "*") {
		t.Fatalf("SENTINEL MASTER %s: %q, %v", name, head, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	var items []string
	for range n {
		if _, err := r.ReadString('\n'); err != nil { // $len
			t.Fatal(err)
		}
		v, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, strings.TrimRight(v, "\r\n"))
	}
	for i := 0; i+1 < len(items); i += 2 {
		if items[i] == field {
			return items[i+1]
		}
	}
	t.Fatalf("SENTINEL MASTER %s has no %s: %v", name, field, items)
	return ""
}
