package serve

import (
	"bufio"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mxfront/mxfront/frontend"
)

// first is the greeting's first line as both modes write it.
var first = frontend.Reply{Code: 220, Text: "mx.example.test ESMTP"}

// tcpPair returns both ends of a real loopback TCP connection: the
// server's as a blocking *os.File (as chain mode gets fd 0) and as the
// net.Conn serve mode has, and the client's.
func tcpPair(t *testing.T) (server *net.TCPConn, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); s.Close() })
	return s.(*net.TCPConn), client
}

// greeter runs the greeting delay the way one mode does and returns what
// it made of the client; rest reads what is left in the socket after it.
type greeter struct {
	name  string
	greet func(t *testing.T, s *net.TCPConn, d time.Duration) frontend.Talk
}

var greeters = []greeter{
	{"chain", func(t *testing.T, s *net.TCPConn, d time.Duration) frontend.Talk {
		f, err := s.File() // a blocking dup, as fd 0 under tcpserver
		if err != nil {
			t.Fatal(err)
		}
		fd := int(f.Fd())
		defer f.Close()
		// The dup shares the file description: give the net.Conn back
		// its non-blocking mode, or its read deadlines do nothing.
		defer unix.SetNonblock(fd, true)
		talk, err := frontend.GreetFD(fd, fd, first, d)
		if err != nil && talk != frontend.HungUp {
			t.Fatal(err)
		}
		return talk
	}},
	{"serve", func(t *testing.T, s *net.TCPConn, d time.Duration) frontend.Talk {
		talk, err := (&serveConn{Conn: s}).Greet(first, d)
		if err != nil && talk != frontend.HungUp {
			t.Fatal(err)
		}
		return talk
	}},
}

// readGreeting reads the first greeting line as a client would.
func readGreeting(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "220-mx.example.test ESMTP\r\n" {
		t.Errorf("client got %q, %v; want the first line of a multi-line greeting", line, err)
	}
}

// restOf reads what the next reader of the server's socket gets.
func restOf(t *testing.T, s *net.TCPConn, n int) string {
	t.Helper()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(s, b); err != nil {
		t.Fatalf("next reader: %v (got %q)", err, b)
	}
	return string(b)
}

const ehlo = "EHLO client.example.org\r\n"

// An early talker is caught as soon as it speaks, and what it said is
// still in the socket for the next reader, every byte of it: the watching
// did not read.
func TestGreetEarlyTalker(t *testing.T) {
	for _, g := range greeters {
		t.Run(g.name, func(t *testing.T) {
			s, c := tcpPair(t)
			go func() {
				readGreeting(t, c)
				time.Sleep(20 * time.Millisecond)
				io.WriteString(c, ehlo)
			}()
			t0 := time.Now()
			if talk := g.greet(t, s, 10*time.Second); talk != frontend.Early {
				t.Fatalf("talk %v, want early", talk)
			}
			if took := time.Since(t0); took > 5*time.Second {
				t.Fatalf("the early talker was caught after %v, not when it spoke", took)
			}
			if got := restOf(t, s, len(ehlo)); got != ehlo {
				t.Fatalf("next reader got %q, want %q", got, ehlo)
			}
		})
	}
}

// A client that waits is silent, and the wait lasts the delay.
func TestGreetSilent(t *testing.T) {
	for _, g := range greeters {
		t.Run(g.name, func(t *testing.T) {
			s, c := tcpPair(t)
			go readGreeting(t, c)
			t0 := time.Now()
			if talk := g.greet(t, s, 200*time.Millisecond); talk != frontend.Silent {
				t.Fatalf("talk %v, want silent", talk)
			}
			if took := time.Since(t0); took < 200*time.Millisecond {
				t.Fatalf("the delay lasted %v", took)
			}
		})
	}
}

// The pass path consumes no byte: the client's EHLO sits in the socket for
// the whole delay, but under SO_RCVLOWAT, so that poll does not report it
// (the client stays "silent"). Any read of the socket (a read with a
// deadline, a drain after the delay) would take it; the next reader must
// get it intact.
func TestGreetPassConsumesNothing(t *testing.T) {
	for _, g := range greeters {
		t.Run(g.name, func(t *testing.T) {
			s, c := tcpPair(t)
			rc, _ := s.SyscallConn()
			rc.Control(func(fd uintptr) {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, 4096); err != nil {
					t.Fatal(err)
				}
			})
			sent := make(chan struct{})
			go func() {
				readGreeting(t, c)
				// Once the wait has begun: serve mode peeks once before
				// it waits, and would rightly see an early talker.
				time.Sleep(100 * time.Millisecond)
				io.WriteString(c, ehlo)
				close(sent)
			}()
			if talk := g.greet(t, s, 300*time.Millisecond); talk != frontend.Silent {
				t.Fatalf("talk %v, want silent (SO_RCVLOWAT hides the bytes from poll)", talk)
			}
			<-sent
			rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, 1) })
			if got := restOf(t, s, len(ehlo)); got != ehlo {
				t.Fatalf("next reader got %q, want %q", got, ehlo)
			}
		})
	}
}

// A client that sends EHLO right after the delay ends (racing with the
// end of the wait, as a fast honest client does once it sees PROGRAM's 220)
// is either silent or early, and in both cases its EHLO reaches the next
// reader intact.
func TestGreetBoundaryRace(t *testing.T) {
	const d = 30 * time.Millisecond
	silent := 0
	for i := range 20 {
		s, c := tcpPair(t)
		go func() {
			readGreeting(t, c)
			time.Sleep(d + time.Duration(i%4)*time.Millisecond)
			io.WriteString(c, ehlo)
		}()
		talk := greeters[i%2].greet(t, s, d)
		if talk == frontend.Silent {
			silent++
		}
		if got := restOf(t, s, len(ehlo)); got != ehlo {
			t.Fatalf("round %d (%v): next reader got %q", i, talk, got)
		}
	}
	t.Logf("%d of 20 clients were silent", silent)
}

// A client that hangs up during the delay is told apart from a talker.
func TestGreetHangUp(t *testing.T) {
	for _, g := range greeters {
		t.Run(g.name, func(t *testing.T) {
			s, c := tcpPair(t)
			go func() { readGreeting(t, c); c.Close() }()
			if talk := g.greet(t, s, 5*time.Second); talk != frontend.HungUp {
				t.Fatalf("talk %v, want hung up", talk)
			}
		})
	}
}

// Chain mode over pipes (TCPREMOTEIP set): the same three outcomes,
// counted with FIONREAD since pipes cannot be peeked.
func TestGreetPipes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client func(w *os.File)
		want   frontend.Talk
	}{
		{"silent", func(w *os.File) {}, frontend.Silent},
		{"early", func(w *os.File) { io.WriteString(w, ehlo) }, frontend.Early},
		{"hung up", func(w *os.File) { w.Close() }, frontend.HungUp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inR, inW, _ := os.Pipe()
			outR, outW, _ := os.Pipe()
			defer inR.Close()
			defer inW.Close()
			defer outR.Close()
			defer outW.Close()
			tc.client(inW)
			talk, _ := frontend.GreetFD(int(inR.Fd()), int(outW.Fd()), first, 150*time.Millisecond)
			if talk != tc.want {
				t.Fatalf("talk %v, want %v", talk, tc.want)
			}
			line, _ := bufio.NewReader(outR).ReadString('\n')
			if line != "220-mx.example.test ESMTP\r\n" {
				t.Fatalf("greeting %q", line)
			}
			if tc.want == frontend.Early {
				b := make([]byte, len(ehlo))
				if _, err := io.ReadFull(inR, b); err != nil || string(b) != ehlo {
					t.Fatalf("next reader got %q, %v", b, err)
				}
			}
		})
	}
}
