package serve

import (
	"context"
	"io"
	"net"
	"os"
	"testing"

	"github.com/mxfront/mxfront/frontend"
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
