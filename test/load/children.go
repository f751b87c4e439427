package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Serve's cost of its running children (issue 13): with -children N, N
// clients each passed to a PROGRAM that holds the connection until EOF
// (cat > /dev/null), and serve's OS threads, open fds and RSS read from
// /proc at rest, with the N children running, and after they exit. Only
// this figure is measured then.

var (
	childrenN    = flag.Int("children", 0, "only measure mxfront serve's threads, fds and RSS with this many PROGRAM children running (raise ulimit -n above it)")
	childrenWait = flag.Duration("children-wait", 5*time.Minute, "how long -children waits for all children to start, and to exit")
)

// serveFigure is what /proc says of one process.
type serveFigure struct{ threads, fds, rssKiB, children int }

func (f serveFigure) String() string {
	return fmt.Sprintf("threads %5d  fds %6d  RSS %6.1f MiB  children %5d", f.threads, f.fds, float64(f.rssKiB)/1024, f.children)
}

func readFigure(pid int) serveFigure {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return serveFigure{threads: int(rss(pid, "Threads")), fds: len(fds), rssKiB: int(rss(pid, "VmRSS")), children: len(childrenOf(pid))}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	var kids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so from the last ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, n)
		}
	}
	return kids
}

// waitFor polls cond until it holds or -children-wait has passed.
func waitFor(cond func() bool) bool {
	for end := time.Now().Add(*childrenWait); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func childrenFigures(mx string) {
	n := *childrenN
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(n)+100 {
		fatal("children: %d clients need more fds than ulimit -n allows (%d): raise it", n, lim.Cur)
	}
	cat, err := exec.LookPath("cat")
	if err != nil {
		fatal("children: %v", err)
	}
	port := freePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	_, pid, stop, err := startServer(mx, []string{"serve", "--listen", addr, "--log", "none",
		"--max-conns", "0", "--max-conns-per-ip", "0", "--max-children", "0",
		"--", "/bin/sh", "-c", "exec " + cat + " >/dev/null"}, nil, port)
	if err != nil {
		fatal("children: %v", err)
	}
	defer stop()
	// startServer's probe connection passed too: wait for its child to go.
	waitFor(func() bool { return len(childrenOf(pid)) == 0 })
	rest := readFigure(pid)
	fmt.Printf("children: mxfront serve (pid %d), PROGRAM cat > /dev/null, %d clients\n", pid, n)
	fmt.Printf("  at rest:            %v\n", rest)

	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err != nil {
			fmt.Printf("children: client %d: %v\n", i, err)
			break
		}
		conns = append(conns, c)
	}
	if !waitFor(func() bool { return len(childrenOf(pid)) >= len(conns) }) {
		fmt.Printf("children: only %d of %d children running after %v\n", len(childrenOf(pid)), len(conns), *childrenWait)
	}
	during := readFigure(pid)
	fmt.Printf("  %5d running:      %v\n", len(conns), during)

	for _, c := range conns {
		c.Close()
	}
	if !waitFor(func() bool { return len(childrenOf(pid)) == 0 }) {
		left := childrenOf(pid)
		fmt.Printf("children: %d children still running after %v: killing them\n", len(left), *childrenWait)
		for _, k := range left {
			syscall.Kill(k, syscall.SIGKILL)
		}
	}
	after := readFigure(pid)
	fmt.Printf("  after they exit:    %v\n", after)
	// Idle threads are the runtime's to keep or drop: look again later.
	time.Sleep(5 * time.Second)
	fmt.Printf("  5 s later:          %v\n", readFigure(pid))
	fmt.Printf("  peak RSS (VmHWM):   %.1f MiB\n", float64(rss(pid, "VmHWM"))/1024)
}
