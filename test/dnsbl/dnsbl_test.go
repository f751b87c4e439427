// Package dnsbl_test is the end-to-end suite of mxfront's DNS lists: a real
// list server (rbldnsd) on a loopback port serving ip4set, ip4trie and
// ip6trie zones, real clients (swaks) from several loopback addresses and
// ::1, and the real launchers (tcpserver for chain mode, `mxfront serve`).
// No query ever goes to /etc/resolv.conf's resolver: every mxfront here is
// given --dns-server, and rblsmtpd (the reference for -r -a -b -B -C -t)
// DNSCACHEIP.
package dnsbl_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/internal/testpeer"
)

// The lists, as rbldnsd serves them ($ in a TXT is the client's address):
//
//	127.0.0.2   bl4 trie4 wl six   the RFC 5782 test point
//	127.0.0.3   -                  a clean client
//	127.0.0.10  bl4
//	127.0.0.11  bl4 trie4
//	127.0.0.12  trie4 wl
//	127.0.0.20  bl4 answers 127.255.255.254 (an error code, not a listing)
//	::1         six (ip6trie)
var zones = []testpeer.RbldnsdZone{
	{Name: "bl4.test", Type: "ip4set", Data: `:127.0.0.2:Listed by bl4, see https://bl4.test/?$
127.0.0.2
127.0.0.10
127.0.0.11
127.0.0.20 :127.255.255.254:Query refused: public resolver
`},
	{Name: "trie4.test", Type: "ip4trie", Data: `:127.0.0.4:trie4 lists $
127.0.0.2/32
127.0.0.11/32
127.0.0.12/32
`},
	{Name: "wl.test", Type: "ip4set", Data: ":127.0.10.1:\n127.0.0.2\n127.0.0.12\n"},
	{Name: "six.test", Type: "ip4set", Data: "127.0.0.2 :127.0.0.2:v4 test point\n"},
	{Name: "six.test", Type: "ip6trie", Data: ":127.0.0.2:IPv6 $ listed by six\n::1\n2001:db8:1::/48\n"},
	{Name: "all.test", Type: "ip4trie", Data: ":127.0.0.2:everyone\n0/0\n"},
	{Name: "public.test", Type: "ip4trie", Data: ":127.255.255.254:public resolver\n0/0\n"},
	{Name: "empty.test", Type: "ip4set", Data: "# nothing listed\n"},
}

type env struct {
	mxfront, mxsink string
	dns             string // --dns-server=127.0.0.1:PORT of rbldnsd
}

func setup(t *testing.T) env {
	t.Helper()
	dir := testpeer.Binaries(t)
	r := testpeer.StartRbldnsd(t, zones...)
	return env{mxfront: filepath.Join(dir, "mxfront"), mxsink: filepath.Join(dir, "mxsink"), dns: "--dns-server=" + r.Addr}
}

// chain starts tcpserver > mxfront flags... -- /usr/bin/env on ip and
// returns its address: a passed client reads PROGRAM's environment.
func (e env) chain(t *testing.T, ip string, flags ...string) (string, *testpeer.Proc) {
	t.Helper()
	argv := append(append([]string{e.mxfront, "--hostname", "mx.example.test", e.dns}, flags...), "--", "/usr/bin/env")
	return testpeer.TCPServer(t, ip, argv...)
}

// swaks sends a message from src and returns the transcript and exit
// code. Behind chain's env(1) it is used for refused clients only (envAt
// reads what a passed one gets).
func swaks(t *testing.T, addr, src string) (string, int) {
	t.Helper()
	return testpeer.Swaks(t, addr, src)
}

// rcpt is the whole dialogue of a refused client up to its RCPT.
var rcpt = []byte("EHLO client.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u@example.test>\r\nQUIT\r\n")

// envAt returns the environment PROGRAM (env) got for a client from src.
func envAt(t *testing.T, addr, src string) map[string]string {
	t.Helper()
	return testpeer.EnvOf(testpeer.Session(t, addr, src, nil, 15*time.Second))
}

// Listed, not listed, the TXT reaching the client, the variables reaching
// PROGRAM, the refusal logged: one block list, chain mode.
func TestChainListedAndClean(t *testing.T) {
	e := setup(t)
	addr, ts := e.chain(t, "127.0.0.1", "--dnsbl", "bl4.test")

	out, code := swaks(t, addr, "127.0.0.10")
	if code != 24 || !strings.Contains(out, "<** 554 5.7.1 Listed by bl4, see https://bl4.test/?127.0.0.10") {
		t.Fatalf("listed client: swaks exit %d (want 24, RCPT refused):\n%s", code, out)
	}
	env := envAt(t, addr, "127.0.0.3")
	if env["MXFRONT_VERDICT"] != "pass" || env["MXFRONT_DNSBL"] != "" || env["MXFRONT_SCORE"] != "0" || env["TCPREMOTEIP"] != "127.0.0.3" {
		t.Fatalf("clean client: PROGRAM's environment %v", env)
	}
	if _, ok := env["MXFRONT_DNSBL"]; !ok {
		t.Errorf("MXFRONT_DNSBL not set for a clean client: %v", env)
	}
	testpeer.WaitOutput(t, ts, "ip=127.0.0.10")
	if log := ts.Output(); !strings.Contains(log, `reason="DNS lists: listed by bl4.test; score 1 >= 1"`) {
		t.Errorf("refusal not logged with its zone and score:\n%s", log)
	}
}

// Weights are summed across zones of different types (ip4set, ip4trie):
// with threshold 2 a client on one list passes, with the zone and score
// handed to PROGRAM, and a client on both is refused with the text of the
// heavier list.
func TestChainWeightsSummed(t *testing.T) {
	e := setup(t)
	addr, _ := e.chain(t, "127.0.0.1", "--dnsbl", "bl4.test", "--dnsbl", "trie4.test*1", "--dnsbl-threshold", "2",
		"--dnsbl-reply", "trie4.test=Refused by trie4 for %IP% via %ZONE%")
	env := envAt(t, addr, "127.0.0.10")
	if env["MXFRONT_VERDICT"] != "pass" || env["MXFRONT_DNSBL"] != "bl4.test" || env["MXFRONT_SCORE"] != "1" ||
		!strings.Contains(env["MXFRONT_REASON"], "listed by bl4.test; score 1 below 2") {
		t.Errorf("one list of two: %v", env)
	}
	out, code := swaks(t, addr, "127.0.0.11")
	if code != 24 || !strings.Contains(out, "554 5.7.1 Listed by bl4, see https://bl4.test/?127.0.0.11") {
		t.Errorf("both lists: swaks exit %d:\n%s", code, out)
	}
	addr2, _ := e.chain(t, "127.0.0.1", "--dnsbl", "bl4.test", "--dnsbl", "trie4.test*2", "--dnsbl-threshold", "3",
		"--dnsbl-reply", "trie4.test=Refused by trie4 for %IP% via %ZONE%")
	out, code = swaks(t, addr2, "127.0.0.11")
	if code != 24 || !strings.Contains(out, "554 5.7.1 Refused by trie4 for 127.0.0.11 via trie4.test") {
		t.Errorf("heavier zone's reply: swaks exit %d:\n%s", code, out)
	}
}

// An allow list outweighs a block list: the client is trusted and later
// checks are skipped; a lighter allow list only lowers the score.
func TestChainAllowListOverrides(t *testing.T) {
	e := setup(t)
	addr, _ := e.chain(t, "127.0.0.1", "--dnsbl", "trie4.test", "--dnswl", "wl.test*2")
	env := envAt(t, addr, "127.0.0.12")
	if env["MXFRONT_VERDICT"] != "trusted" || env["MXFRONT_DNSWL"] != "wl.test" || env["MXFRONT_DNSBL"] != "trie4.test" || env["MXFRONT_SCORE"] != "-1" {
		t.Errorf("allow list over block list: %v", env)
	}
	if out, code := swaks(t, addr, "127.0.0.11"); code != 24 || !strings.Contains(out, "554 5.7.1 trie4 lists 127.0.0.11") {
		t.Errorf("block list alone: swaks exit %d:\n%s", code, out)
	}
	addr2, _ := e.chain(t, "127.0.0.1", "--dnsbl", "trie4.test", "--dnswl", "wl.test", "--dnswl-threshold", "-2")
	if env := envAt(t, addr2, "127.0.0.12"); env["MXFRONT_VERDICT"] != "pass" || env["MXFRONT_SCORE"] != "0" {
		t.Errorf("allow list cancelling the block list: %v", env)
	}
}

// A list that answers an error code (127.255.255.254) has not listed the
// client: it passes, and the failure is logged with the zone. With
// --dns-fail tempfail the same client is deferred with 451.
func TestChainErrorAnswerPasses(t *testing.T) {
	e := setup(t)
	addr, ts := e.chain(t, "127.0.0.1", "--dnsbl", "bl4.test")
	env := envAt(t, addr, "127.0.0.20")
	if env["MXFRONT_VERDICT"] != "pass" || env["MXFRONT_SCORE"] != "0" {
		t.Errorf("error answer: %v", env)
	}
	testpeer.WaitOutput(t, ts, `msg="DNS list failed" ip=127.0.0.20 zone=bl4.test query=20.0.0.127.bl4.test cause="error code"`)

	addr2, _ := e.chain(t, "127.0.0.1", "--dnsbl", "bl4.test", "--dns-fail", "tempfail")
	if out, code := swaks(t, addr2, "127.0.0.20"); code != 24 || !strings.Contains(out, "451 4.4.3 Temporary DNS list lookup failure") {
		t.Errorf("--dns-fail tempfail: swaks exit %d:\n%s", code, out)
	}
}

// A dead list server costs at most the deadline and passes the client:
// nothing listens on the port (refused at once), or a socket swallows the
// queries (the deadline runs out).
func TestChainDeadServerPasses(t *testing.T) {
	e := setup(t)
	dead := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	for _, server := range []string{dead, pc.LocalAddr().String()} {
		e := e
		e.dns = "--dns-server=" + server
		addr, ts := e.chain(t, "127.0.0.1", "--dnsbl", "bl4.test", "--dnsbl", "trie4.test", "--dns-timeout", "1s")
		start := time.Now()
		env := envAt(t, addr, "127.0.0.11")
		took := time.Since(start)
		if env["MXFRONT_VERDICT"] != "pass" {
			t.Errorf("server %s: a listed client behind a dead server: %v", server, env)
		}
		// A hang guard, not a speed test (a loaded machine takes seconds
		// to start the processes): the deadline itself is dnsbl's to test.
		if took > 30*time.Second {
			t.Errorf("server %s: the pass took %v with a 1s deadline", server, took)
		}
		testpeer.WaitCount(t, ts, `msg="DNS list failed"`, 2)
		if n := strings.Count(ts.Output(), `msg="DNS list failed"`); n != 2 {
			t.Errorf("server %s: %d failures logged, want one per zone:\n%s", server, n, ts.Output())
		}
	}
}

// IPv6: a client on ::1 is asked in nibble form of an ip6trie zone, in
// chain mode (tcpserver on ::1) and serve mode.
func TestIPv6Client(t *testing.T) {
	e := setup(t)
	addr, _ := e.chain(t, "::1", "--dnsbl", "six.test")
	if out, code := swaks(t, addr, "::1"); code != 24 || !strings.Contains(out, "554 5.7.1 IPv6 ::1 listed by six") {
		t.Errorf("chain, ::1: swaks exit %d:\n%s", code, out)
	}
	addr2, _ := e.chain(t, "::1", "--dnsbl", "bl4.test")
	if env := envAt(t, addr2, "::1"); env["MXFRONT_VERDICT"] != "pass" || env["PROTO"] != "TCP6" {
		t.Errorf("chain, ::1 on an IPv4-only list: %v", env)
	}
}

// rblsmtpd's flags mean what they mean to rblsmtpd: -r is a block list
// with its TXT as the reply, 451 by default and 553 with -b; -a trusts;
// -c defers on DNS trouble, -C passes; -t bounds the refusal dialogue.
func TestRblsmtpdFlags(t *testing.T) {
	e := setup(t)
	addr, _ := e.chain(t, "127.0.0.1", "-r", "bl4.test", "-a", "wl.test", "-b", "-C", "-t", "30")
	if out, code := swaks(t, addr, "127.0.0.10"); code != 24 || !strings.Contains(out, "553 5.7.1 Listed by bl4, see https://bl4.test/?127.0.0.10") {
		t.Errorf("-r -b: swaks exit %d:\n%s", code, out)
	}
	if env := envAt(t, addr, "127.0.0.3"); env["MXFRONT_VERDICT"] != "pass" {
		t.Errorf("-r, clean client: %v", env)
	}

	addr, _ = e.chain(t, "127.0.0.1", "-r", "bl4.test")
	if got := testpeer.Session(t, addr, "127.0.0.10", rcpt, 15*time.Second); !strings.Contains(got, "451 4.7.1 Listed by bl4, see https://bl4.test/?127.0.0.10\r\n") {
		t.Errorf("-r without -b (rblsmtpd's -B): %q", got)
	}

	addr, _ = e.chain(t, "127.0.0.1", "-r", "trie4.test", "-a", "wl.test")
	if env := envAt(t, addr, "127.0.0.12"); env["MXFRONT_VERDICT"] != "trusted" || !strings.Contains(env["MXFRONT_REASON"], "anti-listed by wl.test") {
		t.Errorf("-a over -r: %v", env)
	}

	dead := e
	dead.dns = fmt.Sprintf("--dns-server=127.0.0.1:%d", testpeer.FreePort(t))
	addr, _ = dead.chain(t, "127.0.0.1", "-r", "bl4.test", "-c")
	if got := testpeer.Session(t, addr, "127.0.0.10", rcpt, 15*time.Second); !strings.Contains(got, "451 4.4.3 ") {
		t.Errorf("-c with a dead server: %q", got)
	}
	addr, _ = dead.chain(t, "127.0.0.1", "-r", "bl4.test", "-c", "-C")
	if env := envAt(t, addr, "127.0.0.10"); env["MXFRONT_VERDICT"] != "pass" {
		t.Errorf("-C with a dead server: %v", env)
	}

	// -t 1: a silent refused client is dropped after a second (421);
	// -t 0: the refusal is the greeting, as rblsmtpd's reply at once.
	addr, _ = e.chain(t, "127.0.0.1", "-r", "bl4.test", "-t", "1")
	got := testpeer.Session(t, addr, "127.0.0.10", nil, 15*time.Second)
	if !strings.HasPrefix(got, "220 mx.example.test ESMTP\r\n") || !strings.Contains(got, "421 4.4.2 mx.example.test Error: timeout exceeded") {
		t.Errorf("-t 1, silent client: %q", got)
	}
	addr, _ = e.chain(t, "127.0.0.1", "-r", "bl4.test", "-t", "0")
	if got := testpeer.Session(t, addr, "127.0.0.10", nil, 15*time.Second); got != "421 4.7.1 mx.example.test Listed by bl4, see https://bl4.test/?127.0.0.10\r\n" {
		t.Errorf("-t 0: %q", got)
	}
}

// mxfront serve: one process, one cache, IPv4 and IPv6 listeners; the
// listed client is refused with the TXT, the clean one's message reaches
// PROGRAM with the DNS variables, ::1 meets the ip6trie zone.
func TestServe(t *testing.T) {
	e := setup(t)
	spool := filepath.Join(t.TempDir(), "spool")
	port := testpeer.FreePort(t)
	v4, v6 := fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port)
	p := testpeer.Start(t, exec.Command(e.mxfront, "serve", "--listen", v4, "--listen", v6, e.dns,
		"--dnsbl", "bl4.test", "--dnsbl", "six.test", "--dnsbl-threshold", "1", "--dnswl", "wl.test*5",
		"--hostname", "mx.example.test", "--", e.mxsink, "-spool", spool))
	testpeer.WaitOutput(t, p, "addr="+v6)

	for i := 0; i < 2; i++ { // the second time from the cache
		if out, code := swaks(t, v4, "127.0.0.10"); code != 24 || !strings.Contains(out, "554 5.7.1 Listed by bl4, see https://bl4.test/?127.0.0.10") {
			t.Fatalf("listed client, try %d: swaks exit %d\n%s", i+1, code, out)
		}
	}
	if out, code := swaks(t, v6, "::1"); code != 24 || !strings.Contains(out, "554 5.7.1 IPv6 ::1 listed by six") {
		t.Errorf("IPv6 listed client: swaks exit %d\n%s", code, out)
	}
	if out, code := swaks(t, v4, "127.0.0.3"); code != 0 {
		t.Fatalf("clean client: swaks exit %d\n%s", code, out)
	}
	if out, code := swaks(t, v4, "127.0.0.12"); code != 0 {
		t.Fatalf("allowed client: swaks exit %d\n%s", code, out)
	}
	msgs := testpeer.Spooled(t, spool)
	if len(msgs) != 2 {
		t.Fatalf("sink holds %d messages, want 2", len(msgs))
	}
	var clean, allowed string
	for _, m := range msgs {
		if strings.Contains(m, "X-Mxsink-Env: TCPREMOTEIP=127.0.0.3\n") {
			clean = m
		} else {
			allowed = m
		}
	}
	for _, want := range []string{"MXFRONT_VERDICT=pass", "MXFRONT_DNSBL=", "MXFRONT_DNSWL=", "MXFRONT_SCORE=0"} {
		if !strings.Contains(clean, "X-Mxsink-Env: "+want+"\n") {
			t.Errorf("clean client's PROGRAM lacks %s:\n%s", want, clean)
		}
	}
	for _, want := range []string{"MXFRONT_VERDICT=trusted", "MXFRONT_DNSWL=wl.test", "MXFRONT_SCORE=-5"} {
		if !strings.Contains(allowed, "X-Mxsink-Env: "+want+"\n") {
			t.Errorf("allowed client's PROGRAM lacks %s:\n%s", want, allowed)
		}
	}
	testpeer.WaitCount(t, p, "msg=refused", 3)
	if n := strings.Count(p.Output(), "msg=refused"); n != 3 {
		t.Errorf("%d refusal lines, want 3:\n%s", n, p.Output())
	}
}

// mxfront check IP prints each zone's query, answer, TXT, time and
// whether it counted; check --lists judges each zone by its test points.
func TestCheck(t *testing.T) {
	e := setup(t)
	run := func(args ...string) (string, int) {
		return testpeer.Run(t, 20*time.Second, exec.Command(e.mxfront, append([]string{"check"}, args...)...))
	}
	out, code := run("127.0.0.11", e.dns, "--dnsbl", "bl4.test*2", "--dnsbl", "trie4.test=127.0.0.5", "--dnswl", "wl.test")
	if code != 1 {
		t.Errorf("listed IP: exit %d, want 1\n%s", code, out)
	}
	for _, re := range []string{
		`dnsbl bl4.test*2: query 11.0.0.127.bl4.test; answer 127.0.0.2; txt "Listed by bl4, see https://bl4.test/?127.0.0.11"; time `,
		"; counted +2\n",
		"dnsbl trie4.test=127.0.0.5: query 11.0.0.127.trie4.test; answer 127.0.0.4; txt -; time ",
		"; not counted (filter 127.0.0.5)\n",
		"dnswl wl.test: query 11.0.0.127.wl.test; answer none (not listed); txt -; time ",
		"dns score: 2 (refuse at >= 1, trust at <= -1)\n",
		"reply: 554 5.7.1 Listed by bl4",
		"reason: DNS lists: listed by bl4.test; score 2 >= 1\n",
	} {
		if !strings.Contains(out, re) {
			t.Errorf("check output lacks %q:\n%s", re, out)
		}
	}
	if out, code := run("127.0.0.3", e.dns, "--dnsbl", "bl4.test"); code != 0 || !strings.Contains(out, "verdict: pass") {
		t.Errorf("clean IP: exit %d\n%s", code, out)
	}
	if out, code := run("::1", e.dns, "--dnsbl", "six.test"); code != 1 ||
		!strings.Contains(out, "query "+dnsbl.QueryName(netip.MustParseAddr("::1"), "six.test")+"; answer 127.0.0.2;") {
		t.Errorf("IPv6 IP: exit %d\n%s", code, out)
	}

	out, code = run("--lists", e.dns, "--dnsbl", "bl4.test", "--dnsbl", "trie4.test", "--dnswl", "wl.test", "--dnsbl", "six.test")
	if code != 0 || strings.Count(out, ": ok (") != 4 || !strings.Contains(out, "six.test: ok (") || !strings.Contains(out, "lists: all ok") {
		t.Errorf("healthy lists: exit %d\n%s", code, out)
	}
	out, code = run("--lists", e.dns, "--dnsbl", "bl4.test", "--dnsbl", "empty.test", "--dnsbl", "all.test", "--dnsbl", "public.test")
	for _, want := range []string{"bl4.test: ok (", "empty.test: dead (", "all.test: answering everything (", "public.test: refusing (", "lists: 3 not ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("check --lists output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("check --lists with bad lists: exit %d, want 1", code)
	}
	dead := fmt.Sprintf("--dns-server=127.0.0.1:%d", testpeer.FreePort(t))
	if out, code := run("--lists", dead, "--dns-timeout", "1s", "--dnsbl", "bl4.test"); code != 1 || !strings.Contains(out, "bl4.test: dead (") {
		t.Errorf("check --lists, dead server: exit %d\n%s", code, out)
	}
}

// rblsmtpd itself is the reference: the same arguments given to rblsmtpd
// and to mxfront, against the same lists, give the same reply code and
// text at RCPT, or both run PROGRAM. rblsmtpd asks DNSCACHEIP on port 53,
// so a second rbldnsd serves the lists on port 53 of a loopback address
// of its own (root needed; another make test may hold another).
func TestSameAsRblsmtpd(t *testing.T) {
	e := setup(t)
	rblsmtpd := testpeer.Need(t, "rblsmtpd")
	rbldnsd := testpeer.Need(t, "rbldnsd")
	if os.Geteuid() != 0 {
		msg := "rblsmtpd asks port 53: binding it needs root"
		if testpeer.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "mxfront-rbldnsd-53-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	dnsIP := testpeer.FreeDNSAddr(t)
	args := []string{"-n", "-b", dnsIP + "/53", "-w", dir, "-t", "60"}
	for i, z := range zones[:3] { // bl4, trie4, wl
		file := fmt.Sprintf("zone%d", i)
		if err := os.WriteFile(filepath.Join(dir, file), []byte(z.Data), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, z.Name+":"+z.Type+":"+file)
	}
	p := testpeer.Start(t, exec.Command(rbldnsd, args...))
	testpeer.WaitOutput(t, p, "started")

	// The reply to RCPT without its enhanced code, or "pass".
	reply := func(addr, src string) string {
		got := testpeer.Session(t, addr, src, []byte("HELO client.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u@example.test>\r\nQUIT\r\n"), 15*time.Second)
		if strings.Contains(got, "TCPREMOTEIP="+src) {
			return "pass"
		}
		lines := strings.Split(got, "\r\n")
		if len(lines) < 4 {
			return "short dialogue: " + got
		}
		code, text, _ := strings.Cut(lines[3], " ")
		if len(text) > 6 && text[1] == '.' && text[3] == '.' {
			_, text, _ = strings.Cut(text, " ")
		}
		return code + " " + text
	}
	for _, tc := range []struct {
		args    []string
		clients []string
	}{
		{[]string{"-r", "bl4.test"}, []string{"127.0.0.10", "127.0.0.3"}},
		{[]string{"-b", "-r", "bl4.test"}, []string{"127.0.0.10", "127.0.0.3"}},
		{[]string{"-B", "-r", "trie4.test", "-r", "bl4.test"}, []string{"127.0.0.11", "127.0.0.12"}},
		{[]string{"-a", "wl.test", "-r", "trie4.test"}, []string{"127.0.0.12", "127.0.0.11"}},
		{[]string{"-b", "-C", "-t", "30", "-a", "wl.test", "-r", "bl4.test"}, []string{"127.0.0.10", "127.0.0.2"}},
	} {
		ref, _ := testpeer.TCPServer(t, "127.0.0.1", append(append([]string{"/usr/bin/env", "DNSCACHEIP=" + dnsIP, rblsmtpd}, tc.args...), "/usr/bin/env")...)
		mx, _ := e.chain(t, "127.0.0.1", tc.args...)
		for _, src := range tc.clients {
			want, got := reply(ref, src), reply(mx, src)
			if got != want {
				t.Errorf("%s from %s: rblsmtpd %q, mxfront %q", strings.Join(tc.args, " "), src, want, got)
			}
		}
	}
}
