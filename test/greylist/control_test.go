package greylist_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// Users of these tests, by number: no passwd entry is needed to run as
// one, nor to be told apart by SO_PEERCRED.
const (
	nobody    = 65534
	stranger  = 42420 // neither the file's owner nor in its group
	sharedGID = 42421 // the group of a file made 0660
)

// runAs runs `mxfront greylist ARGS... --greylist-db DB` as uid and gid
// (and the supplementary groups), returning its output and exit code.
func runAs(t *testing.T, b bins, uid, gid uint32, groups []uint32, db string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.mxfront, append(append([]string{"greylist"}, args...), "--greylist-db", db)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return out.String(), code
}

// needRoot skips a test that must start processes as other users, unless
// in CI, where the suite runs as root.
func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if testpeer.InCI() {
			t.Fatal("this test runs processes as other users: run the suite as root")
		}
		t.Skip("needs root: runs processes as other users")
	}
}

func socketMode(t *testing.T, sock string) (os.FileMode, uint32, uint32) {
	t.Helper()
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatalf("control socket: %v", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("%s is %v, not a socket", sock, fi.Mode())
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode().Perm(), st.Uid, st.Gid
}

// mxfront serve holds its bbolt file open and answers the admin commands
// on a socket beside it, 0600 like the file: root and the file's owner may
// use it; anyone else is refused by the socket's permission and, were it
// loosened, by serve itself (SO_PEERCRED). A file made 0660 makes the
// socket 0660 with the file's group, whose members may use it (as their
// primary group or a supplementary one). When the file is held and no one
// answers on the socket an admin gives, the command fails (111) naming the
// socket and serve's process. serve removes its socket when it stops, and
// the commands then work on the file itself.
func TestServeControlSocket(t *testing.T) {
	needRoot(t)
	b := build(t)
	dir, err := os.MkdirTemp("", "mxfront-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755) // the other users may reach the socket
	db, sock := filepath.Join(dir, "greylist.db"), filepath.Join(dir, "greylist.db.sock")
	_, p := serve(t, b, "--greylist", "--greylist-db", db, "--log", "stderr", "--", b.mxsink)
	waitOutput(t, p, `msg="control socket" socket=`+sock)
	if mode, uid, _ := socketMode(t, sock); mode != 0o600 || uid != 0 {
		t.Fatalf("socket %v owned by %d, want 0600 and root's (the file's)", mode, uid)
	}
	if out, code := admin(t, b, db, "allow", "192.0.2.0/24"); code != 0 {
		t.Fatalf("allow as root: exit %d\n%s", code, out)
	}
	out, code := runAs(t, b, stranger, stranger, nil, db, "list")
	if code != 111 || !strings.Contains(out, sock) || !strings.Contains(out, "permission denied") {
		t.Fatalf("list as a stranger: exit %d (want 111, permission denied on the socket)\n%s", code, out)
	}
	os.Chmod(sock, 0o666) // loosened by mistake: serve still checks
	out, code = runAs(t, b, stranger, stranger, nil, db, "list")
	if code != 111 || !strings.Contains(out, fmt.Sprintf("uid %d", stranger)) || !strings.Contains(out, "may not use this socket") {
		t.Fatalf("list as a stranger on a loosened socket: exit %d (want 111, refused by serve)\n%s", code, out)
	}
	waitOutput(t, p, `msg="control socket: peer refused"`)

	// Held, and the admin asks at another socket: a clear error, soon.
	start := time.Now()
	out, code = admin(t, b, db, "list", "--control-socket", filepath.Join(dir, "elsewhere.sock"))
	pid := fmt.Sprintf("held by process %d (", p.Cmd.Process.Pid)
	if code != 111 || !strings.Contains(out, pid) || !strings.Contains(out, "elsewhere.sock") || !strings.Contains(out, "hint: a mxfront serve holds") {
		t.Fatalf("list at a socket where no one answers: exit %d (want 111, naming serve's pid and the socket)\n%s", code, out)
	}
	t.Logf("the held file's error came after %v", time.Since(start).Round(time.Millisecond))

	// Stopped: the socket goes, and the commands open the file.
	p.Stop()
	if _, err := os.Lstat(sock); err == nil {
		t.Fatal("serve left its socket behind")
	}
	if got := listed(t, b, db); got["192.0.2.0/24"] != "passing" {
		t.Fatalf("list on the file itself: %v", got)
	}

	// 0660 and a group: its members may.
	if err := os.Chown(db, 0, sharedGID); err != nil {
		t.Fatal(err)
	}
	os.Chmod(db, 0o660)
	_, p = serve(t, b, "--greylist", "--greylist-db", db, "--log", "stderr", "--", b.mxsink)
	waitOutput(t, p, `msg="control socket"`)
	if mode, _, gid := socketMode(t, sock); mode != 0o660 || gid != sharedGID {
		t.Fatalf("socket %v group %d, want 0660 and group %d (the file's)", mode, gid, sharedGID)
	}
	for _, c := range []struct {
		name   string
		gid    uint32
		groups []uint32
		ok     bool
	}{
		{"primary group", sharedGID, nil, true},
		{"supplementary group", stranger, []uint32{sharedGID}, true},
		{"no group of the file", stranger, nil, false},
	} {
		out, code := runAs(t, b, stranger, c.gid, c.groups, db, "stats")
		if ok := code == 0 && strings.Contains(out, "passing: 1\n"); ok != c.ok {
			t.Errorf("stats as a stranger with the file's group as %s: exit %d\n%s", c.name, code, out)
		}
	}
}

// mxfront serve run as an unprivileged user (as contrib's unit does, with
// its own state directory): it creates the file and the socket as that
// user; the user and root may use the socket.
func TestUnprivilegedServeControlSocket(t *testing.T) {
	needRoot(t)
	b := build(t)
	dir, err := os.MkdirTemp("", "mxfront-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	state := filepath.Join(dir, "state")
	os.Mkdir(state, 0o750)
	if err := os.Chown(state, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	db, sock := filepath.Join(state, "greylist.db"), filepath.Join(state, "greylist.db.sock")
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	cmd := exec.Command(b.mxfront, "serve", "--listen", addr, "--greylist", "--greylist-db", db, "--log", "stderr",
		"--hostname", "mx.example.test", "--", b.mxsink)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	p := testpeer.Start(t, cmd)
	waitOutput(t, p, `msg="control socket"`)
	if mode, uid, _ := socketMode(t, sock); mode != 0o600 || uid != nobody {
		t.Fatalf("socket %v owned by %d, want 0600 and %d's", mode, uid, nobody)
	}
	if out, code := admin(t, b, db, "allow", "127.0.0.0/24"); code != 0 {
		t.Fatalf("allow as root: exit %d\n%s", code, out)
	}
	out, code := swaks(t, addr, "127.0.0.9")
	mustPass(t, out, code, "a network allowed through the socket")
	out, code = runAs(t, b, nobody, nobody, nil, db, "remove", "127.0.0.0/24")
	if code != 0 || !strings.Contains(out, "removed 127.0.0.0/24") {
		t.Fatalf("remove as serve's user: exit %d\n%s", code, out)
	}
	out, code = swaks(t, addr, "127.0.0.9")
	mustGreylisted(t, out, code, "a network removed through the socket (at once: serve drops it from its cache)")
	out, code = runAs(t, b, nobody, nobody, nil, db, "compact")
	if code != 0 || !strings.Contains(out, "compacted "+db) {
		t.Fatalf("compact as serve's user: exit %d\n%s", code, out)
	}
	if fi, err := os.Stat(db); err != nil || fi.Sys().(*syscall.Stat_t).Uid != nobody {
		t.Fatalf("the compacted file is not %d's: %v", nobody, err)
	}
	if strings.Contains(p.Output(), "level=ERROR") {
		t.Fatalf("serve logged errors:\n%s", p.Output())
	}
}
