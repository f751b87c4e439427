package chain_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// fdLister is a PROGRAM that prints its environment and then its open fds:
// the hand-over must leave only 0, 1 and 2.
// (stat, not open: listing the directory would show the lister's own fd).
const fdLister = `env; printf FDS=; n=0; while [ $n -le 30 ]; do [ -e /proc/$$/fd/$n ] && printf '%s ' $n; n=$((n+1)); done; echo`

// checkHandover checks what PROGRAM saw: the ucspi-tcp names, the verdict,
// no LISTEN_* left over, and fds 0, 1, 2 only.
func checkHandover(t *testing.T, out, clientIP string) {
	t.Helper()
	env := envOf(out)
	want := map[string]string{
		"PROTO": "TCP", "TCPREMOTEIP": clientIP, "TCPLOCALIP": "127.0.0.1", "MXFRONT_VERDICT": "pass",
		"FDS": "0 1 2 ",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("PROGRAM saw %s=%q, want %q (all: %v)", k, env[k], v, env)
		}
	}
	digits := regexp.MustCompile(`^[0-9]+$`)
	for _, k := range []string{"TCPREMOTEPORT", "TCPLOCALPORT"} {
		if !digits.MatchString(env[k]) {
			t.Errorf("PROGRAM saw %s=%q", k, env[k])
		}
	}
	for _, k := range []string{"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} {
		if _, ok := env[k]; ok {
			t.Errorf("PROGRAM inherited %s", k)
		}
	}
}

// systemd socket activation, Accept=yes: the connection as fd 3
// (LISTEN_FDS=1), or as fd 0 with --inetd (StandardInput=socket).
func TestSystemdSocketActivate(t *testing.T) {
	b := build(t)
	ssa := testpeer.Need(t, "systemd-socket-activate")
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"fd 3", nil},
		{"inetd fd 0", []string{"--inetd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
			args := append([]string{"-l", addr, "--accept"}, tc.extra...)
			args = append(args, b.mxfront, "--deny", "127.0.0.66", "--log", "stderr", "--hostname", "mx.example.test",
				"--", "/bin/sh", "-c", fdLister)
			p := testpeer.Start(t, exec.Command(ssa, args...))
			waitOutput(t, p, "Listening on")
			checkHandover(t, session(t, addr, "127.0.0.3", nil, 10*time.Second), "127.0.0.3")
			refused(t, addr, "554 5.7.1 Client host [127.0.0.66]")
		})
	}
}

// The contrib units, as an administrator installs them: systemd-analyze
// verifies them, and their ListenStream/Accept/ExecStart run for real under
// systemd-socket-activate (paths and port replaced for the test).
func TestContribSystemdUnits(t *testing.T) {
	b := build(t)
	ssa := testpeer.Need(t, "systemd-socket-activate")
	analyze := testpeer.Need(t, "systemd-analyze")
	dir := t.TempDir()
	socket, service := testpeer.Contrib(t, "mxfront.socket"), testpeer.Contrib(t, "mxfront@.service")
	if !strings.Contains(socket, "\nAccept=yes\n") {
		t.Fatal("mxfront.socket is not Accept=yes")
	}
	inst := install(t, dir, b, "127.0.0.66 Refused by the contrib unit's deny file\n")
	service = inst.rewrite(service)
	testpeer.WriteFile(t, dir, "mxfront.socket", socket)
	testpeer.WriteFile(t, dir, "mxfront@.service", service)
	cmd := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, "mxfront.socket"), filepath.Join(dir, "mxfront@.service"))
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindStringSubmatch(service)
	if m == nil {
		t.Fatal("no ExecStart in mxfront@.service")
	}
	argv := testpeer.AsUnitUser(t, service, strings.Fields(m[1]))
	for i, a := range argv {
		if a == "journal" && argv[i-1] == "--log" {
			argv[i] = "stderr" // no journald in the test sandbox
		}
	}
	exposure(t, analyze, dir, "mxfront@.service")
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	p := testpeer.Start(t, exec.Command(ssa, append([]string{"-l", addr, "--accept"}, argv...)...))
	waitOutput(t, p, "Listening on")
	checkHandover(t, session(t, addr, "127.0.0.4", nil, 10*time.Second), "127.0.0.4")
	refused(t, addr, "554 5.7.1 Refused by the contrib unit's deny file\r\n")
}

// xinetd (nowait, server_args) with contrib/xinetd.d/mxfront: the
// connection is fds 0, 1 and 2; mxfront must not log into it.
func TestXinetd(t *testing.T) {
	b := build(t)
	xinetd := testpeer.Need(t, "xinetd")
	dir := t.TempDir()
	inst := install(t, dir, b, "127.0.0.66 Refused under xinetd\n")
	port := testpeer.FreePort(t)
	svc := testpeer.Contrib(t, "xinetd.d/mxfront")
	svc = inst.rewrite(svc)
	// Not port 25: an unlisted service on a free loopback port.
	svc = strings.Replace(svc, "service smtp\n{\n", fmt.Sprintf("service mxfront-test\n{\n\ttype = UNLISTED\n\tport = %d\n\tbind = 127.0.0.1\n", port), 1)
	conf := testpeer.WriteFile(t, dir, "xinetd.conf", "defaults\n{\n\tlog_type = FILE "+filepath.Join(dir, "xinetd.log")+"\n}\n"+svc)
	p := testpeer.Start(t, exec.Command(xinetd, "-dontfork", "-stayalive", "-f", conf, "-pidfile", filepath.Join(dir, "pid")))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testpeer.WaitTCP(t, addr, 10*time.Second)
	_ = p
	out := session(t, addr, "127.0.0.5", nil, 10*time.Second)
	checkHandover(t, out, "127.0.0.5")
	refused(t, addr, "554 5.7.1 Refused under xinetd\r\n")
}

// inetd (openbsd-inetd) with the line from contrib/inetd.conf, run as the
// mail user it names: the connection is fds 0, 1 and 2. (test/peers.sh
// unpacks it as openbsd-inetd: its package conflicts with xinetd's.)
func TestInetd(t *testing.T) {
	b := build(t)
	inetd := testpeer.Need(t, "openbsd-inetd")
	dir := t.TempDir()
	inst := install(t, dir, b, "127.0.0.66 Refused under inetd\n")
	port := testpeer.FreePort(t)
	var line string
	for _, l := range strings.Split(testpeer.Contrib(t, "inetd.conf"), "\n") {
		if strings.HasPrefix(l, "smtp") {
			line = l
		}
	}
	if line == "" {
		t.Fatal("no smtp line in contrib/inetd.conf")
	}
	// A second service with a deny file that is missing: a configuration
	// error under inetd, where fd 2 is the client's connection too.
	badPort := testpeer.FreePort(t)
	bad := strings.Replace(line, "smtp", fmt.Sprintf("127.0.0.1:%d", badPort), 1)
	bad = strings.Replace(inst.rewrite(bad), "--deny-file", "--deny-file "+filepath.Join(dir, "missing.deny")+" --deny-file", 1)
	line = strings.Replace(line, "smtp", fmt.Sprintf("127.0.0.1:%d", port), 1)
	line = inst.rewrite(line)
	conf := testpeer.WriteFile(t, dir, "inetd.conf", line+"\n"+bad+"\n")
	syslogged, haveLog := devLog(t)
	testpeer.Start(t, exec.Command(inetd, "-d", conf))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testpeer.WaitTCP(t, addr, 10*time.Second)
	checkHandover(t, session(t, addr, "127.0.0.6", nil, 10*time.Second), "127.0.0.6")
	refused(t, addr, "554 5.7.1 Refused under inetd\r\n")

	// The client hears 421 (it retries) and not a word of the error,
	// which goes to syslog.
	badAddr := fmt.Sprintf("127.0.0.1:%d", badPort)
	testpeer.WaitTCP(t, badAddr, 10*time.Second)
	got := session(t, badAddr, "127.0.0.6", nil, 10*time.Second)
	if !strings.HasPrefix(got, "421 4.3.0 ") || strings.Count(got, "\n") != 1 || strings.Contains(got, "mxfront:") {
		t.Fatalf("broken configuration under inetd: the client got %q, want one 421 line", got)
	}
	if !haveLog {
		t.Log("/dev/log belongs to this machine's syslog daemon: what mxfront logged is not checked")
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, want := range []string{`msg=refused ip=127.0.0.66 `, `msg="not started" error="--deny-file: open ` + filepath.Join(dir, "missing.deny")} {
		for !strings.Contains(syslogged(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("syslog never got %q; it got:\n%s", want, syslogged())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// devLog listens on /dev/log as a syslog daemon would, for the length of
// the test, and returns what it has heard so far. ok is false when
// /dev/log already exists: it is the machine's own daemon's.
func devLog(t *testing.T) (heard func() string, ok bool) {
	t.Helper()
	const path = "/dev/log"
	if _, err := os.Lstat(path); err == nil {
		return nil, false
	}
	pc, err := net.ListenPacket("unixgram", path)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, false // another make test's, made since the Lstat
	}
	if err != nil {
		t.Fatalf("listen on %s: %v", path, err)
	}
	_ = os.Chmod(path, 0o666) // mxfront runs as the mail user under inetd
	var mu sync.Mutex
	var got strings.Builder
	go func() {
		buf := make([]byte, 8192)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got.Write(buf[:n])
			got.WriteByte('\n')
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { pc.Close(); os.Remove(path) })
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return got.String()
	}, true
}

// contrib/mxfront-serve.socket and .service: verified by systemd-analyze,
// then run as systemd would (Accept=no, the listening socket as fd 3,
// NOTIFY_SOCKET) under systemd-socket-activate with two sockets.
func TestContribServeUnits(t *testing.T) {
	b := build(t)
	ssa := testpeer.Need(t, "systemd-socket-activate")
	analyze := testpeer.Need(t, "systemd-analyze")
	dir := t.TempDir()
	socket, service := testpeer.Contrib(t, "mxfront-serve.socket"), testpeer.Contrib(t, "mxfront-serve.service")
	if !strings.Contains(socket, "\nAccept=no\n") || !strings.Contains(service, "\nType=notify\n") {
		t.Fatal("mxfront-serve units are not Accept=no / Type=notify")
	}
	inst := install(t, dir, b, "127.0.0.66 Refused by the serve unit's deny file\n")
	service = inst.rewrite(service)
	testpeer.WriteFile(t, dir, "mxfront-serve.socket", socket)
	testpeer.WriteFile(t, dir, "mxfront-serve.service", service)
	cmd := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, "mxfront-serve.socket"), filepath.Join(dir, "mxfront-serve.service"))
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindStringSubmatch(service)
	argv := testpeer.AsUnitUser(t, service, strings.Fields(m[1]))
	for i, a := range argv {
		if a == "journal" && argv[i-1] == "--log" {
			argv[i] = "stderr"
		}
	}
	exposure(t, analyze, dir, "mxfront-serve.service")
	a1 := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	a2 := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	p := testpeer.Start(t, exec.Command(ssa, append([]string{"-l", a1, "-l", a2}, argv...)...))
	waitOutput(t, p, "Listening on "+a2)
	for _, addr := range []string{a1, a2} {
		checkHandover(t, session(t, addr, "127.0.0.7", nil, 10*time.Second), "127.0.0.7")
		refused(t, addr, "554 5.7.1 Refused by the serve unit's deny file\r\n")
	}
	// One process decided all four connections: serve, not a process each.
	if n := strings.Count(p.Output(), "Execing") + strings.Count(p.Output(), "Spawned"); n > 1 {
		t.Fatalf("systemd-socket-activate started %d processes:\n%s", n, p.Output())
	}
}

// exposure checks the unit's `systemd-analyze security` exposure level:
// below 5 ("OK" or better), for the hardening the unit documents.
func exposure(t *testing.T, analyze, dir, unit string) {
	t.Helper()
	if level, out := testpeer.Exposure(t, analyze, filepath.Join(dir, unit)); level >= 5 {
		t.Errorf("%s: exposure %.1f, want below 5:\n%s", unit, level, out)
	}
}

// installed is a contrib file's world in a test: a deny file and a PROGRAM
// (the fd lister) in a directory every user can read, standing in for
// /etc/mxfront/deny and /usr/sbin/exim4 -bs, and the built mxfront for
// /usr/sbin/mxfront.
type installed struct {
	mxfront, deny, program string
}

func install(t *testing.T, dir string, b bins, deny string) installed {
	t.Helper()
	// inetd runs mxfront as the mail user: t.TempDir and its parent are private.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	in := installed{mxfront: b.mxfront, deny: testpeer.WriteFile(t, dir, "deny", deny)}
	in.program = testpeer.WriteFile(t, dir, "program", "#!/bin/sh\nexec /bin/sh -c '"+strings.ReplaceAll(fdLister, "'", `'\''`)+"'\n")
	os.Chmod(in.program, 0o755)
	return in
}

// rewrite points a contrib file's paths at the test's.
func (in installed) rewrite(text string) string {
	return strings.NewReplacer("/usr/sbin/mxfront", in.mxfront, "/etc/mxfront/deny", in.deny,
		"/usr/sbin/exim4 -bs", in.program).Replace(text)
}

// refused checks that a client from 127.0.0.66 is greeted, refused at RCPT
// with want, and never sees a log line (fd 2 is the client under inetd).
func refused(t *testing.T, addr, want string) {
	t.Helper()
	in := []byte("EHLO x.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nQUIT\r\n")
	got := session(t, addr, "127.0.0.66", in, 10*time.Second)
	if !strings.HasPrefix(got, "220 ") || !strings.Contains(got, want) || strings.Contains(got, "level=") {
		t.Fatalf("denied client got %q, want %q", got, want)
	}
}
