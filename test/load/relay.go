package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"
)

// The inspecting relay (--inspect) beside the exec'd path: rows in the
// table, then a 10 MB message's DATA through each, and serve's memory per
// relayed session held open. The relay's sender check is off in these
// rows (it would ask a DNS server: its cost is that server's).

var (
	relayRuns = flag.Int("relay-data-runs", 5, "10 MB messages sent through each path for the relay's DATA figure")
	relayIdle = flag.Int("relay-idle", 200, "relayed sessions held open against mxfront serve --inspect for the memory figure")
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

// relayFigures prints the time of a 10 MB DATA through the exec'd and the
// relayed chain, and serve's memory per relayed session.
func relayFigures(mx, sink, tcpserver string) {
	if tcpserver != "" {
		msg := bigBody(10 << 20)
		for _, c := range []struct {
			name string
			args []string
		}{{"exec'd: tcpserver > mxfront > sink", nil}, {"relayed: tcpserver > mxfront --inspect > sink", relayFlags}} {
			port := freePort()
			argv := append(append(append([]string{"-HRl0", "127.0.0.1", fmt.Sprint(port), mx}, c.args...), "--"), sink)
			addr, _, stop, err := startServer(tcpserver, argv, nil, port)
			if err != nil {
				fatal("relay data: %v", err)
			}
			var ds []time.Duration
			for i := 0; i < *relayRuns; i++ {
				d, err := dataSession(addr, msg)
				if err != nil {
					fmt.Printf("relay data: %s: %v\n", c.name, err)
					break
				}
				ds = append(ds, d)
			}
			stop()
			if len(ds) > 0 {
				sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
				m := median(ds)
				fmt.Printf("relay data: %-46s 10 MB DATA in %v (median of %d): %.0f MB/s\n", c.name, m.Round(time.Millisecond), len(ds), 10/m.Seconds())
			}
		}
	}
	relayMemory(mx, sink)
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

func bigBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString("Subject: ten megabytes\r\n\r\n")
	line := strings.Repeat("0123456789", 7) + "\r\n"
	for b.Len() < n {
		b.WriteString(line)
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
