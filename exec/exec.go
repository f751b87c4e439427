// Package exec hands a client's connection to the real SMTP server: in place
// (chain mode: the connection onto fds 0 and 1, every other fd closed on
// exec, then execve, so no process stays in the middle) or as a child
// (serve mode). It knows nothing of SMTP or of the checks.
package exec

import (
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// LookPath finds PROGRAM as execvp would.
func LookPath(program string) (string, error) {
	p, err := osexec.LookPath(program)
	if err != nil && errors.Is(err, osexec.ErrDot) {
		return p, nil // "./prog" is what the administrator wrote
	}
	return p, err
}

// Handover puts the connection (readFD for fd 0, writeFD for fd 1; the same
// socket for both, or two pipes) in place, in blocking mode, marks every
// fd above 2 close-on-exec, and execs path with argv and env. It returns
// only on failure, with the fds possibly moved: the caller answers 421 on
// fd 1 and exits.
func Handover(readFD, writeFD int, path string, argv, env []string) error {
	if err := moveFD(readFD, 0); err != nil {
		return err
	}
	if err := moveFD(writeFD, 1); err != nil {
		return err
	}
	for _, fd := range []int{readFD, writeFD} {
		if fd > 2 {
			unix.Close(fd)
		}
	}
	for _, fd := range []int{0, 1} {
		if err := unix.SetNonblock(fd, false); err != nil {
			return fmt.Errorf("fd %d: set blocking: %v", fd, err)
		}
	}
	closeOnExecAbove(2)
	if err := syscall.Exec(path, argv, env); err != nil {
		return fmt.Errorf("exec %s: %v", path, err)
	}
	return nil
}

// moveFD makes to a copy of from (not close-on-exec).
func moveFD(from, to int) error {
	if from == to {
		// Clear a close-on-exec flag systemd or Go may have set.
		_, err := unix.FcntlInt(uintptr(to), unix.F_SETFD, 0)
		return err
	}
	if err := unix.Dup3(from, to, 0); err != nil {
		return fmt.Errorf("dup fd %d onto %d: %v", from, to, err)
	}
	return nil
}

// closeOnExecAbove marks every fd above min close-on-exec, so PROGRAM
// inherits only fds 0, 1 and 2; if the exec fails, Go's own fds still work.
func closeOnExecAbove(min int) {
	if err := unix.CloseRange(uint(min+1), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return
	}
	// Kernels before 5.11: walk /proc/self/fd.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > min {
			unix.CloseOnExec(fd)
		}
	}
}

// Child is a started PROGRAM in serve mode.
type Child = osexec.Cmd

// Spawn starts path with conn as its fds 0 and 1 (in blocking mode), stderr
// as its fd 2 and env, in a process group of its own (a Ctrl-C meant for
// the caller in a terminal never reaches a session), as cred when it is not
// nil. The caller closes its own copy of conn and reaps the child with Wait.
func Spawn(conn *os.File, stderr *os.File, path string, argv, env []string, cred *syscall.Credential) (*Child, error) {
	// Fd() puts the descriptor in blocking mode, as PROGRAM expects.
	if err := unix.SetNonblock(int(conn.Fd()), false); err != nil {
		return nil, fmt.Errorf("set blocking: %v", err)
	}
	cmd := &osexec.Cmd{Path: path, Args: argv, Env: env, Stdin: conn, Stdout: conn, Stderr: stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Credential: cred}}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", path, err)
	}
	return cmd, nil
}
