package redisstore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
)

// The racer: the test binary re-executed with racerEnv set plays one
// mxfront process on one MX host, connecting to Redis from that host's
// address. It says "ready" once connected, waits for "go" on stdin, then
// decides every network from several goroutines in a random order and
// prints one line per decision: "INDEX STATE" or "INDEX error MESSAGE".
const (
	racerEnv     = "MXFRONT_REDIS_RACER" // the store URL
	racerPrefix  = "MXFRONT_RACER_PREFIX"
	racerNets    = "MXFRONT_RACER_NETS"
	racerSource  = "MXFRONT_RACER_SOURCE" // the host's loopback address
	racerWorkers = 4
)

func racer() int {
	n, err := strconv.Atoi(os.Getenv(racerNets))
	if err != nil {
		fmt.Fprintln(os.Stderr, "racer:", err)
		return 2
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(os.Getenv(racerSource))}}
	o := Options{Prefix: os.Getenv(racerPrefix), Timeout: 10 * time.Second, PoolSize: racerWorkers}
	o.dialer = d.DialContext
	s, err := Open(os.Getenv(racerEnv), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "racer:", err)
		return 2
	}
	defer s.Close()
	if err := s.Ping(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "racer:", err)
		return 2
	}
	p, err := greylist.NewPolicy(s, greylist.Config{Now: func() time.Time { return base }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "racer:", err)
		return 2
	}
	fmt.Println("ready")
	if line, _ := bufio.NewReader(os.Stdin).ReadString('\n'); line != "go\n" {
		fmt.Fprintf(os.Stderr, "racer: got %q, not go\n", line)
		return 2
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for range racerWorkers {
		wg.Go(func() {
			for _, i := range rand.Perm(n) {
				o, err := p.Decide(context.Background(), raceAddr(i))
				mu.Lock()
				if err != nil {
					fmt.Fprintf(out, "%d error %v\n", i, err)
				} else {
					fmt.Fprintf(out, "%d %v\n", i, o.State)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := out.Flush(); err != nil {
		return 2
	}
	return 0
}

// raceAddr is a client address of network i, a different host each time.
func raceAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(1 + rand.IntN(250))})
}

// TestCASAcrossHosts: processes on two "hosts" (clients from 127.0.0.1 and
// 127.0.0.2), several goroutines each, decide on the same networks at the
// same moment: exactly one decision per network finds it new, every other
// sees the record that one wrote (early: the same injected clock).
func TestCASAcrossHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	srv := sharedRedis(t)
	const nets, perHost = 300, 3
	prefix := freshPrefix(t)
	type proc struct {
		host  string
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
		lines []string
		err   strings.Builder
	}
	var procs []*proc
	for _, host := range []string{"127.0.0.1", "127.0.0.2"} {
		for range perHost {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), racerEnv+"="+srv.URL(), racerPrefix+"="+prefix,
				racerNets+"="+strconv.Itoa(nets), racerSource+"="+host)
			pr := &proc{host: host, cmd: cmd}
			cmd.Stderr = &pr.err
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			pr.stdin, pr.out = stdin, bufio.NewReader(stdout)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
				}
			})
			procs = append(procs, pr)
		}
	}
	// The barrier: every racer connected before any decides.
	for _, pr := range procs {
		if line, err := pr.out.ReadString('\n'); line != "ready\n" {
			t.Fatalf("racer on %s: %q, %v\n%s", pr.host, line, err, pr.err.String())
		}
	}
	for _, pr := range procs {
		if _, err := io.WriteString(pr.stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, pr := range procs {
		wg.Go(func() {
			for {
				line, err := pr.out.ReadString('\n')
				if err != nil {
					return
				}
				pr.lines = append(pr.lines, strings.TrimSuffix(line, "\n"))
			}
		})
	}
	wg.Wait()
	news := make([]int, nets)
	byHost := map[string]int{}
	decisions := 0
	for _, pr := range procs {
		if err := pr.cmd.Wait(); err != nil {
			t.Fatalf("racer on %s: %v\n%s", pr.host, err, pr.err.String())
		}
		for _, l := range pr.lines {
			idx, state, _ := strings.Cut(l, " ")
			i, err := strconv.Atoi(idx)
			if err != nil || i < 0 || i >= nets {
				t.Fatalf("racer on %s said %q", pr.host, l)
			}
			decisions++
			switch state {
			case "new":
				news[i]++
				byHost[pr.host]++
			case "early":
			default:
				t.Errorf("racer on %s: network %d: %s", pr.host, i, state)
			}
		}
	}
	if want := nets * perHost * 2 * racerWorkers; decisions != want {
		t.Fatalf("%d decisions, want %d", decisions, want)
	}
	for i, c := range news {
		if c != 1 {
			t.Errorf("network %d was new %d times", i, c)
		}
	}
	s := open(t, srv.URL(), Options{Prefix: prefix})
	if st, err := s.Stats(ctx); err != nil || st.Records != nets {
		t.Errorf("Stats = %+v, %v; want %d records", st, err, nets)
	}
	t.Logf("%d decisions by %d processes on 2 hosts; new per host: %v", decisions, len(procs), byHost)
}
