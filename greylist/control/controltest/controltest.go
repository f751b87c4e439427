// Package controltest serves a greylist store on a control socket for
// tests, as mxfront serve does (without its peer-credential check).
package controltest

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/greylist/control"
)

// Serve serves s on a fresh control socket until the test ends and
// returns the socket's name; changed (may be nil) hears of every network
// a request changed.
func Serve(t testing.TB, s greylist.Store, changed func(netip.Prefix)) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "glc-") // short: a socket's name has 107 bytes at most
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	h := &control.Server{Store: s, Changed: changed}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { h.ServeConn(context.Background(), c, 5*time.Second) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		os.RemoveAll(dir)
	})
	return sock
}

// Dial is a Remote store over the socket, with the default options.
func Dial(t testing.TB, sock string) *control.Remote {
	t.Helper()
	r, err := control.Dial(context.Background(), sock, control.RemoteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
