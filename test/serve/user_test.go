package serve_test

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// --user and --group: started as root, mxfront runs PROGRAM as the user
// (with the group, when given) and stays root itself, as it needs to start
// the next PROGRAM as that user.
func TestUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	b := build(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	daemon, err := user.LookupGroup("daemon")
	if err != nil {
		t.Skip("no group daemon")
	}
	for _, tc := range []struct {
		args     []string
		uid, gid string
	}{
		{[]string{"--user", "nobody"}, nobody.Uid, nobody.Gid},
		{[]string{"--user", "nobody", "--group", "daemon"}, nobody.Uid, daemon.Gid},
	} {
		addr, p := serve(t, func(addr string) *exec.Cmd {
			args := append(append([]string{"serve", "--listen", addr}, tc.args...), "--", "/bin/sh", "-c", echoProgram)
			return exec.Command(b.mxfront, args...)
		})
		got := testpeer.Dial(t, addr, "127.0.0.2").Await(t, "220 child")
		if want := " uid=" + tc.uid + " gid=" + tc.gid; !strings.HasSuffix(got, want) {
			t.Errorf("%v: PROGRAM said %q, want ...%q", tc.args, got, want)
		}
		status, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Cmd.Process.Pid) + "/status")
		if !strings.Contains(string(status), "\nUid:\t0\t0\t0\t0\n") {
			t.Errorf("mxfront itself is no longer root:\n%s", status)
		}
	}
}

// PROGRAM gets its connection and fd 2, nothing else serve inherited: a
// root-only file open on fds 3 to 7 in the launching shell never reaches
// it, across --user nobody.
func TestProgramGetsOnlyItsFds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	b := build(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(secret)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const program = `open=""; for i in 3 4 5 6 7 8 9; do [ -e /proc/self/fd/$i ] && open="$open $i"; done; echo "220 child open:$open uid=$(id -u)"; read x`
	for _, args := range [][]string{nil, {"--user", "nobody"}} {
		addr, _ := serve(t, func(addr string) *exec.Cmd {
			a := append(append([]string{"serve", "--listen", addr}, args...), "--", "/bin/sh", "-c", program)
			cmd := exec.Command(b.mxfront, a...)
			cmd.ExtraFiles = []*os.File{f, f, f, f, f} // fds 3 to 7
			return cmd
		})
		got := testpeer.Dial(t, addr, "127.0.0.2").Await(t, "220 child")
		if !strings.Contains(got, "220 child open: uid=") {
			t.Errorf("%v: PROGRAM has more than its connection: %q", args, got)
		}
	}
}

// Nothing that parses network input runs as root: serve started as nobody
// with CAP_SETUID and CAP_SETGID as ambient capabilities (as a unit's
// AmbientCapabilities= gives them) starts PROGRAM as --user daemon, and
// PROGRAM inherits none of those capabilities.
func TestUserWithoutRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to set up the capabilities")
	}
	b := build(t)
	setpriv := testpeer.Need(t, "setpriv")
	daemon, err := user.Lookup("daemon")
	if err != nil {
		t.Skip("no user daemon")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	const program = `echo "220 child uid=$(id -u) $(grep -E '^Cap(Eff|Prm|Inh|Amb):' /proc/self/status | tr -s '\t\n' ' ')"; read x`
	addr, p := serve(t, func(addr string) *exec.Cmd {
		return exec.Command(setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
			"--inh-caps=+setuid,+setgid", "--ambient-caps=+setuid,+setgid", "--",
			b.mxfront, "serve", "--listen", addr, "--user", "daemon", "--", "/bin/sh", "-c", program)
	})
	got := testpeer.Dial(t, addr, "127.0.0.2").Await(t, "220 child")
	if !strings.Contains(got, "uid="+daemon.Uid+" ") {
		t.Errorf("PROGRAM is not daemon: %q", got)
	}
	for _, set := range []string{"CapEff:", "CapPrm:", "CapInh:", "CapAmb:"} {
		if !strings.Contains(got, set+" 0000000000000000") {
			t.Errorf("PROGRAM holds capabilities (%s): %q", set, got)
		}
	}
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(p.Cmd.Process.Pid) + "/status")
	if !strings.Contains(string(status), "\nUid:\t"+nobody.Uid+"\t") {
		t.Errorf("mxfront does not run as nobody:\n%s", status)
	}
}
