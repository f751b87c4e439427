package metrics

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mxfront/mxfront/frontend"
	"github.com/mxfront/mxfront/frontend/serve"
	"github.com/mxfront/mxfront/internal/logline"
)

// BenchmarkServeRefusing is the observer's cost on serve's refusal path,
// side by side: two servers refusing every client (a deny list), one
// without an observer and one with these metrics, and each iteration a
// whole refused session (greeting, EHLO, MAIL, RCPT refused, QUIT) against
// them in turn, so that a noisy machine slows both alike. It reports each
// one's median session time and their ratio (with/without): medians, as
// a loaded machine's stalls make means worthless.
func BenchmarkServeRefusing(b *testing.B) {
	for _, par := range []int{1, 8} {
		b.Run(map[int]string{1: "serial", 8: "8-parallel"}[par], func(b *testing.B) {
			bare := startRefusing(b, nil)
			withMetrics := startRefusing(b, func(s *serve.Server) serve.Observer {
				return New(Config{Version: "bench", Stats: s.Stats})
			})
			var mu sync.Mutex
			var took [2][]time.Duration
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine [2][]time.Duration
				defer func() {
					mu.Lock()
					took[0], took[1] = append(took[0], mine[0]...), append(took[1], mine[1]...)
					mu.Unlock()
				}()
				for i := 0; pb.Next(); i++ {
					k, addr := i%2, bare
					if k == 1 {
						addr = withMetrics
					}
					t0 := time.Now()
					if err := refusedSession(addr); err != nil {
						b.Error(err)
						return
					}
					mine[k] = append(mine[k], time.Since(t0))
				}
			})
			b.StopTimer()
			if len(took[0]) > 0 && len(took[1]) > 0 {
				without, with := median(took[0]), median(took[1])
				b.ReportMetric(float64(without), "ns/refusal-bare")
				b.ReportMetric(float64(with), "ns/refusal-metrics")
				b.ReportMetric(float64(with)/float64(without), "ratio")
			}
		})
	}
}

// startRefusing starts a serve.Server on loopback that refuses everyone,
// with the observer obs makes (nil: none), and returns its address.
func startRefusing(b *testing.B, obs func(*serve.Server) serve.Observer) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	deny := &frontend.NetList{}
	if err := deny.Add("127.0.0.0/8", "", "bench"); err != nil {
		b.Fatal(err)
	}
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	b.Cleanup(func() { devnull.Close() })
	s := &serve.Server{
		Policy: &frontend.Policy{Deny: deny}, Dialogue: frontend.DialogueConfig{Hostname: "mx.example.test"},
		Argv: []string{"true"}, Path: "/bin/true", Environ: os.Environ(),
		Log: logline.WriterLogger(devnull), Stderr: devnull, Listeners: []net.Listener{l},
		Limits: serve.Limits{},
	}
	if obs != nil {
		s.Observer = obs(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

const session = "EHLO bench.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nQUIT\r\n"

func refusedSession(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil { // the greeting
		return err
	}
	if _, err := io.WriteString(c, session); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r) // until the 221 and the close
	return err
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}
