package config

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/fail"
)

// maxSocketName is the longest name a unix socket can be bound to (its
// sockaddr holds 108 bytes, the last a NUL).
const maxSocketName = 107

// DialControl returns the store a serve holds, through its control socket
// (each operation bounded by timeout); its error wraps the dial's when no
// one answers. It is set by the executable that links the control client
// (mxfront-cli, whose admin commands use it): chain mode's lean mxfront
// links no socket code.
var DialControl func(ctx context.Context, socket string, timeout time.Duration) (greylist.Store, error)

// controlSocket is the control socket of the bbolt file at path:
// --control-socket, or the file's name and ".sock".
func controlSocket(o Options, path string) (string, error) {
	sock := o.String("control-socket")
	if sock == "" {
		sock = path + ".sock"
	}
	if len(sock) > maxSocketName {
		return "", fail.Usage("give a shorter --control-socket PATH, e.g. /run/mxfront/greylist.sock",
			"control socket %s: a unix socket's name has %d bytes at most", sock, maxSocketName)
	}
	return sock, nil
}

// openBolt opens the bbolt file at path for mode m. Serve mode holds it
// open (and answers the admin commands on sock); chain mode opens it per
// decision, waiting at most lock for its lock. An admin command (and mxfront check) uses the serve that
// answers on sock, or, when none does (sockErr says why), the file itself.
func openBolt(path, sock string, m Mode, lock time.Duration) (s greylist.Store, sockErr, err error) {
	switch m {
	case Serve:
		if dir := filepath.Dir(path); !isDir(dir) {
			return nil, nil, fail.Usage("create the directory, writable by mxfront's user, or give another --greylist-db",
				"--greylist-db %s: directory %s does not exist", path, dir)
		}
		b, err := greylist.OpenBolt(path, greylist.BoltOptions{KeepOpen: true})
		if err != nil {
			return nil, nil, fail.Temp("each mxfront serve holds its greylist file for its life: give each its own --greylist-db, or share a Redis store (--greylist-store)",
				explainLocked(err, path, "", nil))
		}
		return b, nil, nil
	case Admin, Check:
		if DialControl == nil {
			break // no client linked: the file itself
		}
		ctx, cancel := context.WithTimeout(context.Background(), adminWait)
		defer cancel()
		r, err := DialControl(ctx, sock, adminWait)
		switch {
		case err == nil:
			return r, nil, nil
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			// No serve: the file itself, as chain mode does.
			sockErr = err
		default:
			return nil, nil, fail.Temp("run the command as the user mxfront serve runs as (or root), or stop serve to work on the file itself", err)
		}
	}
	wait := lock // --greylist-lock-timeout
	if m == Admin {
		wait = adminWait
	}
	b, err := greylist.OpenBolt(path, greylist.BoltOptions{LockTimeout: wait})
	if err != nil {
		return nil, nil, fail.Temp("", err)
	}
	return b, sockErr, nil
}

// heldHint is the hint of a file held by a process that does not answer on
// its control socket.
const heldHint = "a mxfront serve holds the greylist file for its life and answers `mxfront greylist` on its control socket: " +
	"give the --control-socket it runs with, or stop it to work on the file itself"

// explainLocked adds to an error that wraps greylist.ErrLocked who holds
// the file at path, and why its control socket sock did not serve
// (sockErr; nil: not asked).
func explainLocked(err error, path, sock string, sockErr error) error {
	if !errors.Is(err, greylist.ErrLocked) {
		return err
	}
	var who []string
	for _, h := range greylist.LockHolders(path) {
		who = append(who, h.String())
	}
	var more string
	if len(who) > 0 {
		more += "; held by " + strings.Join(who, ", ")
	}
	if sockErr != nil {
		more += fmt.Sprintf("; no one answers on its control socket: %v", sockErr)
	} else if sock != "" {
		more += "; its control socket would be " + sock
	}
	return fmt.Errorf("%w%s", err, more)
}

// Explain is err, an error of the store, with what an administrator needs
// to know: for a bbolt file whose lock was not had, who holds it and why
// its control socket did not serve.
func (g GreylistStore) Explain(err error) error {
	if _, ok := g.Store.(*greylist.Bolt); !ok || g.SocketErr == nil {
		return err
	}
	return explainLocked(err, g.Name, g.Socket, g.SocketErr)
}

// HeldHint is the hint of an error Explain gave a holder to, or "".
func (g GreylistStore) HeldHint(err error) string {
	if _, ok := g.Store.(*greylist.Bolt); ok && g.SocketErr != nil && errors.Is(err, greylist.ErrLocked) {
		return heldHint
	}
	return ""
}
