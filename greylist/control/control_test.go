package control_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/greylist/control"
	"github.com/mxfront/mxfront/greylist/control/controltest"
	"github.com/mxfront/mxfront/greylist/storetest"
)

var ctx = context.Background()

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "greylist.db") }

func openBolt(t testing.TB, path string, o greylist.BoltOptions) *greylist.Bolt {
	t.Helper()
	s, err := greylist.OpenBolt(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A Remote is a Store like any other, over memory and over a bbolt file
// held open.
func TestRemoteConforms(t *testing.T) {
	storetest.Run(t, func(t *testing.T) greylist.Store {
		return controltest.Dial(t, controltest.Serve(t, greylist.NewMemory(), nil))
	})
}

func TestRemoteOverKeptBoltConforms(t *testing.T) {
	storetest.Run(t, func(t *testing.T) greylist.Store {
		b := openBolt(t, dbPath(t), greylist.BoltOptions{KeepOpen: true})
		t.Cleanup(func() { b.Close() })
		return controltest.Dial(t, controltest.Serve(t, b, nil))
	})
}

// Through the socket, Compact compacts the file the other side holds, which
// then goes on with the new file; the other side is told of each change.
func TestRemoteCompactAndChanged(t *testing.T) {
	db := dbPath(t)
	b := openBolt(t, db, greylist.BoltOptions{KeepOpen: true})
	defer b.Close()
	var mu sync.Mutex
	var changed []netip.Prefix
	r := controltest.Dial(t, controltest.Serve(t, b, func(n netip.Prefix) {
		mu.Lock()
		changed = append(changed, n)
		mu.Unlock()
	}))
	if r.Path() != db {
		t.Errorf("Path() = %q, want %q", r.Path(), db)
	}
	p, err := greylist.NewPolicy(r, greylist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	n := netip.MustParsePrefix("192.0.2.0/24")
	if err := p.Allow(ctx, n); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(db)
	c, err := r.Compact(ctx)
	if err != nil || c.Before != before.Size() || c.After <= 0 {
		t.Fatalf("Compact = %+v, %v (the file had %d bytes)", c, err, before.Size())
	}
	after, _ := os.Stat(db)
	if os.SameFile(before, after) {
		t.Fatal("the file was not replaced")
	}
	// The holder writes to the new file: a second store sees it once the
	// holder lets go.
	if ok, err := r.Delete(ctx, n); err != nil || !ok {
		t.Fatalf("Delete after Compact = %v, %v", ok, err)
	}
	if err := p.Allow(ctx, netip.MustParsePrefix("198.51.100.0/24")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	direct := openBolt(t, db, greylist.BoltOptions{})
	if got, _ := direct.Get(ctx, n); !got.IsZero() {
		t.Errorf("deleted through the socket, still in the file: %+v", got)
	}
	if got, _ := direct.Get(ctx, netip.MustParsePrefix("198.51.100.0/24")); got.IsZero() {
		t.Error("allowed through the socket after Compact, not in the file")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changed) != 3 || changed[0] != n || changed[1] != n {
		t.Errorf("changed = %v, want %v twice and then 198.51.100.0/24", changed, n)
	}
}

// The other side's errors keep their meaning; a socket where nothing
// listens is an error that says so.
func TestRemoteErrors(t *testing.T) {
	b := openBolt(t, dbPath(t), greylist.BoltOptions{KeepOpen: true})
	r := controltest.Dial(t, controltest.Serve(t, b, nil))
	b.Close()
	if _, err := r.Get(ctx, netip.MustParsePrefix("192.0.2.0/24")); !errors.Is(err, greylist.ErrClosed) {
		t.Errorf("Get on a closed store = %v, want ErrClosed", err)
	}
	if _, err := r.Compact(ctx); err == nil {
		t.Error("Compact on a closed store succeeded")
	}
	r = controltest.Dial(t, controltest.Serve(t, greylist.NewMemory(), nil))
	if _, err := r.Compact(ctx); err == nil || !strings.Contains(err.Error(), "not a file") {
		t.Errorf("Compact of memory = %v", err)
	}

	missing := filepath.Join(t.TempDir(), "none.sock")
	if _, err := control.Dial(ctx, missing, control.RemoteOptions{}); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("DialRemote(%s) = %v, want a not-exist error naming it", missing, err)
	}
	// A socket file whose listener is gone (serve killed).
	dir, _ := os.MkdirTemp("", "glc-")
	defer os.RemoveAll(dir)
	stale := filepath.Join(dir, "s")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := control.Dial(ctx, stale, control.RemoteOptions{}); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("DialRemote on a stale socket = %v, want ECONNREFUSED", err)
	}
}

// A client that connects and says nothing is dropped after the timeout;
// a request line that is too long or not JSON gets an error answer.
func TestControlServerBadRequests(t *testing.T) {
	h := &control.Server{Store: greylist.NewMemory()}
	for _, in := range []string{"", "not json\n", "{\"op\":\"fly\"}\n", strings.Repeat("x", 5000) + "\n", "{\"op\":\"get\",\"net\":\"nonsense\"}\n"} {
		a, b := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- h.ServeConn(ctx, a, 200*time.Millisecond) }()
		go b.Write([]byte(in))
		buf := make([]byte, 512)
		b.SetReadDeadline(time.Now().Add(10 * time.Second))
		k, _ := b.Read(buf)
		if !strings.Contains(string(buf[:k]), `"err":"greylist control: `) {
			t.Errorf("request %.20q: answer %q, want an error", in, buf[:k])
		}
		b.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("request %.20q: ServeConn did not return", in)
		}
	}
}

// A compaction through the socket of a big file makes decisions wait no
// longer than the store's lock timeout: they fail (and their client passes)
// rather than hang.
func TestKeptBoltDecisionsDoNotWaitForCompact(t *testing.T) {
	b := openBolt(t, dbPath(t), greylist.BoltOptions{KeepOpen: true, LockTimeout: time.Millisecond})
	defer b.Close()
	// Written by 64 goroutines at once: the store batches them.
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := g; i < 50000; i += 64 {
				n := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
				if _, err := b.CompareAndSwap(ctx, n, greylist.Record{}, greylist.Record{FirstSeen: time.Now()}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for range 50 {
		done := make(chan error, 1)
		go func() { _, err := b.Compact(context.Background()); done <- err }()
		met := false
		for !met {
			start := time.Now()
			_, err := b.Get(ctx, netip.MustParsePrefix("203.0.113.0/24"))
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("a Get waited %v beside a Compact", took)
			}
			if errors.Is(err, greylist.ErrLocked) {
				met = true // waited in vain, and said so
			} else if err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				done = nil
			default:
			}
			if done == nil {
				break
			}
		}
		if done != nil {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if met {
			return
		}
	}
	t.Fatal("in 50 compactions no Get met one: the test proves nothing on this machine")
}
