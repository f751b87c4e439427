// Package control is the greylist's control protocol: it lets the
// administration commands work on a store that a long-running process
// holds open (serve mode's KeepOpen bbolt file, whose lock it never lets
// go). That process answers on a stream socket (Server) and the commands
// use a Remote, a greylist.Store whose every operation is one request on
// a connection of its own. It knows nothing of SMTP, nor of sockets' names
// and permissions (serve mode's business).
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mxfront/mxfront/greylist"
)

// A request is one JSON line; the answer is zero or more JSON lines of
// records (scan, expire) and then one final line, which carries the result
// or the error. Records travel as whole Unix seconds, as stores keep
// them (0: none), so that what a compare-and-swap compares is exactly what
// is stored.

// controlRequest is one request.
type controlRequest struct {
	Op  string `json:"op"` // ping, get, cas, delete, scan, expire, stats, compact
	Net string `json:"net,omitempty"`
	Old *wire  `json:"old,omitempty"`
	New *wire  `json:"new,omitempty"`
}

// wire is a record on the wire: Unix seconds, 0 for none.
type wire struct {
	First int64 `json:"first,omitempty"`
	Last  int64 `json:"last,omitempty"`
}

func toWire(r greylist.Record) *wire {
	if r.IsZero() {
		return nil
	}
	w := &wire{}
	if !r.FirstSeen.IsZero() {
		w.First = r.FirstSeen.Unix()
	}
	if !r.LastPass.IsZero() {
		w.Last = r.LastPass.Unix()
	}
	return w
}

func (w *wire) record() greylist.Record {
	var r greylist.Record
	if w == nil {
		return r
	}
	if w.First != 0 {
		r.FirstSeen = time.Unix(w.First, 0)
	}
	if w.Last != 0 {
		r.LastPass = time.Unix(w.Last, 0)
	}
	return r
}

// controlAnswer is one line of an answer: a record (Net set), or the final
// line (Done set).
type controlAnswer struct {
	Net     string `json:"net,omitempty"`
	Rec     *wire  `json:"rec,omitempty"`
	Done    bool   `json:"done,omitempty"`
	OK      bool   `json:"ok,omitempty"` // swapped, found
	N       int    `json:"n,omitempty"`  // records (stats), deleted (expire)
	Bytes   int64  `json:"bytes,omitempty"`
	Before  int64  `json:"before,omitempty"`
	After   int64  `json:"after,omitempty"`
	Path    string `json:"path,omitempty"` // ping: the store's file
	Err     string `json:"err,omitempty"`
	ErrKind string `json:"kind,omitempty"` // locked, damaged, closed: the sentinel the error wraps
}

// maxControlLine bounds a request line (a network and two records).
const maxControlLine = 4096

// Server answers the requests of Remote stores over Store.
type Server struct {
	Store greylist.Store
	// Changed, when set, is told each network whose record a request
	// deleted or replaced (so that a cache of passes can drop it).
	Changed func(netip.Prefix)
}

// ServeConn answers the one request on c and closes c. Each line of the
// request must come within timeout; ctx ends a long operation (a scan, an
// expire, a compaction).
func (h *Server) ServeConn(ctx context.Context, c net.Conn, timeout time.Duration) error {
	defer c.Close()
	in := bufio.NewReaderSize(c, maxControlLine)
	var req controlRequest
	if err := readLine(c, in, timeout, &req); err != nil {
		return h.answer(c, controlAnswer{Err: "greylist control: " + err.Error()})
	}
	var doomed map[netip.Prefix]wire
	if req.Op == "expire" {
		var err error
		if doomed, err = readDoomed(c, in, timeout); err != nil {
			return h.answer(c, controlAnswer{Err: "greylist control: expire: " + err.Error()})
		}
	}
	w := bufio.NewWriter(c)
	a := h.do(ctx, req, doomed, json.NewEncoder(w))
	a.Done = true
	if a.Err != "" {
		a.OK = false
	}
	if err := json.NewEncoder(w).Encode(a); err != nil {
		return err
	}
	return w.Flush()
}

// readLine reads one JSON line of at most maxControlLine into v, within
// timeout.
func readLine(c net.Conn, in *bufio.Reader, timeout time.Duration, v any) error {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	line, err := in.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			err = fmt.Errorf("a line over %d bytes", maxControlLine)
		}
		return fmt.Errorf("reading the request: %w", err)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("bad request: %v", err)
	}
	return nil
}

// readDoomed reads the records an expire request asks to delete, one
// line each ({net, rec}), up to a line {"done": true}.
func readDoomed(c net.Conn, in *bufio.Reader, timeout time.Duration) (map[netip.Prefix]wire, error) {
	doomed := map[netip.Prefix]wire{}
	for {
		var a controlAnswer
		if err := readLine(c, in, timeout, &a); err != nil {
			return nil, err
		}
		if a.Done {
			return doomed, nil
		}
		n, err := netip.ParsePrefix(a.Net)
		if err != nil {
			return nil, err
		}
		if a.Rec != nil {
			doomed[n] = *a.Rec
		}
	}
}

func (h *Server) answer(c net.Conn, a controlAnswer) error {
	a.Done = true
	return json.NewEncoder(c).Encode(a)
}

// do carries out req; records are streamed to enc.
func (h *Server) do(ctx context.Context, req controlRequest, doomed map[netip.Prefix]wire, enc *json.Encoder) controlAnswer {
	var a controlAnswer
	var n netip.Prefix
	switch req.Op {
	case "get", "cas", "delete":
		var err error
		if n, err = netip.ParsePrefix(req.Net); err != nil {
			return failed(fmt.Errorf("greylist control: %s: %v", req.Op, err))
		}
	}
	s := h.Store
	switch req.Op {
	case "ping":
		if c, ok := s.(greylist.Compacter); ok {
			a.Path = c.Path()
		}
	case "get":
		r, err := s.Get(ctx, n)
		if err != nil {
			return failed(err)
		}
		a.Rec = toWire(r)
	case "cas":
		ok, err := s.CompareAndSwap(ctx, n, req.Old.record(), req.New.record())
		if err != nil {
			return failed(err)
		}
		if a.OK = ok; ok {
			h.changed(n)
		}
	case "delete":
		ok, err := s.Delete(ctx, n)
		if err != nil {
			return failed(err)
		}
		if a.OK = ok; ok {
			h.changed(n)
		}
	case "scan":
		err := s.Scan(ctx, func(n netip.Prefix, r greylist.Record) error {
			return enc.Encode(controlAnswer{Net: n.String(), Rec: toWire(r)})
		})
		if err != nil {
			return failed(err)
		}
	case "expire":
		// Only the records the caller judged stale, if still as it saw
		// them, and the unreadable ones (which the store deletes anyway).
		var deleted []controlAnswer
		k, err := s.Expire(ctx, func(n netip.Prefix, r greylist.Record) bool {
			v, ok := doomed[n]
			if ok && v.record().Equal(r) {
				deleted = append(deleted, controlAnswer{Net: n.String(), Rec: &v})
				return true
			}
			return false
		})
		// Told once done: stale must not wait for the peer while the store
		// holds its lock.
		for _, d := range deleted {
			if e := enc.Encode(d); e != nil {
				return failed(e)
			}
		}
		a.N = k
		if err != nil {
			a.Err, a.ErrKind = err.Error(), errKind(err)
		}
	case "stats":
		st, err := s.Stats(ctx)
		if err != nil {
			return failed(err)
		}
		a.N, a.Bytes = st.Records, st.Bytes
	case "compact":
		c, ok := s.(greylist.Compacter)
		if !ok {
			return failed(errors.New("greylist control: compact: the store is not a file"))
		}
		r, err := c.Compact(ctx)
		if err != nil {
			return failed(err)
		}
		a.Before, a.After = r.Before, r.After
	default:
		return failed(fmt.Errorf("greylist control: unknown operation %q", req.Op))
	}
	return a
}

func (h *Server) changed(n netip.Prefix) {
	if h.Changed != nil {
		h.Changed(n)
	}
}

func failed(err error) controlAnswer { return controlAnswer{Err: err.Error(), ErrKind: errKind(err)} }

// errKind names the sentinel err wraps, so that the other side's error
// wraps it too.
func errKind(err error) string {
	switch {
	case errors.Is(err, greylist.ErrLocked):
		return "locked"
	case errors.Is(err, greylist.ErrDamaged):
		return "damaged"
	case errors.Is(err, greylist.ErrClosed):
		return "closed"
	}
	return ""
}

// RemoteOptions tune a Remote.
type RemoteOptions struct {
	// DialTimeout bounds each connect; zero means one second.
	DialTimeout time.Duration
	// Timeout bounds each operation that touches one record (get, cas,
	// delete, stats); zero means ten seconds. Scan, Expire and Compact
	// are bounded by their context only.
	Timeout time.Duration
}

// Remote is a Store kept by another process, reached on its control socket
// (Server); each operation is a connection of its own.
type Remote struct {
	closed atomic.Bool
	socket string
	path   string // the store's file, as the other side tells it
	o      RemoteOptions
}

var (
	_ greylist.Store     = (*Remote)(nil)
	_ greylist.Compacter = (*Remote)(nil)

	_ greylist.ExpireCounter = (*Remote)(nil)
)

// Dial returns the store behind the control socket at socket, having
// asked it once whether it answers. Its error wraps the dial's (e.g.
// fs.ErrNotExist, syscall.ECONNREFUSED: nothing listens there).
func Dial(ctx context.Context, socket string, o RemoteOptions) (*Remote, error) {
	if o.DialTimeout <= 0 {
		o.DialTimeout = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	r := &Remote{socket: socket, o: o}
	a, err := r.call(ctx, controlRequest{Op: "ping"}, true, nil)
	if err != nil {
		return nil, err
	}
	r.path = a.Path
	return r, nil
}

// Socket returns the control socket's name.
func (r *Remote) Socket() string { return r.socket }

// Path implements Compacter: the file of the store behind the socket.
func (r *Remote) Path() string { return r.path }

// Close implements Store: there is nothing to release, but the store is
// closed.
func (r *Remote) Close() error { r.closed.Store(true); return nil }

// Get implements Store.
func (r *Remote) Get(ctx context.Context, n netip.Prefix) (greylist.Record, error) {
	a, err := r.call(ctx, controlRequest{Op: "get", Net: n.String()}, true, nil)
	if err != nil {
		return greylist.Record{}, err
	}
	return a.Rec.record(), nil
}

// CompareAndSwap implements Store.
func (r *Remote) CompareAndSwap(ctx context.Context, n netip.Prefix, old, new greylist.Record) (bool, error) {
	a, err := r.call(ctx, controlRequest{Op: "cas", Net: n.String(), Old: toWire(old), New: toWire(new)}, true, nil)
	return a.OK, err
}

// Delete implements Store.
func (r *Remote) Delete(ctx context.Context, n netip.Prefix) (bool, error) {
	a, err := r.call(ctx, controlRequest{Op: "delete", Net: n.String()}, true, nil)
	return a.OK, err
}

// Scan implements Store. fn is called as the records arrive; it may call
// the store (each call is a connection of its own).
func (r *Remote) Scan(ctx context.Context, fn func(netip.Prefix, greylist.Record) error) error {
	_, err := r.call(ctx, controlRequest{Op: "scan"}, false, fn)
	return err
}

// Expire implements Store in two steps: a Scan, on which stale judges
// each record, then one request that deletes those it said yes to, each
// only if its record is still the one judged (one changed meanwhile, by a
// client that retried, stays), and the records that do not decode. A yes
// may thus not end in a deletion: see ExpireCounting.
func (r *Remote) Expire(ctx context.Context, stale func(netip.Prefix, greylist.Record) bool) (int, error) {
	return r.ExpireCounting(ctx, stale, nil)
}

// ExpireCounting implements greylist.ExpireCounter: Expire, telling deleted
// of each judged record deleted.
func (r *Remote) ExpireCounting(ctx context.Context, stale func(netip.Prefix, greylist.Record) bool, deleted func(netip.Prefix, greylist.Record)) (int, error) {
	var doomed []controlAnswer
	err := r.Scan(ctx, func(n netip.Prefix, rec greylist.Record) error {
		if stale(n, rec) {
			doomed = append(doomed, controlAnswer{Net: n.String(), Rec: toWire(rec)})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	doomed = append(doomed, controlAnswer{Done: true})
	a, err := r.call(ctx, controlRequest{Op: "expire"}, false, func(n netip.Prefix, rec greylist.Record) error {
		if deleted != nil {
			deleted(n, rec)
		}
		return nil
	}, doomed...)
	return a.N, err
}

// Stats implements Store.
func (r *Remote) Stats(ctx context.Context) (greylist.StoreStats, error) {
	a, err := r.call(ctx, controlRequest{Op: "stats"}, true, nil)
	return greylist.StoreStats{Records: a.N, Bytes: a.Bytes}, err
}

// Compact implements Compacter: the process behind the socket compacts
// the file it holds.
func (r *Remote) Compact(ctx context.Context) (greylist.Compacted, error) {
	a, err := r.call(ctx, controlRequest{Op: "compact"}, false, nil)
	return greylist.Compacted{Before: a.Before, After: a.After}, err
}

// call sends req (and the lines more) on a connection of its own and
// reads the answer, handing each record line to each (nil: none expected).
// short operations are bounded by Timeout.
func (r *Remote) call(ctx context.Context, req controlRequest, short bool, each func(netip.Prefix, greylist.Record) error, more ...controlAnswer) (controlAnswer, error) {
	if r.closed.Load() {
		return controlAnswer{}, greylist.ErrClosed
	}
	if short {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.o.Timeout)
		defer cancel()
	}
	d := net.Dialer{Timeout: r.o.DialTimeout}
	c, err := d.DialContext(ctx, "unix", r.socket)
	if err != nil {
		return controlAnswer{}, fmt.Errorf("greylist: control socket %s: %w", r.socket, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	w := bufio.NewWriter(c)
	enc := json.NewEncoder(w)
	err = enc.Encode(req)
	for _, m := range more {
		if err != nil {
			break
		}
		err = enc.Encode(m)
	}
	werr := errors.Join(err, w.Flush())
	dec := json.NewDecoder(bufio.NewReader(c))
	for {
		var a controlAnswer
		if err := dec.Decode(&a); err != nil {
			if werr != nil {
				// Refused before it read the request, it would have
				// answered why; it did not.
				err = werr
			} else if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // the other side closed without its final line
			}
			return controlAnswer{}, r.broken(ctx, req.Op, err)
		}
		if a.Done {
			if a.Err != "" {
				return a, remoteError{a.Err, a.ErrKind}
			}
			return a, nil
		}
		n, err := netip.ParsePrefix(a.Net)
		if err != nil {
			return controlAnswer{}, fmt.Errorf("greylist: control socket %s: %s: bad network in the answer: %v", r.socket, req.Op, err)
		}
		if each == nil {
			continue
		}
		if err := each(n, a.Rec.record()); err != nil {
			return controlAnswer{}, err
		}
	}
}

func (r *Remote) broken(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("greylist: control socket %s: %s: %w", r.socket, op, err)
}

// remoteError is an error of the other side, wrapping the same sentinel
// as there.
type remoteError struct{ msg, kind string }

func (e remoteError) Error() string { return e.msg }

func (e remoteError) Unwrap() error {
	switch e.kind {
	case "locked":
		return greylist.ErrLocked
	case "damaged":
		return greylist.ErrDamaged
	case "closed":
		return greylist.ErrClosed
	}
	return nil
}
