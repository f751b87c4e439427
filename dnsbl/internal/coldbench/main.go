// Command coldbench measures what mxfront's chain mode pays for DNS lists:
// the first Check in a fresh process. A Go benchmark cannot show it (its
// loop warms everything up), so each sample is a process of its own.
//
// One sample: one Check against three zones, the time printed in µs:
//
//	coldbench -once -server 127.0.0.1:PORT [-ip 127.0.0.1]
//
// A run: rbldnsd on a free loopback port serving a.test, b.test and
// c.test, then N samples of each given coldbench binary (built from
// different versions of dnsbl), interleaved, and their quartiles:
//
//	coldbench -n 300 old-coldbench new-coldbench
//
// End to end, chain mode as a launcher runs it: N runs of each given
// mxfront binary with three zones and without any, all interleaved, and
// the median wall time of each (fork, exec and exit of /bin/true included):
//
//	coldbench -e2e -n 300 old/bin/mxfront new/bin/mxfront
//
// It never asks /etc/resolv.conf's servers: only the rbldnsd it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
)

func main() {
	once := flag.Bool("once", false, "one sample: one Check, print its time in µs")
	server := flag.String("server", "", "DNS server IP:PORT (-once)")
	ip := flag.String("ip", "127.0.0.2", "client address asked about (-once); 127.0.0.2 is clean, 127.0.0.3 listed")
	second := flag.Bool("second", false, "also time a second Check (-once)")
	n := flag.Int("n", 300, "samples per binary")
	e2e := flag.Bool("e2e", false, "time mxfront binaries end to end, with three zones and without")
	flag.Parse()
	if *once {
		if err := sample(*server, *ip, *second); err != nil {
			fmt.Fprintln(os.Stderr, "coldbench:", err)
			os.Exit(1)
		}
		return
	}
	measure := run
	if *e2e {
		measure = runE2E
	}
	if err := measure(flag.Args(), *n); err != nil {
		fmt.Fprintln(os.Stderr, "coldbench:", err)
		os.Exit(1)
	}
}

// sample is what chain mode does: build a Checker, Check once.
func sample(server, ip string, second bool) error {
	var zones []dnsbl.Zone
	for _, s := range []string{"a.test", "b.test", "c.test"} {
		z, err := dnsbl.ParseZone(s, dnsbl.Block)
		if err != nil {
			return err
		}
		zones = append(zones, z)
	}
	// COLDBENCH_POLLER=1 measures the poller link, serve mode's.
	c, err := dnsbl.New(dnsbl.Config{Zones: zones, Servers: []string{server},
		Poller: os.Getenv("COLDBENCH_POLLER") != ""})
	if err != nil {
		return err
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return err
	}
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	r := c.Check(context.Background(), addr)
	el := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	if r.Failed() {
		return fmt.Errorf("check failed: %v", r.Errors())
	}
	out := strconv.FormatInt(el.Microseconds(), 10)
	if second {
		start = time.Now()
		c.Check(context.Background(), addr)
		out += " " + strconv.FormatInt(time.Since(start).Microseconds(), 10)
	}
	// The first Check's page faults and context switches, which a
	// fresh process pays dearly for on a virtual machine.
	fmt.Println(out, r.Score, after.Minflt-before.Minflt, after.Nvcsw+after.Nivcsw-before.Nvcsw-before.Nivcsw)
	return nil
}

func run(bins []string, n int) error {
	if len(bins) == 0 {
		return fmt.Errorf("no binary to measure")
	}
	addr, stop, err := startRbldnsd()
	if err != nil {
		return err
	}
	defer stop()
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		times := make([][]int, len(bins))
		seconds := make([][]int, len(bins))
		faults := make([][]int, len(bins))
		switches := make([][]int, len(bins))
		for i := 0; i < n; i++ {
			for j, bin := range bins {
				out, err := exec.Command(bin, "-once", "-second", "-server", addr, "-ip", ip).Output()
				if err != nil {
					return fmt.Errorf("%s: %v", bin, err)
				}
				f := strings.Fields(string(out))
				first, _ := strconv.Atoi(f[0])
				sec, _ := strconv.Atoi(f[1])
				times[j] = append(times[j], first)
				seconds[j] = append(seconds[j], sec)
				if len(f) >= 5 {
					flt, _ := strconv.Atoi(f[3])
					csw, _ := strconv.Atoi(f[4])
					faults[j] = append(faults[j], flt)
					switches[j] = append(switches[j], csw)
				}
			}
		}
		fmt.Printf("client %s (%s), %d interleaved samples each, µs: p25 median p75 p90\n", ip,
			map[string]string{"127.0.0.2": "clean: 3 A", "127.0.0.3": "listed: 3 A + 3 TXT"}[ip], n)
		for j, bin := range bins {
			fmt.Printf("  %-28s first Check %s   second Check %s\n", bin, quartiles(times[j]), quartiles(seconds[j]))
			if len(faults[j]) > 0 {
				fmt.Printf("  %-28s first Check: median %d page faults, %d context switches\n", "",
					median(faults[j]), median(switches[j]))
			}
		}
	}
	return nil
}

// runE2E times `mxfront --log none --dns-server ADDR [--dnsbl ZONE]... --
// /bin/true` for a clean client (TCPREMOTEIP=127.0.0.2: three A queries,
// then exec), the figure. (A listed client is refused instead of
// exec'd, which is not comparable with the run without zones.)
func runE2E(bins []string, n int) error {
	if len(bins) == 0 {
		return fmt.Errorf("no binary to measure")
	}
	addr, stop, err := startRbldnsd()
	if err != nil {
		return err
	}
	defer stop()
	type variant struct {
		bin, ip string
		zones   bool
	}
	var vs []variant
	for _, bin := range bins {
		vs = append(vs, variant{bin, "127.0.0.2", false}, variant{bin, "127.0.0.2", true})
	}
	times := make([][]int, len(vs))
	for i := 0; i < n; i++ {
		for j, v := range vs {
			args := []string{"--log", "none", "--dns-server", addr}
			if v.zones {
				args = append(args, "--dnsbl", "a.test", "--dnsbl", "b.test", "--dnsbl", "c.test")
			}
			cmd := exec.Command(v.bin, append(args, "--", "/bin/true")...)
			cmd.Env = append(os.Environ(), "TCPREMOTEIP="+v.ip)
			start := time.Now()
			err := cmd.Run()
			el := time.Since(start)
			if err != nil {
				return fmt.Errorf("%s: %v", v.bin, err)
			}
			times[j] = append(times[j], int(el.Microseconds()))
		}
	}
	fmt.Printf("end to end, %d interleaved runs each, µs: p25 median p75 p90\n", n)
	for j := 0; j < len(vs); j += 2 {
		none, three := median(times[j]), median(times[j+1])
		fmt.Printf("  %-28s %s  no zones %s\n", vs[j].bin, vs[j].ip, quartiles(times[j]))
		fmt.Printf("  %-28s %s  3 zones  %s   (+%d median)\n", vs[j].bin, vs[j].ip, quartiles(times[j+1]), three-none)
	}
	return nil
}

func median(v []int) int {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

func quartiles(v []int) string {
	slices.Sort(v)
	q := func(p float64) int { return v[int(p*float64(len(v)-1))] }
	return fmt.Sprintf("%5d %5d %5d %5d", q(0.25), q(0.5), q(0.75), q(0.9))
}

// startRbldnsd serves a.test, b.test and c.test, each listing 127.0.0.3
// with a TXT (not 127.0.0.2, the client of the end-to-end figure), on a free loopback port, and waits until it answers.
func startRbldnsd() (string, func(), error) {
	bin, err := exec.LookPath("rbldnsd")
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "coldbench-")
	if err != nil {
		return "", nil, err
	}
	// Started as root, rbldnsd reads its files as another user.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", nil, err
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	args := []string{"-n", "-b", fmt.Sprintf("127.0.0.1/%d", port), "-w", dir, "-t", "60"}
	for _, z := range []string{"a", "b", "c"} {
		file := z + ".ip4set"
		data := fmt.Sprintf(":127.0.0.2:Listed by %s.test, see https://%s.test/?$\n127.0.0.3\n", z, z)
		if err := os.WriteFile(filepath.Join(dir, file), []byte(data), 0o644); err != nil {
			return "", nil, err
		}
		args = append(args, z+".test:ip4set:"+file)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() {
		_ = cmd.Process.Kill() // by PID: the one we started
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	// Interrupted, stop it too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		stop()
		os.Exit(1)
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if sampleOK(addr) {
			return addr, stop, nil
		}
		if i == 100 {
			stop()
			return "", nil, fmt.Errorf("rbldnsd does not answer on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sampleOK(addr string) bool {
	z, _ := dnsbl.ParseZone("a.test", dnsbl.Block)
	c, err := dnsbl.New(dnsbl.Config{Zones: []dnsbl.Zone{z}, Servers: []string{addr}, Timeout: 200 * time.Millisecond})
	if err != nil {
		return false
	}
	r := c.Check(context.Background(), netip.MustParseAddr("127.0.0.3"))
	return !r.Failed() && r.Score == 1
}

// freePort returns a port free for both UDP and TCP on 127.0.0.1.
func freePort() (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port")
}
