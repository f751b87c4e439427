package serve

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/logline"
)

// BenchmarkServePass is serve's own cost of passing a client: accept,
// decide (a deny list), spawn PROGRAM (/bin/true, which closes the
// connection at once), log and reap. Run with -cpuprofile to see where
// serve's time goes; the child's own start is in it too.
func BenchmarkServePass(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	deny := &frontend.NetList{}
	if err := deny.Add("192.0.2.0/24", "", "bench"); err != nil {
		b.Fatal(err)
	}
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	s := &Server{
		Policy: &frontend.Policy{Deny: deny}, Dialogue: frontend.DialogueConfig{Hostname: "mx.example.test"},
		Argv: []string{"true"}, Path: "/bin/true", Environ: os.Environ(),
		Log: logline.WriterLogger(devnull), Stderr: devnull, Listeners: []net.Listener{l},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, c) // until PROGRAM has exited
			c.Close()
		}
	})
}

// BenchmarkServeRefuse is serve's cost of refusing a client through a
// whole session (greeting, EHLO, MAIL, RCPT refused, QUIT), by a deny list
// and by greylisting (a bbolt file held open, the client's network seen
// moments ago: a read, no write), 32 clients per CPU at once. Run with
// -mutexprofile or -blockprofile to see what waits.
func BenchmarkServeRefuse(b *testing.B) {
	deny := &frontend.NetList{}
	if err := deny.Add("127.0.0.0/8", "", "bench"); err != nil {
		b.Fatal(err)
	}
	st, err := greylist.OpenBolt(filepath.Join(b.TempDir(), "grey.db"), greylist.BoltOptions{KeepOpen: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	gp, err := greylist.NewPolicy(st, greylist.Config{Delay: time.Hour, Window: 2 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := gp.Decide(context.Background(), netip.MustParseAddr("127.0.0.1")); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    *frontend.Policy
	}{
		{"deny", &frontend.Policy{Deny: deny}},
		{"greylisted", &frontend.Policy{Greylist: &frontend.Greylisting{Policy: gp, Known: frontend.NewPassCache(time.Minute, 1000)}}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchRefuse(b, tc.p) })
	}
}

func benchRefuse(b *testing.B, p *frontend.Policy) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	d := frontend.DefaultDialogue
	d.Hostname = "mx.example.test"
	s := &Server{
		Policy: p, Dialogue: d, Argv: []string{"true"}, Path: "/bin/true", Environ: os.Environ(),
		Log: logline.WriterLogger(devnull), Stderr: devnull, Listeners: []net.Listener{l},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	session := []byte("EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nQUIT\r\n")
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = c.Write(session)
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	})
}
