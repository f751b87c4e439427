// Command load is mxfront's measuring stick (`make bench`): it starts each
// configuration on loopback (bare tcpserver > sink, the goexec floor,
// rblsmtpd, mxfront in chain and serve mode, passing and refusing), opens
// SMTP sessions against it at several concurrencies, interleaving the rows
// so that a noisy machine hurts them alike, and prints one table with each
// row's ratio to the bare tcpserver row measured in the same run. It also
// times the exec path alone (process start to PROGRAM) and measures memory.
//
// Load stays on loopback and every loop is bounded in count and time.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	binDir   = flag.String("bin", "bin", "directory holding mxfront, mxsink and goexec")
	duration = flag.Duration("duration", time.Second, "measuring time of one cell")
	runs     = flag.Int("runs", 3, "interleaved runs of every cell (the median is printed)")
	concs    = flag.String("c", "1,16,64", "concurrencies")
	modes    = flag.String("modes", "greeting,session", "greeting (220, QUIT) and/or session (EHLO..DATA..QUIT)")
	only     = flag.String("rows", "", "comma-separated row names to run (default all)")
	idle     = flag.Int("idle", 2000, "idle clients held open against mxfront serve for the memory figure")
	execOnly = flag.Bool("exec-only", false, "only time the exec path")
	execN    = flag.Int("exec-n", 300, "process starts per exec-path case")
	srvCPU   = flag.Bool("server-cpu", false, "also print each row's server process's own CPU time per session (mxfront serve's, tcpserver's; its threads' schedstat): steadier than a rate on a loaded machine")
	compare  = flag.String("compare", "", "directory holding another mxfront (e.g. the last release's) whose chain and serve pass rows run beside this one's")
	refuser  = flag.String("refuser", "", "(internal) be the checkless refuser on `ADDR`: the row every refusing row is compared with")
)

type row struct {
	name    string
	refuses bool // the row refuses at RCPT: a session ends there
	start   func() (addr string, pid int, stop func(), err error)
}

func main() {
	flag.Parse()
	if *refuser != "" {
		refuse(*refuser)
		return
	}
	abs, _ := filepath.Abs(*binDir)
	mx, sink, goexec := filepath.Join(abs, "mxfront"), filepath.Join(abs, "mxsink"), filepath.Join(abs, "goexec")
	for _, p := range []string{mx, sink, goexec} {
		if _, err := os.Stat(p); err != nil {
			fatal("%v (run `make build bin/mxsink` and build testdata/goexec into %s)", err, *binDir)
		}
	}
	if *childrenN > 0 {
		childrenFigures(mx)
		return
	}
	tcpserver, _ := exec.LookPath("tcpserver")
	rblsmtpd, _ := exec.LookPath("rblsmtpd")
	if *relayOnly {
		relayFigures(mx, sink, tcpserver)
		return
	}
	ts := func(env []string, argv ...string) func() (string, int, func(), error) {
		return func() (string, int, func(), error) {
			port := freePort()
			args := append([]string{"-HRl0", "-c", "200", "-b", "200", "127.0.0.1", strconv.Itoa(port)}, argv...)
			return startServer(tcpserver, args, env, port)
		}
	}
	serveWith := func(mx string, extra ...string) func() (string, int, func(), error) {
		return func() (string, int, func(), error) {
			port := freePort()
			// One load client address: the per-IP limit would turn it away.
			args := append([]string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--max-rcpts", "5",
				"--max-conns", "0", "--max-conns-per-ip", "0", "--max-children", "0"}, extra...)
			args = append(args, "--", sink)
			return startServer(mx, args, nil, port)
		}
	}
	serve := func(extra ...string) func() (string, int, func(), error) { return serveWith(mx, extra...) }
	// The same with --metrics-listen: the observer's cost, row beside row.
	metrics := func(extra ...string) func() (string, int, func(), error) {
		return func() (string, int, func(), error) {
			flags := append([]string{"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", freePort())}, extra...)
			return serveWith(mx, flags...)()
		}
	}
	// DNS lists on rbldnsd (three that do not list the load client, one
	// that does) and greylist databases (one where the client's network
	// has passed, one where it is always new).
	dnsArgs, listedArgs, stopDNS := rbldnsd()
	defer stopDNS()
	// The same lists through a caching unbound, with and without --rdns
	// (127.0.0.1's PTR is localhost, forward-confirmed): what the reverse
	// lookups add, beside the lists alone, with the same resolver.
	var viaUnbound, withRDNS []string
	if dnsArgs != nil {
		if server, stop := unbound(dnsArgs[1]); server != "" {
			defer stop()
			viaUnbound = append([]string{"--dns-server", server}, dnsArgs[2:]...)
			withRDNS = append(slices.Clone(viaUnbound), "--rdns")
		}
	}
	work, _ := os.MkdirTemp("", "mxfront-load-")
	defer os.RemoveAll(work)
	known := filepath.Join(work, "known.db")
	if out, err := exec.Command(mx, "greylist", "allow", "127.0.0.1", "--greylist-db", known).CombinedOutput(); err != nil {
		fatal("greylist allow: %v\n%s", err, out)
	}
	fresh := filepath.Join(work, "fresh.db")
	greyKnown := []string{"--greylist", "--greylist-db", known}
	greyFresh := []string{"--greylist", "--greylist-db", fresh, "--greylist-delay", "1h", "--greylist-window", "2h"}
	// serve holds its database open: the row with metrics has its own.
	greyFresh2 := []string{"--greylist", "--greylist-db", filepath.Join(work, "fresh2.db"), "--greylist-delay", "1h", "--greylist-window", "2h"}
	var rows []row
	if tcpserver != "" {
		rows = append(rows,
			row{name: "tcpserver > sink (bare)", start: ts(nil, sink)},
			row{name: "tcpserver > goexec > sink", start: ts(nil, goexec, sink)})
		if rblsmtpd != "" {
			rows = append(rows,
				row{name: "tcpserver > rblsmtpd > sink", start: ts([]string{"RBLSMTPD="}, rblsmtpd, sink)},
				row{name: "tcpserver > rblsmtpd refusing", refuses: true, start: ts([]string{"RBLSMTPD=-refused"}, rblsmtpd, sink)})
		}
		rows = append(rows,
			row{name: "tcpserver > mxfront > sink", start: ts(nil, mx, "--", sink)},
			row{name: "tcpserver > mxfront (deny list) > sink", start: ts(nil, mx, "--deny", "192.0.2.0/24", "--deny", "2001:db8::/32", "--", sink)},
			row{name: "tcpserver > mxfront refusing", refuses: true, start: ts(nil, mx, "--deny", "127.0.0.0/8", "--", sink)})
	} else {
		fmt.Fprintln(os.Stderr, "load: tcpserver not installed: only serve rows (test/peers.sh installs it)")
	}
	if tcpserver != "" {
		rows = append(rows,
			row{name: "tcpserver > mxfront (greylist known) > sink", start: ts(nil, append(append([]string{mx}, greyKnown...), "--", sink)...)})
		if dnsArgs != nil {
			rows = append(rows,
				row{name: "tcpserver > mxfront (3 DNS lists) > sink", start: ts(nil, append(append([]string{mx}, dnsArgs...), "--", sink)...)})
		}
		if viaUnbound != nil {
			rows = append(rows,
				row{name: "tcpserver > mxfront (3 lists, unbound) > sink", start: ts(nil, append(append([]string{mx}, viaUnbound...), "--", sink)...)},
				row{name: "tcpserver > mxfront (3 lists+rDNS, unbound) > sink", start: ts(nil, append(append([]string{mx}, withRDNS...), "--", sink)...)})
		}
	}
	self, _ := os.Executable()
	rows = append(rows,
		row{name: "Go refuser, no checks (refuser)", refuses: true, start: func() (string, int, func(), error) {
			port := freePort()
			return startServer(self, []string{"-refuser", fmt.Sprintf("127.0.0.1:%d", port)}, nil, port)
		}},
		row{name: "mxfront serve > sink", start: serve("--deny", "192.0.2.0/24")},
		row{name: "mxfront serve refusing (deny list)", refuses: true, start: serve("--deny", "127.0.0.0/8")},
		row{name: "mxfront serve refusing (greylisted)", refuses: true, start: serve(greyFresh...)},
		row{name: "mxfront serve refusing (deny, metrics)", refuses: true, start: metrics("--deny", "127.0.0.0/8")},
		row{name: "mxfront serve refusing (grey, metrics)", refuses: true, start: metrics(greyFresh2...)})
	if redisURL, stopRedis := redis(); redisURL != "" {
		defer stopRedis()
		rows = append(rows, row{name: "mxfront serve refusing (grey, Redis)", refuses: true,
			start: serve("--greylist", "--greylist-store", redisURL, "--greylist-delay", "1h", "--greylist-window", "2h")})
	}
	if listedArgs != nil {
		// listed.test lists all of 127/8, 127.0.0.1 included: serve's
		// health check would set it aside as answering everything.
		listedServe := append(slices.Clone(listedArgs), "--dns-health-interval", "0")
		rows = append(rows, row{name: "mxfront serve refusing (DNS listed)", refuses: true, start: serve(listedServe...)},
			row{name: "mxfront serve refusing (DNS, metrics)", refuses: true, start: metrics(listedServe...)})
	}
	rows = append(rows, relayRows(tcpserver, ts, serve, mx, sink)...)
	if *compare != "" {
		old, _ := filepath.Abs(filepath.Join(*compare, "mxfront"))
		rows = append(rows, row{name: "compared: mxfront serve > sink", start: serveWith(old, "--deny", "192.0.2.0/24")},
			row{name: "compared: mxfront serve refusing (greylisted)", refuses: true,
				start: serveWith(old, "--greylist", "--greylist-db", filepath.Join(work, "fresh3.db"), "--greylist-delay", "1h", "--greylist-window", "2h")})
		if tcpserver != "" {
			rows = append(rows, row{name: "compared: tcpserver > mxfront (deny list) > sink",
				start: ts(nil, old, "--deny", "192.0.2.0/24", "--deny", "2001:db8::/32", "--", sink)})
		}
	}
	if *only != "" {
		var keep []row
		for _, r := range rows {
			for _, n := range strings.Split(*only, ",") {
				if strings.Contains(r.name, n) {
					keep = append(keep, r)
					break
				}
			}
		}
		rows = keep
	}

	execPath(mx, goexec, greyKnown, dnsArgs, viaUnbound, withRDNS)
	if *execOnly {
		return
	}
	table(rows)
	memory(mx, sink)
	relayFigures(mx, sink, tcpserver)
}

// execPath times a process start to PROGRAM's exit with /bin/true as
// PROGRAM: directly, through goexec, and through mxfront (chain mode over
// pipes, with a deny list), and reports mxfront's peak RSS.
func execPath(mx, goexec string, greyKnown, dnsArgs, viaUnbound, withRDNS []string) {
	truePath, _ := exec.LookPath("true")
	cases := []struct {
		name string
		argv []string
	}{
		{"true (no front)", []string{truePath}},
		{"goexec > true", []string{goexec, truePath}},
		{"mxfront > true", []string{mx, "--log", "none", "--", truePath}},
		{"mxfront --deny > true", []string{mx, "--log", "none", "--deny", "192.0.2.0/24", "--", truePath}},
		{"mxfront (log to stderr) > true", []string{mx, "--deny", "192.0.2.0/24", "--", truePath}},
		{"mxfront --greylist (known) > true", append(append([]string{mx, "--log", "none"}, greyKnown...), "--", truePath)},
	}
	if dnsArgs != nil {
		cases = append(cases, struct {
			name string
			argv []string
		}{"mxfront (3 DNS lists) > true", append(append([]string{mx, "--log", "none"}, dnsArgs...), "--", truePath)})
		// --dns-health-state: reading the state file (no zone set aside),
		// and with one of the three set aside (one lookup fewer).
		dir, _ := os.MkdirTemp("", "mxfront-load-state-")
		defer os.RemoveAll(dir)
		now := time.Now().UTC().Format(time.RFC3339)
		none, one := filepath.Join(dir, "none.state"), filepath.Join(dir, "one.state")
		os.WriteFile(none, []byte("# mxfront DNS list health\nchecked "+now+"\n"), 0o644)
		os.WriteFile(one, []byte("# mxfront DNS list health\nchecked "+now+"\naside c.test "+now+" refusing: load test\n"), 0o644)
		for _, sc := range []struct{ name, file string }{{"mxfront (3 lists, state) > true", none}, {"mxfront (3 lists,1 aside) > true", one}} {
			cases = append(cases, struct {
				name string
				argv []string
			}{sc.name, append(append([]string{mx, "--log", "none", "--dns-health-state", sc.file}, dnsArgs...), "--", truePath)})
		}
	}
	if viaUnbound != nil {
		cases = append(cases, struct {
			name string
			argv []string
		}{"mxfront (3 lists, unbound) > true", append(append([]string{mx, "--log", "none"}, viaUnbound...), "--", truePath)},
			struct {
				name string
				argv []string
			}{"mxfront (3 lists+rDNS) > true", append(append([]string{mx, "--log", "none"}, withRDNS...), "--", truePath)})
	}
	n := *execN
	fmt.Printf("exec path: process start to PROGRAM's exit, median of %d (interleaved)\n", n)
	times := make([][]time.Duration, len(cases))
	// 127.0.0.1: on no list, and its network has passed the greylist.
	env := append(os.Environ(), "TCPREMOTEIP=127.0.0.1", "TCPREMOTEPORT=4000", "TCPLOCALIP=127.0.0.1", "TCPLOCALPORT=25")
	devnull, _ := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	for i := 0; i < n; i++ {
		for j, c := range cases {
			cmd := exec.Command(c.argv[0], c.argv[1:]...)
			cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, devnull, devnull, devnull
			t0 := time.Now()
			if err := cmd.Run(); err != nil {
				fatal("%s: %v", c.name, err)
			}
			times[j] = append(times[j], time.Since(t0))
		}
	}
	base := median(times[0])
	fmt.Printf("  %-32s %10s %12s\n", "", "median", "over true")
	for j, c := range cases {
		m := median(times[j])
		fmt.Printf("  %-32s %10s %12s\n", c.name, m.Round(time.Microsecond), (m - base).Round(time.Microsecond))
	}
	// Peak RSS of a chain-mode mxfront, read from /proc while it holds a
	// refusal dialogue open (ru_maxrss would count the parent's pages,
	// which a fork shares): an upper bound of the pass path's.
	cmd := exec.Command(mx, "--log", "none", "--deny", "127.0.0.0/8", "--", truePath)
	cmd.Env = env
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err == nil {
		buf := make([]byte, 64)
		stdout.Read(buf) // the greeting: the dialogue is running
		fmt.Printf("  mxfront chain mode peak RSS (refusal dialogue): %.1f MiB\n", float64(rss(cmd.Process.Pid, "VmHWM"))/1024)
		stdin.Close()
		cmd.Wait()
	}
	fmt.Println()
}

type result struct {
	sessions  int
	errors    int
	elapsed   time.Duration
	greetLat  []time.Duration
	sessLat   []time.Duration
	unexpectd string
	cpu       time.Duration // the server's CPU time (serve rows, -server-cpu)
}

func table(rows []row) {
	cl := parseInts(*concs)
	ms := strings.Split(*modes, ",")
	type key struct {
		row, mode string
		c         int
	}
	results := map[key][]result{}
	type running struct {
		addr string
		pid  int
		stop func()
	}
	live := make([]running, len(rows))
	for i, r := range rows {
		addr, pid, stop, err := r.start()
		if err != nil {
			fatal("%s: %v", r.name, err)
		}
		live[i] = running{addr, pid, stop}
	}
	defer func() {
		for _, l := range live {
			l.stop()
		}
	}()
	for run := 0; run < *runs; run++ {
		for _, mode := range ms {
			for _, c := range cl {
				for i, r := range rows {
					cpu0 := serverCPU(r.name, live[i].pid)
					res := measure(live[i].addr, mode, c, r.refuses, *duration)
					res.cpu = serverCPU(r.name, live[i].pid) - cpu0
					results[key{r.name, mode, c}] = append(results[key{r.name, mode, c}], res)
				}
			}
		}
	}
	fmt.Printf("load: sessions/s (median of %d interleaved runs of %v), latency p50/p99, ratio to the bare tcpserver row and (refusing rows) to the checkless Go refuser\n", *runs, *duration)
	for _, mode := range ms {
		for _, c := range cl {
			fmt.Printf("\n%s, concurrency %d\n", mode, c)
			fmt.Printf("  %-40s %10s %8s %8s %21s %21s %7s", "row", "sess/s", "ratio", "/refuser", "greeting p50/p99", "session p50/p99", "errors")
			if *srvCPU {
				fmt.Printf(" %14s", "srv CPU/sess")
			}
			fmt.Println()
			var bare, refusing float64
			for _, r := range rows {
				if strings.Contains(r.name, "(refuser)") {
					refusing, _, _, _, _, _ = summarise(results[key{r.name, mode, c}])
				}
			}
			for _, r := range rows {
				rs := results[key{r.name, mode, c}]
				rate, g50, g99, s50, s99, errs := summarise(rs)
				if strings.Contains(r.name, "(bare)") {
					bare = rate
				}
				ratio, vsRefuser := "-", "-"
				if bare > 0 {
					ratio = fmt.Sprintf("%.2f", rate/bare)
				}
				if r.refuses && refusing > 0 {
					vsRefuser = fmt.Sprintf("%.2f", rate/refusing)
				}
				fmt.Printf("  %-40s %10.1f %8s %8s %10s/%-10s %10s/%-10s %7d", r.name, rate, ratio, vsRefuser,
					g50.Round(10*time.Microsecond), g99.Round(10*time.Microsecond),
					s50.Round(10*time.Microsecond), s99.Round(10*time.Microsecond), errs)
				if *srvCPU {
					fmt.Printf(" %14s", cpuPerSession(rs))
				}
				fmt.Println()
				for _, x := range rs {
					if x.unexpectd != "" {
						fmt.Printf("    (first error: %s)\n", x.unexpectd)
						break
					}
				}
			}
		}
	}
	fmt.Println()
}

// serverCPU is the CPU time of a row's server process so far (mxfront
// serve, or tcpserver: its accept and fork, not its children's work), the
// sum over its threads.
func serverCPU(name string, pid int) time.Duration {
	if !*srvCPU || pid == 0 || !(strings.Contains(name, "mxfront serve") || strings.HasPrefix(name, "tcpserver") || strings.Contains(name, "(refuser)")) {
		return 0
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var ns int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			ns += n
		}
	}
	return time.Duration(ns)
}

// cpuPerSession is the median over runs of the server's CPU time per
// session, or "-".
func cpuPerSession(rs []result) string {
	var per []time.Duration
	for _, r := range rs {
		if r.cpu > 0 && r.sessions > 0 {
			per = append(per, r.cpu/time.Duration(r.sessions))
		}
	}
	if len(per) == 0 {
		return "-"
	}
	return median(per).Round(100 * time.Nanosecond).String()
}

func summarise(rs []result) (rate float64, g50, g99, s50, s99 time.Duration, errs int) {
	var rates []float64
	var g, s []time.Duration
	for _, r := range rs {
		rates = append(rates, float64(r.sessions)/r.elapsed.Seconds())
		g = append(g, r.greetLat...)
		s = append(s, r.sessLat...)
		errs += r.errors
	}
	sort.Float64s(rates)
	return rates[len(rates)/2], pct(g, 50), pct(g, 99), pct(s, 50), pct(s, 99), errs
}

// measure runs c clients in a closed loop for d and counts whole sessions.
func measure(addr, mode string, c int, refuses bool, d time.Duration) result {
	var mu sync.Mutex
	var res result
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				g, s, err := oneSession(addr, mode, refuses)
				mu.Lock()
				if err != nil {
					res.errors++
					if res.unexpectd == "" {
						res.unexpectd = err.Error()
					}
					mu.Unlock()
					time.Sleep(10 * time.Millisecond)
					continue
				}
				res.sessions++
				res.greetLat = append(res.greetLat, g)
				res.sessLat = append(res.sessLat, s)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

func oneSession(addr, mode string, refuses bool) (greet, whole time.Duration, err error) {
	t0 := time.Now()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	expect := func(code string) error {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return fmt.Errorf("want %s: %v", code, err)
			}
			if code == "" && (line[0] == '4' || line[0] == '5') {
				code = line[:3]
			}
			if !strings.HasPrefix(line, code) || code == "" {
				return fmt.Errorf("want %s, got %q", code, strings.TrimSpace(line))
			}
			if len(line) < 4 || line[3] != '-' {
				return nil
			}
		}
	}
	send := func(s string) { io.WriteString(conn, s) }
	if err := expect("220"); err != nil {
		return 0, 0, err
	}
	greet = time.Since(t0)
	if mode == "session" {
		send("EHLO load.example\r\n")
		if err := expect("250"); err != nil {
			return 0, 0, err
		}
		send("MAIL FROM:<load@example.org>\r\n")
		if err := expect("250"); err != nil {
			return 0, 0, err
		}
		send("RCPT TO:<user@example.test>\r\n")
		want := "250"
		if refuses {
			want = "" // 5xx, or 451 for a greylisted client
		}
		if err := expect(want); err != nil {
			return 0, 0, err
		}
		if !refuses {
			send("DATA\r\n")
			if err := expect("354"); err != nil {
				return 0, 0, err
			}
			send("Subject: load\r\n\r\nA short message.\r\n.\r\n")
			if err := expect("250"); err != nil {
				return 0, 0, err
			}
		}
	}
	send("QUIT\r\n")
	if err := expect("221"); err != nil {
		return 0, 0, err
	}
	return greet, time.Since(t0), nil
}

// memory: peak RSS of mxfront serve after the load, and the cost of each
// idle client held open in a refusal dialogue.
func memory(mx, sink string) {
	port := freePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	_, pid, stop, err := startServer(mx, []string{"serve", "--listen", addr, "--deny", "127.0.0.0/8", "--log", "none",
		"--max-conns", "0", "--max-conns-per-ip", "0", "--", sink}, nil, port)
	if err != nil {
		fatal("memory: %v", err)
	}
	defer stop()
	for i := 0; i < 200; i++ {
		oneSession(addr, "session", true)
	}
	before := rss(pid, "VmRSS")
	var conns []net.Conn
	for i := 0; i < *idle; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			fmt.Printf("memory: idle client %d: %v\n", i, err)
			break
		}
		buf := make([]byte, 64)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(buf) // the greeting: the dialogue is running
		conns = append(conns, c)
	}
	after := rss(pid, "VmRSS")
	fmt.Printf("memory: mxfront serve: %.1f MiB RSS after 200 refused sessions; %.1f MiB with %d idle clients held (%.1f KiB each); peak %.1f MiB\n",
		float64(before)/1024, float64(after)/1024, len(conns), float64(after-before)/float64(max(len(conns), 1)), float64(rss(pid, "VmHWM"))/1024)
	for _, c := range conns {
		c.Close()
	}
}

// rbldnsd starts rbldnsd on a free loopback port with three zones that do
// not list 127.0.0.1 and one that does, and returns the mxfront flags for
// each case; nil when rbldnsd is not installed.
func rbldnsd() (three, listed []string, stop func()) {
	bin, err := exec.LookPath("rbldnsd")
	if err != nil {
		bin = "/usr/sbin/rbldnsd"
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintln(os.Stderr, "load: rbldnsd not installed: no DNS list rows")
			return nil, nil, func() {}
		}
	}
	dir, _ := os.MkdirTemp("", "mxfront-load-dns-")
	os.Chmod(dir, 0o755)
	port := freePort()
	args := []string{"-n", "-b", fmt.Sprintf("127.0.0.1/%d", port), "-w", dir, "-t", "60"}
	for _, z := range []struct{ name, data string }{
		{"a.test", "192.0.2.0/24\n"}, {"b.test", "198.51.100.0/24\n"}, {"c.test", "203.0.113.0/24\n"},
		{"listed.test", "127.0.0.0/8 :127.0.0.2:listed for the load test\n"},
	} {
		os.WriteFile(filepath.Join(dir, z.name), []byte(z.data), 0o644)
		args = append(args, z.name+":ip4set:"+z.name)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		fatal("rbldnsd: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	server := fmt.Sprintf("127.0.0.1:%d", port)
	three = []string{"--dns-server", server, "--dnsbl", "a.test", "--dnsbl", "b.test", "--dnsbl", "c.test"}
	listed = []string{"--dns-server", server, "--dnsbl", "listed.test"}
	return three, listed, func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		os.RemoveAll(dir)
	}
}

func rss(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				return n
			}
		}
	}
	return 0
}

func startServer(bin string, args, env []string, port int) (string, int, func(), error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	for i := 0; i < 200; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, cmd.Process.Pid, stop, nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	stop()
	return "", 0, nil, fmt.Errorf("%s does not listen on %s", bin, addr)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("listen: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func parseInts(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatal("bad concurrency %q", f)
		}
		out = append(out, n)
	}
	return out
}

func median(d []time.Duration) time.Duration { return pct(d, 50) }

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "load: "+format+"\n", a...)
	os.Exit(1)
}
