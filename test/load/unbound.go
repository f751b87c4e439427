package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"

	"github.com/miekg/dns"
)

// unbound starts a caching unbound on a free loopback port that forwards
// the load zones (a.test, b.test, c.test, listed.test) to rbldnsd at
// upstream and answers 127.0.0.1's reverse DNS from its built-in local
// zones (PTR localhost, and localhost's A 127.0.0.1: forward-confirmed):
// the resolver mxfront(8) recommends beside each host, for the rows that
// measure --rdns beside the lists alone. Nothing else is asked of anyone.
// It returns the server's HOST:PORT; "" when unbound is not installed.
func unbound(upstream string) (server string, stop func()) {
	bin, err := exec.LookPath("unbound")
	if err != nil {
		bin = "/usr/sbin/unbound"
		if _, err := os.Stat(bin); err != nil {
			fmt.Fprintln(os.Stderr, "load: unbound not installed: no --rdns rows")
			return "", func() {}
		}
	}
	dir, _ := os.MkdirTemp("", "mxfront-load-unbound-")
	port := freePort()
	stubs := map[string]string{}
	for _, z := range []string{"a.test", "b.test", "c.test", "listed.test"} {
		stubs[z] = upstream
	}
	conf := testpeer.UnboundConfig(port, dir, "", stubs)
	p := filepath.Join(dir, "unbound.conf")
	os.WriteFile(p, []byte(conf), 0o644)
	cmd := exec.Command(bin, "-d", "-c", p)
	if err := cmd.Start(); err != nil {
		fatal("unbound: %v", err)
	}
	server = fmt.Sprintf("127.0.0.1:%d", port)
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		os.RemoveAll(dir)
	}
	// Ready when it answers the reverse DNS of 127.0.0.1 and a list.
	m := new(dns.Msg)
	m.SetQuestion("1.0.0.127.in-addr.arpa.", dns.TypePTR)
	l := new(dns.Msg)
	l.SetQuestion("1.0.0.127.a.test.", dns.TypeA)
	for deadline := time.Now().Add(10 * time.Second); ; {
		r, err := dns.Exchange(m, server)
		r2, err2 := dns.Exchange(l, server)
		if err == nil && err2 == nil && len(r.Answer) > 0 && r2.Rcode == dns.RcodeNameError {
			return server, stop
		}
		if time.Now().After(deadline) {
			stop()
			fatal("unbound did not answer 127.0.0.1's PTR and a.test in 10s: %v %v %v %v", r, err, r2, err2)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
