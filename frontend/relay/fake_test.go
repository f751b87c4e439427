package relay

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	mxexec "github.com/mxfront/mxfront/exec"
	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/internal/logline"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// fakeServer is PROGRAM in the relay's unit tests: a small SMTP server in
// a goroutine on the socketpair's far end, which records what it heard.
// Real servers (exim4, mxsink) are test/relay's.
type fakeServer struct {
	mu       sync.Mutex
	lines    []string // command lines as received, line ends included
	messages []string // the raw octets of each message, end marker included
	env      []string
	starts   int
	// Behaviour.
	greeting string // default "220 fake ESMTP\r\n"
	ehlo     string // default: PIPELINING, CHUNKING, 8BITMIME
	dieAt    string // close the connection on a command starting with this
	tlsEcho  bool   // after STARTTLS, echo every octet
}

type fakeChild struct{ done chan struct{} }

func (c fakeChild) Wait() (mxexec.Status, error) { <-c.done; return 0, nil }

func (f *fakeServer) program() Program {
	return Program{Environ: []string{"PATH=/bin"}, Start: func(conn *os.File, env []string) (Started, error) {
		// The relay closes its copy of the far end: the fake keeps one.
		fd, err := unix.Dup(int(conn.Fd()))
		if err != nil {
			return nil, err
		}
		c := os.NewFile(uintptr(fd), "fake")
		f.mu.Lock()
		f.env = env
		f.starts++
		f.mu.Unlock()
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer c.Close()
			f.serve(c)
		}()
		return fakeChild{done}, nil
	}}
}

func (f *fakeServer) serve(c *os.File) {
	r := bufio.NewReader(c)
	say := func(s string) { _, _ = io.WriteString(c, s) }
	g := f.greeting
	if g == "" {
		g = "220 fake ESMTP\r\n"
	}
	say(g)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f.mu.Lock()
		f.lines = append(f.lines, line)
		f.mu.Unlock()
		cmd := strings.ToUpper(strings.TrimRight(line, "\r\n"))
		if f.dieAt != "" && strings.HasPrefix(cmd, f.dieAt) {
			return
		}
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			e := f.ehlo
			if e == "" {
				e = "250-fake\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
			}
			say(e)
		case strings.HasPrefix(cmd, "HELO"):
			say("250 fake\r\n")
		case strings.HasPrefix(cmd, "MAIL"):
			say("250 2.1.0 Ok\r\n")
		case strings.HasPrefix(cmd, "RCPT"):
			if strings.Contains(cmd, "SERVERREFUSES") {
				say("550 5.1.1 fake: no such user\r\n")
			} else {
				say("250 2.1.5 Ok\r\n")
			}
		case cmd == "DATA":
			say("354 go ahead\r\n")
			var msg []byte
			for !bytes.HasSuffix(msg, []byte("\r\n.\r\n")) && !bytes.Equal(msg, []byte(".\r\n")) {
				b, err := r.ReadByte()
				if err != nil {
					return
				}
				msg = append(msg, b)
			}
			f.mu.Lock()
			f.messages = append(f.messages, string(msg))
			f.mu.Unlock()
			say("250 2.0.0 queued as FAKE\r\n")
		case strings.HasPrefix(cmd, "AUTH"):
			say("334 \r\n")
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			f.mu.Lock()
			f.lines = append(f.lines, l)
			f.mu.Unlock()
			if strings.TrimSpace(l) == "*" {
				say("501 5.7.0 cancelled\r\n")
			} else {
				say("235 2.7.0 Authentication successful\r\n")
			}
		case cmd == "STARTTLS":
			say("220 2.0.0 Ready to start TLS\r\n")
			if f.tlsEcho {
				_, _ = io.Copy(c, r)
				return
			}
		case cmd == "RSET", cmd == "NOOP":
			say("250 2.0.0 Ok\r\n")
		case cmd == "QUIT":
			say("221 2.0.0 Bye\r\n")
			return
		default:
			say("502 5.5.2 fake: not implemented\r\n")
		}
	}
}

func (f *fakeServer) heardLines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

func (f *fakeServer) heard() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.lines, "")
}

// run is one relayed session: the client sends in at once (pipelined)
// and then half-closes; run returns all the relay said, and its log.
type run struct {
	cfg     Config
	rules   *Rules
	verdict frontend.Verdict
	fake    *fakeServer
	ctx     context.Context
	in      string
	// interactive: instead of in, the test talks over conn.
	talk func(t *testing.T, conn *os.File, r *bufio.Reader)
}

type result struct {
	out string
	log string
	err error
}

func socketpair(t testing.TB) (*os.File, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[1], true); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fds[0]), "test-client"), os.NewFile(uintptr(fds[1]), "relay-client")
}

func (rn run) go_(t testing.TB) result {
	t.Helper()
	if rn.fake == nil {
		rn.fake = &fakeServer{}
	}
	var logs testpeer.Buffer
	rn.cfg.Log = logline.WriterLogger(&logs)
	if rn.cfg.Dialogue.Hostname == "" {
		rn.cfg.Dialogue.Hostname = "mx.example.test"
	}
	if rn.verdict.Action == 0 && rn.verdict.By == 0 {
		rn.verdict = frontend.Verdict{Action: frontend.Pass}
	}
	ctx := rn.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	r := New(rn.cfg, rn.rules)
	client, relayEnd := socketpair(t)
	defer client.Close()
	p := &frontend.Passed{Client: frontend.Client{Remote: netip.MustParseAddrPort("192.0.2.7:4000"), Local: netip.MustParseAddrPort("192.0.2.1:25")},
		Verdict: rn.verdict, Host: rn.cfg.Dialogue.Hostname}
	errc := make(chan error, 1)
	go func() {
		err := r.Session(ctx, relayEnd, p, rn.fake.program())
		relayEnd.Close()
		errc <- err
	}()
	_ = client.SetDeadline(time.Now().Add(60 * time.Second))
	var out string
	if rn.talk != nil {
		br := bufio.NewReader(client)
		rn.talk(t.(*testing.T), client, br)
		rest, _ := io.ReadAll(br)
		out = string(rest)
	} else {
		wrote := make(chan struct{})
		fd := int(client.Fd())
		go func() {
			defer close(wrote)
			_, _ = io.WriteString(client, rn.in)
			_ = syscall.Shutdown(fd, syscall.SHUT_WR)
		}()
		b, err := io.ReadAll(client)
		if err != nil {
			t.Fatalf("reading the relay: %v (got %q)", err, b)
		}
		<-wrote
		out = string(b)
	}
	var err error
	select {
	case err = <-errc:
	case <-time.After(60 * time.Second):
		t.Fatal("the session did not end")
	}
	return result{out: out, log: logs.String(), err: err}
}

// codes returns the reply codes of out, one per reply (a multi-line
// reply once), in order.
func codes(out string) []string {
	var cs []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n") {
		if len(l) >= 4 && l[3] == '-' {
			continue
		}
		if len(l) >= 3 {
			cs = append(cs, l[:3])
		}
	}
	return cs
}
