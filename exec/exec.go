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
	CloseOnExecAbove(2)
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

// CloseOnExecAbove marks every fd above min close-on-exec, so PROGRAM
// inherits only fds 0, 1 and 2; if the exec fails, Go's own fds still work.
// Serve mode calls it at start: an fd its launcher left open (a root-only
// file on fd 7) must not reach every PROGRAM it starts.
func CloseOnExecAbove(min int) {
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

// Child is a PROGRAM started by Spawn.
type Child struct {
	Pid   int
	pidfd *os.File // pollable; nil where the kernel gives none
}

// Spawn starts path with conn as its fds 0 and 1 (in blocking mode), stderr
// as its fd 2 and env, in a process group of its own (a Ctrl-C meant for
// the caller in a terminal never reaches a session), as cred when it is not
// nil. The caller closes its own copy of conn and reaps the child with
// Wait. It is syscall.ForkExec, not os/exec: the child needs nothing of
// os/exec's, and its pidfd is kept for Wait.
func Spawn(conn *os.File, stderr *os.File, path string, argv, env []string, cred *syscall.Credential) (*Child, error) {
	return SpawnFD(int(conn.Fd()), stderr, path, argv, env, cred)
}

// SpawnFD is Spawn on the connection's fd itself (serve mode passes a
// net.Conn's own fd rather than a dup of it: the fd's open file, and so
// its blocking mode, is the child's from then on).
func SpawnFD(fd int, stderr *os.File, path string, argv, env []string, cred *syscall.Credential) (*Child, error) {
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, fmt.Errorf("set blocking: %v", err)
	}
	pidfd := -1
	attr := &syscall.ProcAttr{Env: env, Files: []uintptr{uintptr(fd), uintptr(fd), stderr.Fd()},
		Sys: &syscall.SysProcAttr{Setpgid: true, Credential: cred, PidFD: &pidfd}}
	var pid int
	var err error
	onSpawnThread(func() { pid, err = syscall.ForkExec(path, argv, attr) })
	if err != nil {
		return nil, fmt.Errorf("start %s: %v", path, err)
	}
	c := &Child{Pid: pid}
	// A non-blocking pidfd is readable once the child has exited: Go's
	// poller waits for it, and no thread is held per running child.
	if pidfd >= 0 {
		if unix.SetNonblock(pidfd, true) == nil {
			c.pidfd = os.NewFile(uintptr(pidfd), "pidfd")
		} else {
			unix.Close(pidfd)
		}
	}
	return c, nil
}

// PidFDs reports whether the kernel gives pidfds (Linux 5.4 on), so that
// Wait holds no thread.
func PidFDs() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// Wait waits for the child to exit and reaps it. With a pidfd the wait is
// done in Go's poller; without one (kernels before 5.4) it holds a thread.
func (c *Child) Wait() (Status, error) {
	var ws syscall.WaitStatus
	reap := func() (bool, error) {
		for {
			pid, err := syscall.Wait4(c.Pid, &ws, syscall.WNOHANG, nil)
			switch {
			case err == syscall.EINTR:
				continue
			case err != nil:
				return true, fmt.Errorf("wait %d: %v", c.Pid, err)
			}
			return pid == c.Pid, nil
		}
	}
	if c.pidfd != nil {
		defer c.pidfd.Close()
		if rc, err := c.pidfd.SyscallConn(); err == nil {
			var werr error
			err = rc.Read(func(uintptr) bool {
				var done bool
				done, werr = reap()
				return done
			})
			if err == nil {
				return Status(ws), werr
			}
		}
	}
	for {
		pid, err := syscall.Wait4(c.Pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait %d: %v", c.Pid, err)
		}
		if pid == c.Pid {
			return Status(ws), nil
		}
	}
}

// Status is how a child ended.
type Status syscall.WaitStatus

// String says it as os.ProcessState does: "exit status 1", "signal:
// killed", "signal: segmentation fault (core dumped)".
func (s Status) String() string {
	ws := syscall.WaitStatus(s)
	var res string
	switch {
	case ws.Exited():
		res = "exit status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		res = "signal: " + ws.Signal().String()
	case ws.Stopped():
		res = "stop signal: " + ws.StopSignal().String()
	case ws.Continued():
		res = "continued"
	}
	if ws.CoreDump() {
		res += " (core dumped)"
	}
	return res
}
