package greylist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// BoltOptions tune a Bolt store.
type BoltOptions struct {
	// LockTimeout bounds every wait for the file's lock; a lock not had in
	// time is an error wrapping ErrLocked. Zero means one second.
	LockTimeout time.Duration

	// KeepOpen opens the file once, holding its exclusive lock until Close,
	// for a process that owns the file alone (benchmarks, tools). Without it, every operation opens the
	// file, takes the lock it needs and closes the file again, so that many
	// short-lived processes can share it.
	KeepOpen bool

	// Mode is the permission of a file the store creates; zero means 0600.
	Mode os.FileMode
}

// DefaultLockTimeout is the LockTimeout used when none is given.
const DefaultLockTimeout = time.Second

// ErrLocked is wrapped by the error of an operation that did not get the
// file's lock within BoltOptions.LockTimeout.
var ErrLocked = errors.New("lock not had")

// Bolt is a Store in one bbolt file, shared by the processes that use it.
//
// Without KeepOpen (chain mode, admin commands) an operation that only reads
// opens the file read-only under a shared lock, so readers never wait for
// each other; only an operation that changes something opens it for writing
// under the exclusive lock. Each open waits at most LockTimeout. A decision
// for a known network is thus one open, one read transaction and one close;
// a missing or empty file reads as a store with no records and is created by
// the first write. Scan and Expire work in chunks, each under its own lock,
// so that no lock is held for long even on a million networks.
//
// With KeepOpen the process holds the exclusive lock for its life: other
// processes, admin commands included, then get ErrLocked. Serve mode does
// not use it: it opens the file per decision as chain mode does (its
// PassCache spares known clients the file), so that chain-mode processes
// and `mxfront greylist` can share the file with it. Writes
// from concurrent goroutines are batched into shared transactions.
//
// Any failure (a lock not had in time, a file that is not a database or is
// damaged, which wraps ErrDamaged, a full disk) is returned as an error; bbolt
// panics and memory faults on a damaged file are recovered into errors.
// bbolt commits are atomic, so a process killed at any point or a write
// that fails leaves the last committed state.
type Bolt struct {
	path string
	o    BoltOptions

	mu     sync.RWMutex // guards db and closed; Compact holds it to swap db
	db     *bolt.DB     // with KeepOpen; reopened lazily if a Compact failed
	closed bool
}

var _ Store = (*Bolt)(nil)

var bucket = []byte("networks")

// OpenBolt returns the store in the file at path. Without KeepOpen it does
// not touch the file; with it, it opens (creating) the file and holds it.
func OpenBolt(path string, o BoltOptions) (*Bolt, error) {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Mode == 0 {
		o.Mode = 0o600
	}
	b := &Bolt{path: path, o: o}
	if o.KeepOpen {
		if _, err := b.held(); err != nil {
			return nil, b.fail("open", err)
		}
	}
	return b, nil
}

// Path returns the file's name.
func (b *Bolt) Path() string { return b.path }

// Close implements Store. Without KeepOpen there is nothing to release.
func (b *Bolt) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.db == nil {
		return nil
	}
	err := b.db.Close()
	b.db = nil
	if err != nil {
		return b.fail("close", err)
	}
	return nil
}

// Get implements Store.
func (b *Bolt) Get(ctx context.Context, n netip.Prefix) (Record, error) {
	var r Record
	err := b.view(func(bk *bolt.Bucket) error {
		if bk == nil {
			return nil
		}
		v := bk.Get(networkKey(n))
		if v == nil {
			return nil
		}
		var err error
		r, err = decodeRecord(v)
		return err
	})
	if err != nil {
		return Record{}, b.fail("get "+n.String(), err)
	}
	return r, nil
}

// CompareAndSwap implements Store.
func (b *Bolt) CompareAndSwap(ctx context.Context, n netip.Prefix, old, new Record) (bool, error) {
	oldv, err := encodeRecord(old)
	if err != nil {
		return false, err
	}
	newv, err := encodeRecord(new)
	if err != nil {
		return false, err
	}
	k := networkKey(n)
	swapped, err := b.update(true, true, func(bk *bolt.Bucket) (bool, error) {
		if !bytes.Equal(bk.Get(k), oldv) {
			return false, nil
		}
		if newv == nil {
			return true, bk.Delete(k)
		}
		return true, bk.Put(k, newv)
	})
	if err != nil {
		return false, b.fail("compare-and-swap "+n.String(), err)
	}
	return swapped, nil
}

// Delete implements Store.
func (b *Bolt) Delete(ctx context.Context, n netip.Prefix) (bool, error) {
	k := networkKey(n)
	found, err := b.update(false, true, func(bk *bolt.Bucket) (bool, error) {
		if bk.Get(k) == nil {
			return false, nil
		}
		return true, bk.Delete(k)
	})
	if err != nil {
		return false, b.fail("delete "+n.String(), err)
	}
	return found, nil
}

// Chunk sizes of Scan and Expire: how much is done under one lock. Tests
// make them small.
var (
	scanChunk   = 1000
	expireChunk = 10000
)

// Scan implements Store, a chunk of records under each shared lock; fn is
// called with no lock held.
func (b *Bolt) Scan(ctx context.Context, fn func(netip.Prefix, Record) error) error {
	type item struct {
		n netip.Prefix
		r Record
	}
	var after []byte
	items := make([]item, 0, scanChunk)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		items, more := items[:0], false
		err := b.view(func(bk *bolt.Bucket) error {
			if bk == nil {
				return nil
			}
			c := bk.Cursor()
			for k, v := seekAfter(c, after); k != nil; k, v = c.Next() {
				if len(items) == scanChunk {
					more = true
					break
				}
				n, err := parseNetworkKey(k)
				if err != nil {
					return err
				}
				r, err := decodeRecord(v)
				if err != nil {
					return fmt.Errorf("%v: %w", n, err)
				}
				items = append(items, item{n, r})
				after = append(after[:0], k...)
			}
			return nil
		})
		if err != nil {
			return b.fail("scan", err)
		}
		for _, it := range items {
			if err := fn(it.n, it.r); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

// Expire implements Store, a chunk of records under each exclusive lock; a
// chunk with nothing to delete writes nothing.
func (b *Bolt) Expire(ctx context.Context, stale func(netip.Prefix, Record) bool) (int, error) {
	var after []byte
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		more, deleted := false, 0
		_, err := b.update(false, false, func(bk *bolt.Bucket) (bool, error) {
			more, deleted = false, 0
			var doomed [][]byte
			c := bk.Cursor()
			examined := 0
			for k, v := seekAfter(c, after); k != nil; k, v = c.Next() {
				if examined == expireChunk {
					more = true
					break
				}
				examined++
				after = append(after[:0], k...)
				n, err := parseNetworkKey(k)
				if err == nil {
					var r Record
					if r, err = decodeRecord(v); err == nil && !stale(n, r) {
						continue
					}
				}
				doomed = append(doomed, bytes.Clone(k))
			}
			for _, k := range doomed {
				if err := bk.Delete(k); err != nil {
					return false, err
				}
			}
			deleted = len(doomed)
			return deleted > 0, nil
		})
		if err != nil {
			return total, b.fail("expire", err)
		}
		total += deleted
		if !more {
			return total, nil
		}
	}
}

// Stats implements Store; Bytes is the file's size.
func (b *Bolt) Stats(ctx context.Context) (StoreStats, error) {
	var st StoreStats
	err := b.view(func(bk *bolt.Bucket) error {
		if bk != nil {
			st.Records = bk.Stats().KeyN
		}
		return nil
	})
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(b.path); err == nil {
			st.Bytes = fi.Size()
		} else if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		return StoreStats{}, b.fail("stats", err)
	}
	return st, nil
}

// seekAfter positions c on the first key after the key after, or on the
// first key if after is nil.
func seekAfter(c *bolt.Cursor, after []byte) ([]byte, []byte) {
	if after == nil {
		return c.First()
	}
	k, v := c.Seek(after)
	if bytes.Equal(k, after) {
		return c.Next()
	}
	return k, v
}

// errNoChange rolls back a transaction that changed nothing, so that it
// writes nothing.
var errNoChange = errors.New("no change")

// errNoFile stands for a database file that does not exist yet or is empty:
// a store with no records.
var errNoFile = errors.New("no database yet")

// view runs fn in a read transaction; fn gets a nil bucket when there is
// nothing recorded yet.
func (b *Bolt) view(fn func(*bolt.Bucket) error) error {
	if b.o.KeepOpen {
		db, err := b.acquire()
		if err != nil {
			return err
		}
		defer b.mu.RUnlock()
		return guard(func() error {
			return db.View(func(tx *bolt.Tx) error { return fn(tx.Bucket(bucket)) })
		})
	}
	if b.isClosed() {
		return ErrClosed
	}
	db, err := b.open(true)
	if errors.Is(err, errNoFile) {
		return fn(nil)
	}
	if err != nil {
		return err
	}
	err = guard(func() error {
		return db.View(func(tx *bolt.Tx) error { return fn(tx.Bucket(bucket)) })
	})
	return errors.Join(err, db.Close())
}

// update runs fn in a write transaction and reports whether fn changed
// something. A store without a file gets one only if create is set. With
// KeepOpen and batch set, concurrent updates share a transaction (and fn
// may then run more than once).
func (b *Bolt) update(create, batch bool, fn func(*bolt.Bucket) (bool, error)) (changed bool, err error) {
	body := func(tx *bolt.Tx) error {
		changed = false
		bk, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		if changed, err = fn(bk); err == nil && !changed && !batch {
			err = errNoChange
		}
		return err
	}
	run := func(db *bolt.DB) error {
		err := guard(func() error {
			if batch && b.o.KeepOpen {
				return db.Batch(body)
			}
			return db.Update(body)
		})
		if errors.Is(err, errNoChange) {
			return nil
		}
		return err
	}
	if b.o.KeepOpen {
		db, err := b.acquire()
		if err != nil {
			return false, err
		}
		defer b.mu.RUnlock()
		err = run(db)
		return changed, err
	}
	if b.isClosed() {
		return false, ErrClosed
	}
	if !create {
		if fi, err := os.Stat(b.path); err == nil && fi.Size() == 0 || errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
	}
	db, err := b.open(false)
	if err != nil {
		return false, err
	}
	err = run(db)
	return changed && err == nil, errors.Join(err, db.Close())
}

func (b *Bolt) isClosed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.closed
}

// acquire returns the database a KeepOpen store holds with b.mu read-locked,
// reopening it first if need be; the caller unlocks.
func (b *Bolt) acquire() (*bolt.DB, error) {
	deadline := time.Now().Add(b.o.LockTimeout)
	for {
		if err := b.rlock(deadline); err != nil {
			return nil, err
		}
		if b.closed {
			b.mu.RUnlock()
			return nil, ErrClosed
		}
		if b.db != nil {
			return b.db, nil
		}
		b.mu.RUnlock()
		b.mu.Lock()
		_, err := b.held()
		b.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// rlock read-locks b.mu, waiting until deadline at most: a Compact holds
// it for as long as the copy takes, and a decision must not wait longer
// than it would for the file's lock.
func (b *Bolt) rlock(deadline time.Time) error {
	pause := 100 * time.Microsecond
	for !b.mu.TryRLock() {
		left := time.Until(deadline)
		if left <= 0 {
			return errBeingCompacted
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, 5*time.Millisecond)
	}
	return nil
}

// held returns the database a KeepOpen store holds, opening it if a Compact
// left it closed. The caller holds b.mu.
func (b *Bolt) held() (*bolt.DB, error) {
	if b.closed {
		return nil, ErrClosed
	}
	if b.db != nil {
		return b.db, nil
	}
	db, err := b.open(false)
	if err != nil {
		return nil, err
	}
	err = guard(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(bucket)
			return err
		})
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	// A decision waits this long for others to share its transaction.
	db.MaxBatchDelay = 2 * time.Millisecond
	b.db = db
	return db, nil
}

// open opens the file, read-only under a shared lock or for writing under
// the exclusive one, waiting at most LockTimeout in all. Read-only, a
// missing or empty file is errNoFile.
//
// The file is checked to still be the one at path once the lock is had: a
// Compact may have renamed a new file over it while this process waited,
// and writing to the old one would lose the write. Compact holds the old
// file's shared lock until after the rename, so a writer that has the
// exclusive lock of the file at path keeps it there until it lets go.
func (b *Bolt) open(readOnly bool) (*bolt.DB, error) {
	deadline := time.Now().Add(b.o.LockTimeout)
	for {
		db, f, err := b.openOnce(readOnly, deadline)
		if err != nil {
			if readOnly && errors.Is(err, fs.ErrNotExist) {
				err = errNoFile
			}
			return nil, err
		}
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(b.path)
		if err1 == nil && err2 == nil && os.SameFile(fi, pi) {
			return db, nil
		}
		db.Close()
		if err1 != nil {
			return nil, err1
		}
		if err2 != nil && !errors.Is(err2, fs.ErrNotExist) {
			return nil, err2
		}
		if readOnly && err2 != nil {
			return nil, errNoFile
		}
		// Replaced: open the new file, within what is left of the wait.
		if !time.Now().Before(deadline) {
			return nil, fmt.Errorf("replaced while waiting for its lock: %w", bolterrors.ErrTimeout)
		}
	}
}

func (b *Bolt) openOnce(readOnly bool, deadline time.Time) (db *bolt.DB, f *os.File, err error) {
	opts := &bolt.Options{
		// Our own lock is had first, so bbolt's succeeds at once; never
		// zero, which is bbolt's "wait for ever".
		Timeout:      max(time.Until(deadline), time.Millisecond),
		ReadOnly:     readOnly,
		NoStatistics: true,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			file, err := openFile(name, flag, perm)
			if err != nil {
				return nil, err
			}
			if readOnly {
				// bbolt would try to initialise an empty file.
				if fi, err := file.Stat(); err == nil && fi.Size() == 0 {
					file.Close()
					return nil, errNoFile
				}
			}
			// bbolt's own wait polls every 50ms, so a waiter loses the
			// lock to others for long; take it here, polling briskly, and
			// bbolt's flock of the same open file then succeeds at once.
			if err := lock(file, !readOnly, deadline); err != nil {
				file.Close()
				return nil, err
			}
			f = file
			return file, nil
		},
	}
	defer func() {
		// bbolt may panic on a damaged file before it can close it.
		if r := recover(); r != nil {
			if f != nil {
				// Unlock explicitly: the mapping bbolt may have left
				// behind would keep the lock held after Close.
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}
			db, f, err = nil, nil, fmt.Errorf("%w: %v", ErrDamaged, r)
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	db, err = bolt.Open(b.path, b.o.Mode, opts)
	return db, f, err
}

// openFile opens a file without os.OpenFile, which would set up Go's
// network poller (epoll, an eventfd) for a file it cannot poll: work a
// chain-mode process would do only for this.
func openFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	fd, err := syscall.Open(name, flag|syscall.O_CLOEXEC, uint32(perm))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// lock takes the file's shared or exclusive lock, waiting until deadline.
//
// flock gives a waiting writer no priority: readers whose shared locks
// overlap (many chain-mode processes deciding at once on a loaded
// machine) can keep a writer out for ever, and its client would pass
// unsure. So the waits go through a turnstile: a writer holds an
// open-file-description lock on the file's first byte while it waits for
// the exclusive lock, and a reader passes that byte (a read lock taken and
// let go) before it asks for the shared one. While a writer waits no new
// reader starts, and the writer gets the file once the readers in it are
// done.
func lock(f *os.File, exclusive bool, deadline time.Time) error {
	if err := turnstile(f, exclusive, deadline); err != nil {
		return err
	}
	if exclusive {
		defer setOFDLock(f, unix.F_UNLCK)
	}
	return flockUntil(f, exclusive, deadline)
}

// turnstile waits until deadline for the turnstile's byte: a writer keeps
// it (the caller lets it go), a reader lets it go at once. A file system
// without OFD locks has no turnstile.
func turnstile(f *os.File, writer bool, deadline time.Time) error {
	typ := int16(unix.F_RDLCK)
	if writer {
		typ = unix.F_WRLCK
	}
	pause := 100 * time.Microsecond
	for {
		err := setOFDLock(f, typ)
		switch err {
		case nil:
			if !writer {
				return setOFDLock(f, unix.F_UNLCK)
			}
			return nil
		case unix.EAGAIN, unix.EACCES, unix.EINTR:
		default:
			return nil // EINVAL, ENOLCK, ...: no turnstile here
		}
		left := time.Until(deadline)
		if left <= 0 {
			return bolterrors.ErrTimeout
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// setOFDLock sets (without waiting) the open file description's lock of
// type typ on the file's first byte.
func setOFDLock(f *os.File, typ int16) error {
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 1})
}

// flockUntil takes the file's flock, shared or exclusive (bbolt's own lock,
// which it then takes again at once), polling briskly until deadline.
func flockUntil(f *os.File, exclusive bool, deadline time.Time) error {
	how := syscall.LOCK_SH | syscall.LOCK_NB
	if exclusive {
		how = syscall.LOCK_EX | syscall.LOCK_NB
	}
	pause := 100 * time.Microsecond
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return bolterrors.ErrTimeout
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// guard turns a panic or memory fault of bbolt on a damaged file into an
// error.
func guard(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrDamaged, r)
		}
	}()
	return fn()
}

// fail gives err the file's name, the operation and a meaning.
func (b *Bolt) fail(op string, err error) error {
	switch {
	case errors.Is(err, ErrClosed):
		return err
	case errors.Is(err, errCompacting), errors.Is(err, errBeingCompacted):
		return fmt.Errorf("greylist: %s: %s: %w within %v: %v", b.path, op, ErrLocked, b.o.LockTimeout, err)
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("greylist: %s: %s: %w within %v", b.path, op, ErrLocked, b.o.LockTimeout)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
		errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrInvalidMapping):
		return fmt.Errorf("greylist: %s: %s: %w: %v", b.path, op, ErrDamaged, err)
	case errors.Is(err, syscall.EFBIG), errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("greylist: %s: %s: disk full: %w", b.path, op, err)
	}
	return fmt.Errorf("greylist: %s: %s: %w", b.path, op, err)
}

// Compacted tells what Compact did.
type Compacted struct {
	Before, After int64 // file sizes
}

// Compact rewrites the database into a new file, its pages filled, and
// renames it over the old one, keeping the old file's owner and mode. A
// symbolic link at the path is followed: the file it names is replaced and
// the link stays.
//
// It is safe while other processes read, write, expire and compact the
// file, so that no write reported done is lost:
//   - Compactions take turns: each holds the exclusive lock of the file's
//     directory from before it opens the file until after its rename. Two
//     at once would copy the same file, and the second rename would drop
//     what was written to the first one's copy meanwhile.
//   - It copies and renames under the old file's shared lock, so no write
//     reaches the old file once the copy has begun; a writer waiting for
//     that lock sees the file replaced when it gets it and opens the new
//     one (see open). Readers go on meanwhile.
//
// Writers that wait longer than their LockTimeout fail (and pass their
// client), so compact at a quiet time: it takes about as long as reading
// the whole database. A compaction that finds another under way waits for
// it up to LockTimeout, then fails with ErrLocked. It needs room for a
// second copy beside the file. A KeepOpen store compacts the file it holds
// and reopens it; another process cannot compact a file that a KeepOpen
// store holds (ErrLocked).
func (b *Bolt) Compact(ctx context.Context) (Compacted, error) {
	var c Compacted
	if b.isClosed() {
		return c, ErrClosed
	}
	path, err := filepath.EvalSymlinks(b.path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil // nothing recorded yet
	}
	if err != nil {
		return c, b.fail("compact", err)
	}
	turn, err := lockDir(filepath.Dir(path), time.Now().Add(b.o.LockTimeout))
	if err != nil {
		return c, b.fail("compact", err)
	}
	defer turn.Close() // the next compaction's turn
	if b.o.KeepOpen {
		b.mu.Lock()
		defer b.mu.Unlock()
		src, err := b.held()
		if err != nil {
			return c, b.fail("compact", err)
		}
		c, err = b.compact(ctx, src, path)
		// The held file has been replaced, or not: reopen in either case so
		// that the store writes to the file at path.
		cerr := src.Close()
		b.db = nil
		if _, oerr := b.held(); err == nil {
			err = errors.Join(cerr, oerr)
		}
		if err != nil {
			return c, b.fail("compact", err)
		}
		return c, nil
	}
	src, err := b.open(true)
	if errors.Is(err, errNoFile) {
		return c, nil
	}
	if err != nil {
		return c, b.fail("compact", err)
	}
	c, err = b.compact(ctx, src, path)
	if err = errors.Join(err, src.Close()); err != nil {
		return c, b.fail("compact", err)
	}
	return c, nil
}

// errBeingCompacted is an operation of a KeepOpen store that waited in
// vain for its Compact to end.
var errBeingCompacted = errors.New("the file is being compacted")

// errCompacting is a compaction that waited in vain for another to end.
var errCompacting = errors.New("another compaction of a file in the same directory is under way")

// lockDir takes the exclusive lock of directory dir, waiting until
// deadline; closing the file it returns lets go. A directory rather than a
// lock file: there is nothing to create, own or clean up, and whoever may
// compact (create and rename a file in dir) may open dir.
func lockDir(dir string, deadline time.Time) (*os.File, error) {
	f, err := openFile(dir, syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	// Only compactions take it: no readers to pass a turnstile.
	if err := flockUntil(f, true, deadline); err != nil {
		f.Close()
		if errors.Is(err, bolterrors.ErrTimeout) {
			err = errCompacting
		}
		return nil, err
	}
	return f, nil
}

// compact copies src, which the caller holds locked, into a new file and
// renames that over path, the file src was opened from.
func (b *Bolt) compact(ctx context.Context, src *bolt.DB, path string) (c Compacted, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return c, err
	}
	c.Before = fi.Size()
	dir, base := filepath.Split(path)
	tmp, err := os.CreateTemp(dir, base+".compact-*")
	if err != nil {
		return c, err
	}
	name := tmp.Name()
	tmp.Close()
	defer func() {
		if err != nil {
			os.Remove(name)
		}
	}()
	dst, err := bolt.Open(name, b.o.Mode, &bolt.Options{Timeout: b.o.LockTimeout, NoSync: true, NoStatistics: true})
	if err != nil {
		return c, err
	}
	err = guard(func() error { return copyRecords(ctx, dst, src) })
	if err == nil {
		err = dst.Sync()
	}
	if err = errors.Join(err, dst.Close()); err != nil {
		return c, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err = os.Chown(name, int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
			return c, err
		}
	}
	if err = os.Chmod(name, fi.Mode().Perm()); err != nil {
		return c, err
	}
	if nfi, err := os.Stat(name); err == nil {
		c.After = nfi.Size()
	}
	if err = os.Rename(name, path); err != nil {
		return c, err
	}
	return c, syncDir(dir)
}

// copyRecords copies every record of src into dst, in transactions of a
// bounded size, filling pages since the keys come in order.
func copyRecords(ctx context.Context, dst, src *bolt.DB) error {
	return src.View(func(stx *bolt.Tx) error {
		sb := stx.Bucket(bucket)
		if sb == nil {
			return nil
		}
		c := sb.Cursor()
		k, v := c.First()
		for k != nil {
			if err := ctx.Err(); err != nil {
				return err
			}
			err := dst.Update(func(dtx *bolt.Tx) error {
				db, err := dtx.CreateBucketIfNotExists(bucket)
				if err != nil {
					return err
				}
				db.FillPercent = 1
				for i := 0; k != nil && i < 100000; i++ {
					if err := db.Put(k, v); err != nil {
						return err
					}
					k, v = c.Next()
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func syncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
