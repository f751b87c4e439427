package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The inspecting relay (--inspect) beside the exec'd path: rows in the
// table, then a 10 MB message's DATA through each, and serve's memory per
// relayed session held open. The relay's sender check is off in these
// rows (it would ask a DNS server: its cost is that server's).

var (
	relayRuns = flag.Int("relay-data-runs", 21, "10 MB messages sent through each path for the relay's DATA figure")
	relayBody = flag.String("relay-data-body", "digits", "the 10 MB message's lines: digits, base64 or text")
	relayIdle = flag.Int("relay-idle", 200, "relayed sessions held open against mxfront serve --inspect for the memory figure")
	relayOnly = flag.Bool("relay-only", false, "only the relay's figures: the 10 MB DATA (exec'd, relayed and -compare's relay, interleaved) and serve's memory per relayed session")
)

var relayFlags = []string{"--inspect", "--sender-check", "off", "--log", "none"}

// relayRows are the relay's rows: chain mode (mxfront execs mxfront-cli,
// which relays) and serve mode, each beside its exec'd or spawned row.
func relayRows(tcpserver string, ts func(env []string, argv ...string) func() (string, int, func(), error),
	serve func(extra ...string) func() (string, int, func(), error), mx, sink string) []row {
	var rows []row
	if tcpserver != "" {
		rows = append(rows, row{name: "tcpserver > mxfront --inspect > sink", start: ts(nil, append(append([]string{mx}, relayFlags...), "--", sink)...)})
	}
	return append(rows, row{name: "mxfront serve --inspect > sink", start: serve(append([]string{"--deny", "192.0.2.0/24"}, relayFlags...)...)})
}

// relayFigures prints the throughput of a 10 MB DATA through the exec'd
// and the relayed chain (and, with -compare, the other mxfront's relay),
// the runs interleaved so that a noisy machine hurts them alike, and
// serve's memory per relayed session.
func relayFigures(mx, sink, tcpserver string) {
	if tcpserver != "" {
		relayData(mx, sink, tcpserver)
	}
	relayMemory(mx, sink)
}

func relayData(mx, sink, tcpserver string) {
	msg := bigBody(10<<20, *relayBody)
	type path struct {
		name  string
		start func() (string, int, func(), error)
		base  int // the path this one is the relayed twin of; -1: none
		addr  string
		pid   int
		ds    []time.Duration
		// CPU over the timed runs: the server process's own (serve's,
		// relaying; tcpserver's) and its reaped children's (PROGRAM's,
		// and in chain mode mxfront's and the relay's)
		own, kids time.Duration
	}
	chain := func(mx string, flags ...string) func() (string, int, func(), error) {
		return func() (string, int, func(), error) {
			port := freePort()
			argv := append(append([]string{"-HRl0", "127.0.0.1", fmt.Sprint(port), mx}, flags...), "--", sink)
			return startServer(tcpserver, argv, nil, port)
		}
	}
	serve := func(flags ...string) func() (string, int, func(), error) {
		return func() (string, int, func(), error) {
			port := freePort()
			args := append([]string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--log", "none"}, flags...)
			return startServer(mx, append(args, "--", sink), nil, port)
		}
	}
	paths := []*path{
		{name: "exec'd: tcpserver > mxfront > sink", start: chain(mx), base: -1},
		{name: "relayed: tcpserver > mxfront --inspect > sink", start: chain(mx, relayFlags...), base: 0},
		{name: "spawned: mxfront serve > sink", start: serve(), base: -1},
		{name: "relayed: mxfront serve --inspect > sink", start: serve(relayFlags...), base: 2},
	}
	if *compare != "" {
		old, _ := filepath.Abs(filepath.Join(*compare, "mxfront"))
		paths = append(paths, &path{name: "compared: tcpserver > mxfront --inspect > sink", start: chain(old, relayFlags...), base: 0})
	}
	for _, p := range paths {
		addr, pid, stop, err := p.start()
		if err != nil {
			fatal("relay data: %s: %v", p.name, err)
		}
		p.addr, p.pid = addr, pid
		defer stop()
	}
	// One message through each first, untimed: page cache, CPU frequency.
	for _, p := range paths {
		if _, err := dataSession(p.addr, msg); err != nil {
			fatal("relay data: %s: %v", p.name, err)
		}
	}
	load0 := loadAverage()
	for _, p := range paths {
		reaped(p.pid)
		p.own, p.kids = procCPU(p.pid)
	}
	for i := 0; i < *relayRuns; i++ {
		for _, p := range paths {
			d, err := dataSession(p.addr, msg)
			if err != nil {
				fatal("relay data: %s: %v", p.name, err)
			}
			p.ds = append(p.ds, d)
		}
	}
	for _, p := range paths {
		reaped(p.pid)
		own, kids := procCPU(p.pid)
		p.own, p.kids = own-p.own, kids-p.kids
	}
	mb := float64(len(msg)) / 1e6
	fmt.Printf("relay data: a %.1f MB message (%s lines), DATA's 354 to its 250, median of %d interleaved runs; load average %s before, %s after\n",
		mb, *relayBody, *relayRuns, load0, loadAverage())
	for _, p := range paths {
		m := median(p.ds)
		fmt.Printf("relay data: %-48s %8v  %6.1f MB/s  (min %v, max %v)", p.name, m.Round(time.Millisecond),
			mb/m.Seconds(), pct(p.ds, 0).Round(time.Millisecond), pct(p.ds, 100).Round(time.Millisecond))
		if p.base >= 0 {
			// Per round too: the runs of a round are neighbours in time.
			base := paths[p.base]
			var rs []float64
			for i := range p.ds {
				rs = append(rs, base.ds[i].Seconds()/p.ds[i].Seconds())
			}
			sort.Float64s(rs)
			fmt.Printf("  %.2f of %s (per round: median %.2f, min %.2f, max %.2f)", median(base.ds).Seconds()/m.Seconds(),
				base.name[:strings.Index(base.name, ":")], rs[(len(rs)-1)/2], rs[0], rs[len(rs)-1])
		}
		fmt.Println()
	}
	fmt.Println("relay data: CPU per message, the server process's own + its children's (PROGRAM; in chain mode mxfront and the relay too):")
	for _, p := range paths {
		n := time.Duration(len(p.ds))
		fmt.Printf("relay data: %-48s %6.1f ms = %5.1f + %5.1f\n", p.name, float64((p.own+p.kids)/n)/1e6, float64(p.own/n)/1e6, float64(p.kids/n)/1e6)
	}
}

// procCPU is a process's own CPU so far (its threads' schedstat) and its
// reaped children's (cutime and cstime, in clock ticks of 10 ms).
func procCPU(pid int) (own, kids time.Duration) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		if b, err := os.ReadFile(t); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				own += time.Duration(n)
			}
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return own, 0
	}
	// The fields after the command's closing parenthesis; cutime and
	// cstime are the stat file's 16th and 17th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 15 {
		return own, 0
	}
	cu, _ := strconv.ParseInt(f[13], 10, 64)
	cs, _ := strconv.ParseInt(f[14], 10, 64)
	return own, time.Duration(cu+cs) * 10 * time.Millisecond
}

// reaped waits (at most 10 s) until pid has no child left: the CPU of
// the sessions' processes is then in its children's.
func reaped(pid int) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		kids, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		live := false
		for _, k := range kids {
			if b, _ := os.ReadFile(k); len(bytes.TrimSpace(b)) > 0 {
				live = true
			}
		}
		if !live {
			return
		}
	}
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// dataSession sends one message and returns the time from DATA's 354 to
// the reply to its end.
func dataSession(addr string, body []byte) (time.Duration, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(120 * time.Second))
	r := bufio.NewReader(conn)
	reply := func(code string) error {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(l, code) {
				return fmt.Errorf("want %s, got %q", code, strings.TrimSpace(l))
			}
			if len(l) < 4 || l[3] != '-' {
				return nil
			}
		}
	}
	if err := reply("220"); err != nil {
		return 0, err
	}
	io.WriteString(conn, "EHLO load.example\r\nMAIL FROM:<load@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n")
	for _, c := range []string{"250", "250", "250", "354"} {
		if err := reply(c); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	if _, err := conn.Write(body); err != nil {
		return 0, err
	}
	if err := reply("250"); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	io.WriteString(conn, "QUIT\r\n")
	return d, reply("221")
}

// bigBody is a message of about n octets in lines of one kind: digits,
// base64 (no dot: most of a big message) or text (dots in every line).
func bigBody(n int, kind string) []byte {
	line := map[string]string{
		"digits": strings.Repeat("0123456789", 7),
		"base64": "TG9yZW0gaXBzdW0gZG9sb3Igc2l0IGFtZXQsIGNvbnNlY3RldHVyIGFkaXBpc2NpbmcgZWxpdC4r",
		"text":   "Lorem ipsum dolor sit amet. Consectetur adipiscing elit, sed do eiusmod.",
	}[kind]
	if line == "" {
		fatal("-relay-data-body %q: want digits, base64 or text", kind)
	}
	var b bytes.Buffer
	b.WriteString("Subject: ten megabytes\r\n\r\n")
	for b.Len() < n {
		b.WriteString(line + "\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// relayMemory holds relayed sessions open (each past EHLO, so PROGRAM
// runs) against mxfront serve --inspect and prints serve's own RSS per
// session (PROGRAM's is its own process's).
func relayMemory(mx, sink string) {
	port := freePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"serve", "--listen", addr, "--max-conns", "0", "--max-conns-per-ip", "0", "--max-children", "0"}, relayFlags...)
	_, pid, stop, err := startServer(mx, append(args, "--", sink), nil, port)
	if err != nil {
		fatal("relay memory: %v", err)
	}
	defer stop()
	for i := 0; i < 50; i++ {
		oneSession(addr, "session", false)
	}
	before := rss(pid, "VmRSS")
	var conns []net.Conn
	for i := 0; i < *relayIdle; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			fmt.Printf("relay memory: session %d: %v\n", i, err)
			break
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		io.WriteString(c, "EHLO load.example\r\n")
		ok := false
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				break
			}
			if strings.HasPrefix(l, "250 ") {
				ok = true
				break
			}
		}
		if !ok {
			fmt.Printf("relay memory: session %d: no EHLO reply\n", i)
			c.Close()
			break
		}
		conns = append(conns, c)
	}
	after := rss(pid, "VmRSS")
	fmt.Printf("relay memory: mxfront serve --inspect: %.1f MiB RSS; %.1f MiB with %d relayed sessions open past EHLO (%.1f KiB each, PROGRAM not counted)\n",
		float64(before)/1024, float64(after)/1024, len(conns), float64(after-before)/float64(max(len(conns), 1)))
	for _, c := range conns {
		c.Close()
	}
}
