package serve_test

import (
	"os"
	"os/exec"
	"os/user"
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
