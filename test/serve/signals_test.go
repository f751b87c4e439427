package serve_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// notifyListener stands in for systemd's NOTIFY_SOCKET and collects what
// mxfront tells it.
type notifyListener struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifyListener {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	n := &notifyListener{path: path, msgs: make(chan string, 100)}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := l.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:k])
		}
	}()
	return n
}

// wait returns the first message holding want, skipping others.
func (n *notifyListener) wait(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m := <-n.msgs:
			if strings.Contains(m, want) {
				return m
			}
		case <-timeout:
			t.Fatalf("no %q on NOTIFY_SOCKET", want)
		}
	}
}

// SIGHUP while clients are connected: a refusal dialogue begun before the
// reload ends under the old lists, a passed session goes on, new clients
// meet the new deny file, and a broken file keeps the lists in force.
// systemd hears RELOADING=1, then READY=1 with the live counters.
func TestReload(t *testing.T) {
	b := build(t)
	dir := t.TempDir()
	deny := testpeer.WriteFile(t, dir, "deny", "127.0.0.9 Old list\n")
	notify := listenNotify(t)
	addr, p := serve(t, func(addr string) *exec.Cmd {
		cmd := exec.Command(b.mxfront, "serve", "--listen", addr, "--hostname", "mx.example.test", "--deny-file", deny,
			"--", "/bin/sh", "-c", echoProgram)
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.path)
		return cmd
	})
	notify.wait(t, "READY=1")
	old := testpeer.Dial(t, addr, "127.0.0.9")
	old.Await(t, "220 mx.example.test ESMTP")
	passed := testpeer.Dial(t, addr, "127.0.0.2")
	passed.Await(t, "220 child ip=127.0.0.2")

	testpeer.WriteFile(t, dir, "deny", "127.0.0.10 New list\n")
	p.Cmd.Process.Signal(syscall.SIGHUP)
	notify.wait(t, "RELOADING=1")
	ready := notify.wait(t, "READY=1")
	if !strings.Contains(ready, "STATUS=2 connections, 1 refusing, 1 children; 1 passed, 0 refused") {
		t.Errorf("status after the reload: %q", ready)
	}
	testpeer.WaitOutput(t, p, "msg=reloaded")

	old.Send(t, dialogue+"QUIT\r\n")
	old.Await(t, "554 5.7.1 Old list")
	old.Await(t, "221 ")
	passed.Send(t, "still here\n")
	passed.Await(t, "250 got still here")

	testpeer.Dial(t, addr, "127.0.0.9").Await(t, "220 child ip=127.0.0.9")
	now := testpeer.Dial(t, addr, "127.0.0.10")
	now.Send(t, dialogue)
	now.Await(t, "554 5.7.1 New list")

	testpeer.WriteFile(t, dir, "deny", "this is not a network\n")
	p.Cmd.Process.Signal(syscall.SIGHUP)
	testpeer.WaitOutput(t, p, "reload failed: keeping the old lists")
	notify.wait(t, "READY=1")
	still := testpeer.Dial(t, addr, "127.0.0.10")
	still.Send(t, dialogue)
	still.Await(t, "554 5.7.1 New list")
	if !strings.Contains(p.Output(), deny+":1") {
		t.Errorf("the log does not say which line is bad:\n%s", p.Output())
	}
}

// SIGTERM with dialogues in progress: no new client is taken, a dialogue
// that ends within --shutdown-timeout ends normally, one that goes on gets
// 421 4.3.2 at the timeout, and a passed session outlives mxfront.
func TestStop(t *testing.T) {
	b := build(t)
	notify := listenNotify(t)
	addr, p := serve(t, func(addr string) *exec.Cmd {
		cmd := exec.Command(b.mxfront, "serve", "--listen", addr, "--hostname", "mx.example.test", "--deny", "127.0.0.9",
			"--shutdown-timeout", "2s", "--", "/bin/sh", "-c", echoProgram)
		cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.path)
		return cmd
	})
	quick := testpeer.Dial(t, addr, "127.0.0.9")
	quick.Await(t, "220 mx.example.test ESMTP")
	slow := testpeer.Dial(t, addr, "127.0.0.9")
	slow.Await(t, "220 mx.example.test ESMTP")
	slow.Send(t, "EHLO client.example.org\r\n")
	slow.Await(t, "250 8BITMIME")
	passed := testpeer.Dial(t, addr, "127.0.0.2")
	passed.Await(t, "220 child ip=127.0.0.2")

	t0 := time.Now()
	p.Cmd.Process.Signal(syscall.SIGTERM)
	notify.wait(t, "STOPPING=1")
	// The listener closes as STOPPING=1 is sent.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("new clients are still accepted after SIGTERM")
		}
	}
	quick.Send(t, dialogue+"QUIT\r\n")
	quick.Await(t, "554 5.7.1")
	quick.Await(t, "221 ")
	if l := slow.Line(t); l != "421 4.3.2 mx.example.test Service shutting down, try again later" {
		t.Errorf("at the shutdown timeout: %q", l)
	}
	// Process.Wait, not Cmd.Wait: the passed session still holds the
	// output pipe (its stderr is mxfront's).
	done := make(chan *os.ProcessState, 1)
	go func() { st, _ := p.Cmd.Process.Wait(); done <- st }()
	select {
	case st := <-done:
		if st == nil || !st.Success() {
			t.Fatalf("mxfront serve exited with %v", st)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("mxfront serve did not stop")
	}
	if took := time.Since(t0); took < time.Second || took > 15*time.Second {
		t.Errorf("stopped %v after SIGTERM with --shutdown-timeout 2s", took)
	}
	passed.Send(t, "after mxfront\n")
	passed.Await(t, "250 got after mxfront")
	if !strings.Contains(p.Output(), "end=shutdown") || !strings.Contains(p.Output(), "end=quit") {
		t.Errorf("log lines of the two dialogues:\n%s", p.Output())
	}
}
