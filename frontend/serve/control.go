package serve

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mxfront/mxfront/greylist/control"
	"github.com/mxfront/mxfront/internal/logline"
)

// Control is serve mode's control socket: serve holds its bbolt greylist
// file open for its life (the file's lock with it), and the `mxfront
// greylist` commands reach that store here (control.Server and
// control.Remote speak on it).
//
// The socket takes the owner, the group and the permission (0600 or 0660)
// of the file it serves, so that whoever could open the file may use it,
// and no one else: each peer's credentials (SO_PEERCRED) are checked
// against them too, so a socket whose permission was loosened grants
// nothing more. Root and serve's own user always may.
type Control struct {
	Path    string // the socket's name
	Like    string // the file whose owner, group and permission it takes
	Handler *control.Server
	Log     *logline.Logger

	l     *net.UnixListener
	uid   uint32 // the socket's owner and group, as set
	gid   uint32
	group bool // its group may use it (0660)
	wg    sync.WaitGroup
	stop  context.CancelFunc
}

// controlConns bounds the control connections served at once (an admin
// command has one or two open at a time).
const controlConns = 16

// controlRequestTimeout bounds the wait for each line of a request.
const controlRequestTimeout = 10 * time.Second

// Listen binds the socket. A socket left at Path by a serve that died is
// replaced; one that answers, or a file that is not a socket, is an
// error. The socket is set up under a temporary name and renamed into
// place, so it never exists with a wider permission than its own.
func (c *Control) Listen() error {
	fi, err := os.Stat(c.Like)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.Path, err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st == nil {
		return fmt.Errorf("control socket %s: no owner for %s", c.Path, c.Like)
	}
	mode := fi.Mode().Perm()&0o060 | 0o600
	c.uid, c.gid, c.group = st.Uid, st.Gid, mode&0o060 != 0
	if err := c.clear(); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(c.Path), fmt.Sprintf(".%s.%d", filepath.Base(c.Path), os.Getpid()))
	if len(tmp) > 107 {
		tmp = c.Path // no room for a temporary name: bind in place
	}
	os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.Path, err)
	}
	l.SetUnlinkOnClose(false)
	err = c.own(tmp, mode)
	if err == nil && tmp != c.Path {
		if err = os.Rename(tmp, c.Path); err != nil {
			err = fmt.Errorf("control socket %s: %w", c.Path, err)
		}
	}
	if err != nil {
		l.Close()
		os.Remove(tmp)
		return err
	}
	c.l = l
	return nil
}

// own gives the socket at name the file's owner, group and permission.
func (c *Control) own(name string, mode os.FileMode) error {
	if err := os.Chmod(name, mode); err != nil {
		return fmt.Errorf("control socket %s: %w", c.Path, err)
	}
	// Only root (or CAP_CHOWN) may give it away; a serve running as the
	// file's owner has nothing to change.
	if err := os.Lchown(name, int(c.uid), int(c.gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("control socket %s: %w", c.Path, err)
	}
	if fi, err := os.Lstat(name); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			c.uid, c.gid = st.Uid, st.Gid
		}
	}
	return nil
}

// clear removes a dead serve's socket at Path.
func (c *Control) clear() error {
	fi, err := os.Lstat(c.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.Path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s: exists and is not a socket", c.Path)
	}
	if conn, err := net.DialTimeout("unix", c.Path, time.Second); err == nil {
		conn.Close()
		return fmt.Errorf("control socket %s: another process answers on it", c.Path)
	}
	if err := os.Remove(c.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket %s: %w", c.Path, err)
	}
	return nil
}

// Serve answers on the socket until Close. Call it after Listen.
func (c *Control) Serve(ctx context.Context) {
	ctx, c.stop = context.WithCancel(ctx)
	sem := make(chan struct{}, controlConns)
	c.wg.Go(func() {
		for {
			conn, err := c.l.AcceptUnix()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				c.Log.Error("control socket: accept failed", "socket", c.Path, "error", err.Error())
				select {
				case <-time.After(100 * time.Millisecond):
					continue
				case <-ctx.Done():
					return
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				conn.Close()
				return
			}
			c.wg.Go(func() {
				defer func() { <-sem }()
				c.serveConn(ctx, conn)
			})
		}
	})
}

func (c *Control) serveConn(ctx context.Context, conn *net.UnixConn) {
	if why := c.refuse(conn); why != "" {
		c.Log.Warn("control socket: peer refused", "socket", c.Path, "why", why)
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(conn, "{\"done\":true,\"err\":\"greylist control: %s\"}\n", why)
		conn.Close()
		return
	}
	// A stop ends a request even while it writes to a peer that reads
	// nothing.
	defer context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })()
	if err := c.Handler.ServeConn(ctx, conn, controlRequestTimeout); err != nil && ctx.Err() == nil {
		c.Log.Warn("control socket: request failed", "socket", c.Path, "error", err.Error())
	}
}

// refuse says why the peer on conn may not use the socket, or "".
func (c *Control) refuse(conn *net.UnixConn) string {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err.Error()
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return fmt.Sprintf("no peer credentials: %v", errors.Join(err, cerr))
	}
	switch {
	case cred.Uid == 0, cred.Uid == uint32(os.Geteuid()), cred.Uid == c.uid:
		return ""
	case c.group && (cred.Gid == c.gid || inGroup(cred.Pid, c.gid)):
		return ""
	}
	return fmt.Sprintf("uid %d (pid %d) may not use this socket", cred.Uid, cred.Pid)
}

// inGroup reports whether process pid has gid among its supplementary
// groups (SO_PEERCRED tells only the primary one).
func inGroup(pid int32, gid uint32) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Groups:"); ok {
			for _, g := range strings.Fields(v) {
				if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) == gid {
					return true
				}
			}
		}
	}
	return false
}

// Close stops answering, waits for the requests in progress (they end at
// once: their context is done) and removes the socket.
func (c *Control) Close() {
	if c == nil || c.l == nil {
		return
	}
	if c.stop != nil {
		c.stop()
	}
	c.l.Close()
	c.wg.Wait()
	os.Remove(c.Path)
}
