package serve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// childScript is PROGRAM in these tests: it greets with what it was told
// and echoes the first line it reads, so a test sees both its environment
// and that no byte of the client's was lost on the way.
const childScript = `echo "220 child $TCPREMOTEIP $TCPLOCALIP socket=$MXFRONT_SOCKET"; read x; echo "250 got $x"`

type testServer struct {
	*Server
	addr   string
	log    *testpeer.Buffer
	cancel context.CancelFunc
	done   chan error
}

// newServer returns a Server on a loopback port refusing 127.0.0.8/29 (and
// 192.0.2.7) and passing everyone else to childScript; configure it, then
// call start.
func newServer(t *testing.T) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deny := &frontend.NetList{}
	for _, n := range []string{"127.0.0.8/29", "192.0.2.7"} {
		if err := deny.Add(n, "", "test"); err != nil {
			t.Fatal(err)
		}
	}
	log := &testpeer.Buffer{}
	s := &Server{
		Policy:    &frontend.Policy{Deny: deny},
		Dialogue:  frontend.DialogueConfig{Hostname: "mx.example.test"},
		Argv:      []string{"sh", "-c", childScript},
		Path:      "/bin/sh",
		Environ:   []string{"PATH=/usr/bin:/bin"},
		Log:       logline.WriterLogger(log),
		Stderr:    os.Stderr,
		Listeners: []net.Listener{l},
	}
	ts := &testServer{Server: s, addr: l.Addr().String(), log: log, done: make(chan error, 1)}
	t.Cleanup(func() {
		ts.stop()
		if t.Failed() {
			t.Logf("log:\n%s", log.String())
		}
	})
	return ts
}

func (ts *testServer) start() {
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() { ts.done <- ts.Serve(ctx) }()
}

func (ts *testServer) stop() {
	if ts.cancel != nil {
		ts.cancel()
		ts.cancel = nil
		<-ts.done
	}
}

// waitConns waits until the server counts n connections open.
func (ts *testServer) waitConns(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ts.Stats().Conns != n {
		if time.Now().After(deadline) {
			t.Fatalf("the server counts %d connections, want %d", ts.Stats().Conns, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Each limit answers 421 4.7.0 and closes; a place freed is given again.
func TestServeLimits(t *testing.T) {
	ts := newServer(t)
	ts.Limits = Limits{MaxConns: 4, MaxConnsPerIP: 2, MaxChildren: 1}
	ts.start()

	a := testpeer.Dial(t, ts.addr, "127.0.0.2")
	a.Expect(t, "220 child 127.0.0.2")
	b := testpeer.Dial(t, ts.addr, "127.0.0.3")
	b.Expect(t, "421 4.7.0 mx.example.test Error: too busy")
	ts.waitConns(t, 1)
	c := testpeer.Dial(t, ts.addr, "127.0.0.9")
	c.Expect(t, "220 mx.example.test ESMTP")
	d := testpeer.Dial(t, ts.addr, "127.0.0.9")
	d.Expect(t, "220 mx.example.test ESMTP")
	ts.waitConns(t, 3)
	e := testpeer.Dial(t, ts.addr, "127.0.0.9")
	e.Expect(t, "421 4.7.0 mx.example.test Error: too many connections from your address")
	ts.waitConns(t, 3)
	f := testpeer.Dial(t, ts.addr, "127.0.0.10")
	f.Expect(t, "220 mx.example.test ESMTP")
	ts.waitConns(t, 4)
	g := testpeer.Dial(t, ts.addr, "127.0.0.11")
	g.Expect(t, "421 4.7.0 mx.example.test Error: too many connections")

	// The passed session ends: its child's place and its connection's
	// place are free again.
	a.Send(t, "QUIT\r\n")
	a.Expect(t, "250 got QUIT")
	ts.waitConns(t, 3)
	h := testpeer.Dial(t, ts.addr, "127.0.0.3")
	h.Expect(t, "220 child 127.0.0.3")
	// The counters follow just after the child is started.
	want := Stats{Conns: 4, Refusing: 3, Children: 1, Passed: 2, Rejected: 3}
	for deadline := time.Now().Add(10 * time.Second); ts.Stats() != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %+v", ts.Stats(), want)
		}
	}
	for _, cl := range []*testpeer.Client{c, d, f, h} {
		cl.Close()
	}
	ts.waitConns(t, 0)
	if n := ts.tally.nets(); n != 0 {
		t.Errorf("%d networks still counted", n)
	}
	for _, want := range []string{"reason=max-children", "reason=max-conns-per-ip", "reason=max-conns\n"} {
		if !strings.Contains(ts.log.String(), want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

// On stop a dialogue that ends in time ends normally; one still going at
// the shutdown timeout gets 421 4.3.2; the listener takes no one new.
func TestServeShutdown(t *testing.T) {
	ts := newServer(t)
	ts.ShutdownTimeout = 500 * time.Millisecond
	ts.start()
	quick := testpeer.Dial(t, ts.addr, "127.0.0.9")
	quick.Expect(t, "220 ")
	slow := testpeer.Dial(t, ts.addr, "127.0.0.9")
	slow.Expect(t, "220 ")
	slow.Send(t, "EHLO client.example\r\n")
	slow.Expect(t, "250-")
	ts.waitConns(t, 2)
	t0 := time.Now()
	ts.cancel()
	quick.Send(t, "EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nQUIT\r\n")
	for {
		if l := quick.Line(t); strings.HasPrefix(l, "221 ") {
			break
		} else if strings.HasPrefix(l, "421") {
			t.Fatalf("a dialogue within the timeout got %q", l)
		}
	}
	for {
		if l := slow.Line(t); strings.HasPrefix(l, "421 ") {
			if l != "421 4.3.2 mx.example.test Service shutting down, try again later" {
				t.Errorf("last line %q", l)
			}
			break
		}
	}
	if err := <-ts.done; err != nil {
		t.Fatal(err)
	}
	ts.cancel = nil
	if took := time.Since(t0); took < 400*time.Millisecond || took > 10*time.Second {
		t.Errorf("stopped after %v with a timeout of 500ms", took)
	}
	if _, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		t.Error("still accepting after the stop")
	}
	if !strings.Contains(ts.log.String(), "end=shutdown") {
		t.Error("no end=shutdown in the log")
	}
}

// A connection keeps the rules it started with; new ones get the new.
func TestServeSetRules(t *testing.T) {
	ts := newServer(t)
	ts.start()
	old := testpeer.Dial(t, ts.addr, "127.0.0.9")
	old.Expect(t, "220 mx.example.test ESMTP")
	ts.SetRules(&frontend.Policy{}, ts.Dialogue)
	testpeer.Dial(t, ts.addr, "127.0.0.9").Expect(t, "220 child 127.0.0.9")
	old.Send(t, "HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n")
	old.Expect(t, "250 ")
	old.Expect(t, "250 ")
	old.Expect(t, "554 5.7.1 ")
}

// Listed proxies: the header's addresses are the client's in every check
// and for PROGRAM, and PROGRAM reads every byte after the header. A listed
// proxy without a header, and an unlisted peer with one, get 421.
func TestServeProxy(t *testing.T) {
	ts := newServer(t)
	ts.ProxyFrom = &frontend.NetList{}
	if err := ts.ProxyFrom.Add("127.0.0.1/32", "", "test"); err != nil {
		t.Fatal(err)
	}
	// An unlisted peer that sends a header before serve looks at it.
	early := testpeer.Dial(t, ts.addr, "127.0.0.2")
	early.Send(t, "PROXY TCP4 198.51.100.9 203.0.113.25 4444 25\r\n")
	time.Sleep(50 * time.Millisecond)
	ts.start()
	early.Expect(t, "421 4.7.0 mx.example.test Error: PROXY header from a peer not allowed")

	v1 := testpeer.Dial(t, ts.addr, "127.0.0.1")
	v1.Send(t, "PROXY TCP4 198.51.100.9 203.0.113.25 4444 25\r\nEHLO right.after.the.header\r\n")
	v1.Expect(t, "220 child 198.51.100.9 203.0.113.25")
	v1.Expect(t, "250 got EHLO right.after.the.header")

	v2 := testpeer.Dial(t, ts.addr, "127.0.0.1")
	v2.Send(t, string(proxyV2(1, 0x11, []byte{192, 0, 2, 7, 203, 0, 113, 25, 0x11, 0x5c, 0, 25})))
	v2.Expect(t, "220 mx.example.test ESMTP") // 192.0.2.7 is denied
	v2.Send(t, "HELO x.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n")
	v2.Expect(t, "250 ")
	v2.Expect(t, "250 ")
	v2.Expect(t, "554 5.7.1 Client host [192.0.2.7]")

	local := testpeer.Dial(t, ts.addr, "127.0.0.1")
	local.Send(t, string(proxyV2(0, 0, nil)))
	local.Expect(t, "220 child 127.0.0.1")

	none := testpeer.Dial(t, ts.addr, "127.0.0.1")
	none.Send(t, "EHLO no.header.example\r\n")
	none.Expect(t, "421 4.7.0 mx.example.test Error: no valid PROXY header")

	direct := testpeer.Dial(t, ts.addr, "127.0.0.3")
	direct.Expect(t, "220 child 127.0.0.3")
	v2.Close()
	ts.waitConns(t, 2) // the children of local and direct

	log := ts.log.String()
	for _, want := range []string{"ip=192.0.2.7", "reason=proxy-header", "reason=proxy-not-allowed"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s", want)
		}
	}
}

// MXFRONT_SOCKET names the systemd socket a client came in on.
func TestServeSocketName(t *testing.T) {
	ts := newServer(t)
	ts.Listeners[0] = SystemdListener{Listener: ts.Listeners[0], Name: "submission"}
	ts.start()
	testpeer.Dial(t, ts.addr, "127.0.0.2").Expect(t, "220 child 127.0.0.2 127.0.0.1 socket=submission")
}

// PROGRAM runs in a process group of its own: a Ctrl-C for mxfront in a
// terminal does not reach the sessions.
func TestServeChildProcessGroup(t *testing.T) {
	ts := newServer(t)
	ts.Argv = []string{"sh", "-c", `echo "220 pid=$$ pgrp=$(cut -d' ' -f5 /proc/$$/stat)"`}
	ts.start()
	got := testpeer.Dial(t, ts.addr, "127.0.0.2").Expect(t, "220 pid=")
	var pid, pgrp int
	if _, err := fmt.Sscanf(got, "220 pid=%d pgrp=%d", &pid, &pgrp); err != nil || pid != pgrp || pgrp == os.Getpid() {
		t.Errorf("PROGRAM said %q (mxfront's pid %d)", got, os.Getpid())
	}
}

// A client that sends and never reads cannot hold the shutdown: the
// dialogue's blocked write is cut short after the shutdown timeout.
func TestServeShutdownClientNotReading(t *testing.T) {
	ts := newServer(t)
	ts.ShutdownTimeout = 100 * time.Millisecond
	ts.Dialogue.MaxCommands = 1 << 30
	ts.Dialogue.CommandTimeout = time.Minute
	ts.start()
	c := testpeer.Dial(t, ts.addr, "127.0.0.9")
	c.Conn.(*net.TCPConn).SetReadBuffer(4096)
	go func() {
		noops := bytes.Repeat([]byte("NOOP\r\n"), 1<<14)
		for {
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(noops); err != nil {
				return
			}
		}
	}()
	// Wait until the server's writes are stuck: its reads stop too.
	time.Sleep(500 * time.Millisecond)
	t0 := time.Now()
	ts.cancel()
	select {
	case <-ts.done:
		ts.cancel = nil
	case <-time.After(20 * time.Second):
		t.Fatal("a client that does not read held the shutdown")
	}
	if took := time.Since(t0); took > 10*time.Second {
		t.Errorf("stopped after %v", took)
	}
}

// A bug in one connection's checks (here a store that panics) does not
// end serve: that client hears 421, its place is given back, and the next
// client is served.
func TestServeSurvivesPanic(t *testing.T) {
	ts := newServer(t)
	gp, err := greylist.NewPolicy(panicStore{greylist.NewMemory()}, greylist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts.Policy.Greylist = &frontend.Greylisting{Policy: gp}
	ts.start()
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), "421 4.3.0 mx.example.test Internal error") {
			t.Fatalf("client %d got %q", i, b)
		}
	}
	ts.waitConns(t, 0)
	if !strings.Contains(ts.log.String(), `msg="internal error: connection dropped"`) || !strings.Contains(ts.log.String(), "bug in a check") {
		t.Fatalf("no panic logged:\n%s", ts.log.String())
	}
}

// gateStore is a greylist store whose reads wait for the test: a decision
// that takes as long as the test wants.
type gateStore struct {
	greylist.Store
	entered chan struct{}
	release chan struct{}
}

func (g gateStore) Get(ctx context.Context, n netip.Prefix) (greylist.Record, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.Store.Get(ctx, n)
}

// A PROXY header from a peer not allowed to send one, sent after the
// accept looked (while the checks decide), is still refused before
// PROGRAM runs: it never becomes PROGRAM's client.
func TestServeLateProxyHeader(t *testing.T) {
	ts := newServer(t)
	ts.ProxyFrom = &frontend.NetList{}
	if err := ts.ProxyFrom.Add("127.0.0.1/32", "", "test"); err != nil {
		t.Fatal(err)
	}
	mem := greylist.NewMemory()
	gate := gateStore{Store: mem, entered: make(chan struct{}), release: make(chan struct{})}
	gp, err := greylist.NewPolicy(gate, greylist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ts.Policy.Greylist = &frontend.Greylisting{Policy: gp}
	// The client's network has passed before: it is passed (straight
	// from the store, which the gate holds).
	direct, _ := greylist.NewPolicy(mem, greylist.Config{})
	if err := direct.Allow(context.Background(), netip.MustParsePrefix("127.0.0.0/24")); err != nil {
		t.Fatal(err)
	}
	ts.start()
	late := testpeer.Dial(t, ts.addr, "127.0.0.2")
	<-gate.entered // deciding: the accept has looked already
	late.Send(t, "PROXY TCP4 198.51.100.9 203.0.113.25 4444 25\r\n")
	close(gate.release)
	late.Expect(t, "421 4.7.0 mx.example.test Error: PROXY header from a peer not allowed to send one")
	if strings.Contains(ts.log.String(), "msg=pass") {
		t.Errorf("the client was passed:\n%s", ts.log.String())
	}
}

// emfileListener fails its first accepts with EMFILE, as a listener does
// when the process is out of fds, then accepts for real.
type emfileListener struct {
	net.Listener
	fails int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Accept keeps running when it runs out of fds: it logs, backs off and
// serves the next client.
func TestAcceptBacksOff(t *testing.T) {
	ts := newServer(t)
	ts.Listeners[0] = &emfileListener{Listener: ts.Listeners[0], fails: 3}
	ts.start()
	c := testpeer.Dial(t, ts.addr, "127.0.0.2")
	c.Expect(t, "220 child 127.0.0.2")
	if n := strings.Count(ts.log.String(), `msg="accept failed"`); n != 3 || !strings.Contains(ts.log.String(), "too many open files") {
		t.Errorf("%d accept failures logged:\n%s", n, ts.log.String())
	}
}

// A connection goes to a worker that waits for one, which keeps the stack
// its last connection grew; a worker ends once idle for workerIdle.
func TestServeReusesWorkers(t *testing.T) {
	defer func(d time.Duration) { workerIdle = d }(workerIdle)
	quit := func(ts *testServer, i int) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}
		c, err := d.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "QUIT\r\n")
		if b, _ := io.ReadAll(c); !strings.Contains(string(b), "221 ") {
			t.Fatalf("client %d got %q", i, b)
		}
	}
	workerIdle = time.Hour
	ts := newServer(t)
	ts.start()
	for i := 0; i < 20; i++ {
		quit(ts, i)
		// The workers are back waiting before the next client connects.
		testpeer.Poll(t, "the workers wait", func() (bool, string) {
			idle, n := ts.idle.Load(), ts.workers.Load()
			return idle == n, fmt.Sprint(idle, " of ", n, " idle")
		})
	}
	// One worker serves them all, but a worker counts itself idle just
	// before it reaches its receive: a loaded machine can hand the next
	// client over in between, and a second worker starts (harmless).
	if n := ts.workersStarted.Load(); n > 3 {
		t.Fatalf("%d workers started for 20 clients one after another, want 1 (a few at most)", n)
	}
	ts.stop()
	testpeer.Poll(t, "the stopped server's worker ends", func() (bool, string) { n := ts.workers.Load(); return n == 0, fmt.Sprint(n, " workers") })

	workerIdle = 50 * time.Millisecond
	ts = newServer(t)
	ts.start()
	quit(ts, 0)
	testpeer.Poll(t, "the idle worker ends", func() (bool, string) { n := ts.workers.Load(); return n == 0, fmt.Sprint(n, " workers") })
}
