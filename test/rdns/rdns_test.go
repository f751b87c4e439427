// Package rdns_test is the end-to-end suite of the reverse-DNS checks
// (--rdns): an unbound on loopback serving PTR and A records for 127.0.0.x
// (local-data-ptr), tcpserver and mxfront serve in front of mxsink, a
// qmail-smtpd-style PROGRAM that records its environment, and swaks.
package rdns_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testpeer.RemoveBuilds()
	os.Exit(code)
}

// The clients' reverse DNS, as unbound serves it:
//
//	127.0.0.5    confirmed mail.good.example
//	127.0.0.6    unconfirmed: liar.example resolves to 192.0.2.66
//	127.0.0.7    no PTR
//	127.0.0.8    the forward question is REFUSED: error
//	127.0.0.20   confirmed, but a dynamic-pool name
//	127.0.0.30   confirmed mta1.out.example.net
//	127.0.1.31   confirmed mta2.out.example.net: the same pool, another /24
//	127.0.2.40   unconfirmed (nowhere.example does not exist), in a third /24
const zones = `
  local-data-ptr: "127.0.0.5 mail.good.example"
  local-data: "mail.good.example. IN A 127.0.0.5"
  local-data-ptr: "127.0.0.6 liar.example"
  local-data: "liar.example. IN A 192.0.2.66"
  local-data-ptr: "127.0.0.8 x.refused.example"
  local-data-ptr: "127.0.0.20 dsl-127-0-0-20.pool.example"
  local-data: "dsl-127-0-0-20.pool.example. IN A 127.0.0.20"
  local-data-ptr: "127.0.0.30 mta1.out.example.net"
  local-data: "mta1.out.example.net. IN A 127.0.0.30"
  local-data-ptr: "127.0.1.31 mta2.out.example.net"
  local-data: "mta2.out.example.net. IN A 127.0.1.31"
  local-data-ptr: "127.0.2.40 nowhere.example"
  local-zone: "nowhere.example." static
`

type bins struct{ mxfront, mxsink string }

func build(t *testing.T) bins {
	dir := testpeer.Binaries(t)
	return bins{mxfront: filepath.Join(dir, "mxfront"), mxsink: filepath.Join(dir, "mxsink")}
}

// launcher starts mxfront with flags in front of mxsink (spooling to
// spool), one way or the other, and returns the address and the process
// whose output holds mxfront's log.
type launcher struct {
	name  string
	start func(t *testing.T, b bins, spool string, flags ...string) (string, *testpeer.Proc)
}

var launchers = []launcher{
	{"tcpserver", func(t *testing.T, b bins, spool string, flags ...string) (string, *testpeer.Proc) {
		argv := append(append([]string{b.mxfront, "--log", "stderr"}, flags...), "--", b.mxsink, "-spool", spool)
		return testpeer.TCPServer(t, "127.0.0.1", argv...)
	}},
	{"serve", func(t *testing.T, b bins, spool string, flags ...string) (string, *testpeer.Proc) {
		addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
		args := append(append([]string{"serve", "--listen", addr, "--log", "stderr"}, flags...), "--", b.mxsink, "-spool", spool)
		p := testpeer.Start(t, exec.Command(b.mxfront, args...))
		testpeer.WaitOutput(t, p, "addr="+addr)
		return addr, p
	}},
}

// spooledEnv returns the environment PROGRAM had for the message from
// ip in spool, which must hold n messages.
func spooledEnv(t *testing.T, spool string, n int, ip string) map[string]string {
	t.Helper()
	msgs := testpeer.Spooled(t, spool)
	if len(msgs) != n {
		t.Fatalf("the sink holds %d messages, want %d", len(msgs), n)
	}
	for _, m := range msgs {
		env := map[string]string{}
		for _, l := range strings.Split(m, "\n") {
			if kv, ok := strings.CutPrefix(l, "X-Mxsink-Env: "); ok {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
		if env["TCPREMOTEIP"] == ip {
			return env
		}
	}
	t.Fatalf("no message from %s in the sink", ip)
	return nil
}

// logLine returns the log line of ip from out (the last one).
func logLine(t *testing.T, p *testpeer.Proc, ip string) string {
	t.Helper()
	want := " ip=" + ip + " "
	deadline := time.Now().Add(15 * time.Second)
	for {
		lines := strings.Split(p.Output(), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if strings.Contains(lines[i], want) && strings.Contains(lines[i], "verdict=") {
				return lines[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line for %s:\n%s", ip, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A forward-confirmed client gets TCPREMOTEHOST and MXFRONT_RDNS; an
// unconfirmed one, one without PTR and one whose forward question fails
// get no TCPREMOTEHOST and pass under the
// default --rdns-check log; every line says RDNS=.
func TestRDNSExported(t *testing.T) {
	dns := testpeer.StartUnbound(t, zones, nil)
	for _, l := range launchers {
		t.Run(l.name, func(t *testing.T) {
			b := build(t)
			spool := filepath.Join(t.TempDir(), "spool")
			addr, p := l.start(t, b, spool, "--rdns", "--dns-server", dns, "--dns-timeout", "10s")
			n := 0
			for _, tc := range []struct{ ip, host, rdns string }{
				{"127.0.0.5", "mail.good.example", "confirmed mail.good.example"},
				{"127.0.0.6", "", "unconfirmed liar.example"},
				{"127.0.0.7", "", "none"},
				{"127.0.0.8", "", "error"},
			} {
				out, code := testpeer.Swaks(t, addr, tc.ip)
				if code != 0 {
					t.Fatalf("%s: swaks exit %d\n%s", tc.ip, code, out)
				}
				n++
				env := spooledEnv(t, spool, n, tc.ip)
				if env["TCPREMOTEIP"] != tc.ip || env["TCPREMOTEHOST"] != tc.host || env["MXFRONT_RDNS"] != tc.rdns {
					t.Errorf("%s: PROGRAM saw TCPREMOTEHOST=%q MXFRONT_RDNS=%q; want %q %q", tc.ip, env["TCPREMOTEHOST"], env["MXFRONT_RDNS"], tc.host, tc.rdns)
				}
				if _, ok := env["TCPREMOTEHOST"]; ok && tc.host == "" {
					t.Errorf("%s: TCPREMOTEHOST set to %q", tc.ip, env["TCPREMOTEHOST"])
				}
				line := logLine(t, p, tc.ip)
				if !strings.Contains(line, fmt.Sprintf("RDNS=%q", tc.rdns)) && !strings.Contains(line, "RDNS="+tc.rdns+" ") {
					t.Errorf("%s: log line lacks RDNS=%s:\n%s", tc.ip, tc.rdns, line)
				}
			}
		})
	}
}

// Each action through each launcher: unconfirmed and no-PTR clients get
// 450 4.7.25 with --rdns-check tempfail (550 5.7.25 with refuse), a
// dynamic-pool name 550 5.7.1, a DNS error passes (451 4.4.3 with
// --dns-fail tempfail), and a confirmed client is delivered.
func TestRDNSActions(t *testing.T) {
	dns := testpeer.StartUnbound(t, zones, nil)
	dir := t.TempDir()
	pools := filepath.Join(dir, "generic")
	if err := os.WriteFile(pools, []byte("# dynamic pools\n*-%i.pool.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range launchers {
		t.Run(l.name, func(t *testing.T) {
			b := build(t)
			for _, run := range []struct {
				flags []string
				cases map[string]string // ip → the reply wanted, "" for delivered
			}{
				{[]string{"--rdns-check", "tempfail", "--rdns-generic-file", pools, "--rdns-generic-check", "refuse"},
					map[string]string{"127.0.0.5": "", "127.0.0.6": "450 4.7.25", "127.0.0.7": "450 4.7.25",
						"127.0.0.20": "550 5.7.1", "127.0.0.8": ""}},
				{[]string{"--rdns-check", "refuse", "--dns-fail", "tempfail"},
					map[string]string{"127.0.0.5": "", "127.0.0.6": "550 5.7.25", "127.0.0.8": "451 4.4.3"}},
			} {
				spool := filepath.Join(t.TempDir(), "spool")
				addr, p := l.start(t, b, spool, append([]string{"--rdns", "--dns-server", dns, "--dns-timeout", "10s"}, run.flags...)...)
				delivered := 0
				for ip, want := range run.cases {
					out, code := testpeer.Swaks(t, addr, ip)
					if want == "" {
						if code != 0 {
							t.Fatalf("%v %s: swaks exit %d\n%s", run.flags, ip, code, out)
						}
						delivered++
						continue
					}
					if code == 0 || !strings.Contains(out, "<** "+want+" ") {
						t.Fatalf("%v %s: swaks exit %d, want %s\n%s", run.flags, ip, code, want, out)
					}
					line := logLine(t, p, ip)
					if !strings.Contains(line, "msg=refused") || !strings.Contains(line, "RDNS=") {
						t.Errorf("%s: log line:\n%s", ip, line)
					}
				}
				if n := len(testpeer.Spooled(t, spool)); n != delivered {
					t.Fatalf("%v: the sink holds %d messages, want %d", run.flags, n, delivered)
				}
			}
		})
	}
}

// --greylist-by-name: a pool's second address, in another /24, passes at
// its first contact once the first address retried after the delay; an
// unconfirmed client in a third /24 is still greylisted by its network.
func TestGreylistByName(t *testing.T) {
	dns := testpeer.StartUnbound(t, zones, nil)
	for _, l := range launchers {
		t.Run(l.name, func(t *testing.T) {
			b := build(t)
			dir := t.TempDir()
			spool := filepath.Join(dir, "spool")
			const delay = time.Second
			addr, p := l.start(t, b, spool, "--rdns", "--dns-server", dns, "--dns-timeout", "10s",
				"--greylist", "--greylist-db", filepath.Join(dir, "greylist.db"), "--greylist-delay", delay.String(),
				"--greylist-by-name")
			out, code := testpeer.Swaks(t, addr, "127.0.0.30")
			if code == 0 || !strings.Contains(out, "451 4.7.1 Greylisted") {
				t.Fatalf("first contact: swaks exit %d\n%s", code, out)
			}
			first := time.Now() // the record was written before the 451 was sent
			if line := logLine(t, p, "127.0.0.30"); !strings.Contains(line, "name out.example.net") {
				t.Errorf("the greylisted line does not name the pool:\n%s", line)
			}
			// The policy's delay, not an ordering: wait it out.
			time.Sleep(time.Until(first.Add(delay + 200*time.Millisecond)))
			if out, code := testpeer.Swaks(t, addr, "127.0.0.30"); code != 0 {
				t.Fatalf("the retry after the delay: swaks exit %d\n%s", code, out)
			}
			if out, code := testpeer.Swaks(t, addr, "127.0.1.31"); code != 0 {
				t.Fatalf("the pool's second address: swaks exit %d\n%s", code, out)
			}
			env := spooledEnv(t, spool, 2, "127.0.1.31")
			if !strings.HasPrefix(env["MXFRONT_GREYLIST"], "passed ") || env["TCPREMOTEHOST"] != "mta2.out.example.net" {
				t.Errorf("the second address's PROGRAM saw %v", env)
			}
			if out, code := testpeer.Swaks(t, addr, "127.0.2.40"); code == 0 || !strings.Contains(out, "451 4.7.1 Greylisted") {
				t.Fatalf("an unconfirmed client in a new /24: swaks exit %d\n%s", code, out)
			}
			if line := logLine(t, p, "127.0.2.40"); !strings.Contains(line, "network=127.0.2.0/24") {
				t.Errorf("the unconfirmed client is not greylisted by its network:\n%s", line)
			}
		})
	}
}

// mxfront check shows the PTR, the forward lookups and the result.
func TestCheckShowsRDNS(t *testing.T) {
	dns := testpeer.StartUnbound(t, zones, nil)
	b := build(t)
	out, code := testpeer.Run(t, 60*time.Second, exec.Command(b.mxfront, "check", "--rdns", "--dns-server", dns,
		"--rdns-check", "refuse", "127.0.0.6"))
	if code != 1 {
		t.Fatalf("check exit %d\n%s", code, out)
	}
	for _, want := range []string{"rdns: PTR 6.0.0.127.in-addr.arpa: liar.example", "rdns: forward liar.example: 192.0.2.66; does not hold the client",
		"rdns: unconfirmed liar.example", "550 5.7.25"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	out, code = testpeer.Run(t, 60*time.Second, exec.Command(b.mxfront, "check", "--rdns", "--dns-server", dns, "127.0.0.5"))
	if code != 0 || !strings.Contains(out, "rdns: forward mail.good.example: 127.0.0.5; holds the client: confirmed") {
		t.Errorf("check exit %d\n%s", code, out)
	}
}
