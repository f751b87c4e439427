// Package health_test is the end-to-end suite of DNS list health: a real
// list server (rbldnsd) whose zones the test turns bad and good again
// while `mxfront serve` runs (its log lines, /metrics, the status page and
// sd_notify STATUS say so, and no client is refused by a zone set aside);
// rbldnsd stopped (SIGSTOP) so that live lookups time out; and chain mode
// under tcpserver reading the state file that contrib/mxfront-lists.service
// writes with `mxfront check --lists --state-file`. Every mxfront here is
// given --dns-server: no query goes to /etc/resolv.conf's resolver.
package health_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// The lists as rbldnsd serves them at first: each lists the RFC 5782 test
// point 127.0.0.2 and one client of its own; public.test answers every
// query 127.255.255.254 (the list refusing a public resolver).
var zones = []testpeer.RbldnsdZone{
	{Name: "turns.test", Type: "ip4set", Data: turnsGood},
	{Name: "steady.test", Type: "ip4set", Data: ":127.0.0.2:Listed by steady\n127.0.0.2\n127.0.0.11\n"},
	{Name: "public.test", Type: "ip4trie", Data: ":127.255.255.254:public resolver\n0/0\n"},
}

const (
	turnsGood = ":127.0.0.2:Listed by turns\n127.0.0.2\n127.0.0.10\n"
	// 127.0.0.1 listed too: the list would refuse everyone.
	turnsBad = ":127.0.0.2:Listed by turns\n127.0.0.1\n127.0.0.2\n127.0.0.10\n"
)

// rewrite replaces zone i's dataset file and has rbldnsd reload it
// (SIGHUP; rbldnsd reloads a file whose mtime changed, so the mtime moves
// on by a minute each time, whatever the clock's resolution).
func rewrite(t *testing.T, r *testpeer.Rbldnsd, i int, data string) {
	t.Helper()
	file := filepath.Join(r.Dir, fmt.Sprintf("zone%d.%s", i, zones[i].Type))
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	mt := fi.ModTime().Add(time.Minute)
	if err := os.Chtimes(file, mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := r.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// notifySocket is a NOTIFY_SOCKET for serve: what it was told, in order.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		b := make([]byte, 4096)
		for {
			k, err := c.Read(b)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(b[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) last(prefix string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := len(n.msgs) - 1; i >= 0; i-- {
		for _, l := range strings.Split(n.msgs[i], "\n") {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
	}
	return ""
}

func waitLog(t *testing.T, p *testpeer.Proc, what string, re *regexp.Regexp) {
	t.Helper()
	start := time.Now()
	testpeer.Poll(t, what, func() (bool, string) { return re.MatchString(p.Output()), p.Output() })
	t.Logf("%s: after %v", what, time.Since(start))
}

// scrape reads /metrics as series → value.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			m[l[:i]] = v
		}
	}
	return m
}

func page(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// verdict is what PROGRAM (env) says a client from src got, or the
// refusal's reply line.
func verdict(t *testing.T, addr, src string) string {
	t.Helper()
	out := testpeer.Session(t, addr, src, []byte("EHLO client.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u@example.test>\r\nQUIT\r\n"), 15*time.Second)
	if env := testpeer.EnvOf(out); env["MXFRONT_VERDICT"] != "" {
		return env["MXFRONT_VERDICT"]
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "5") || strings.HasPrefix(l, "4") {
			return strings.TrimSpace(l)
		}
	}
	return out
}

func count(re *regexp.Regexp, s string) int { return len(re.FindAllString(s, -1)) }

// A zone that turns bad while serve runs (127.0.0.1 listed: it would refuse
// everyone) is set aside within an interval, logged once with the reason
// and the hint, shown in /metrics, on the status page and in STATUS=; a
// client it lists passes meanwhile while the other lists go on refusing;
// fixed, it is back (logged once) and refuses its client again. A list
// refusing the resolver (127.255.255.254) is set aside at start with the
// plain hint.
func TestServeZoneTurnsBadAndBack(t *testing.T) {
	bin := filepath.Join(testpeer.Binaries(t), "mxfront")
	r := testpeer.StartRbldnsd(t, zones...)
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	metrics := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	notify := listenNotify(t)
	cmd := exec.Command(bin, "serve", "--listen", addr, "--metrics-listen", metrics, "--log", "stderr",
		"--hostname", "mx.example.test", "--dns-server", r.Addr, "--dns-timeout", "1s",
		"--dnsbl", "turns.test", "--dnsbl", "steady.test", "--dnsbl", "public.test",
		"--dns-health-interval", "200ms", "--", "/usr/bin/env")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.path)
	p := testpeer.Start(t, cmd)
	testpeer.WaitOutput(t, p, "metrics="+metrics)

	public := regexp.MustCompile(`msg="DNS list set aside[^"]*" zone=public.test by=health-check reason="refusing: 127.0.0.2 error answer 127.255.255.254[^"]*" hint="answers 127.255.255.254: this list refuses queries from your resolver[^"]*use a local resolver`)
	waitLog(t, p, "public.test set aside at start", public)
	if v := verdict(t, addr, "127.0.0.10"); !strings.HasPrefix(v, "554 5.7.1 Listed by turns") {
		t.Fatalf("127.0.0.10 while turns.test is good: %s", v)
	}
	m := scrape(t, metrics)
	if m[`mxfront_dns_list_set_aside{zone="turns.test"}`] != 0 || m[`mxfront_dns_list_healthy{zone="turns.test"}`] != 1 ||
		m[`mxfront_dns_list_set_aside{zone="public.test"}`] != 1 {
		t.Fatalf("metrics at start: %v", m)
	}

	rewrite(t, r, 0, turnsBad)
	aside := regexp.MustCompile(`level=WARN msg="DNS list set aside[^"]*" zone=turns.test by=health-check reason="answering everything: 127.0.0.2 listed \(127.0.0.2\); 127.0.0.1 listed \(127.0.0.2\)[^"]*" hint="127.0.0.1 is listed: the list answers every address`)
	waitLog(t, p, "turns.test set aside", aside)
	// No one is refused by it now, its own client included; steady.test
	// goes on refusing.
	for _, ip := range []string{"127.0.0.1", "127.0.0.10"} {
		if v := verdict(t, addr, ip); v != "pass" {
			t.Errorf("%s while turns.test is set aside: %s", ip, v)
		}
	}
	if v := verdict(t, addr, "127.0.0.11"); !strings.HasPrefix(v, "554 5.7.1 Listed by steady") {
		t.Errorf("127.0.0.11 (steady.test): %s", v)
	}
	m = scrape(t, metrics)
	if m[`mxfront_dns_list_set_aside{zone="turns.test"}`] != 1 || m[`mxfront_dns_list_healthy{zone="turns.test"}`] != 0 ||
		m[`mxfront_dns_list_set_aside{zone="steady.test"}`] != 0 {
		t.Errorf("metrics while set aside: %v", m)
	}
	if pg := page(t, metrics); !regexp.MustCompile(`data-health="turns.test">set aside since [0-9-]+ [0-9:]+ by health-check: answering everything`).MatchString(pg) ||
		!strings.Contains(pg, `data-health="steady.test">ok (checked`) {
		t.Errorf("status page:\n%s", pg)
	}
	testpeer.Poll(t, "STATUS= to name turns.test", func() (bool, string) {
		s := notify.last("STATUS=")
		return strings.Contains(s, "lists: 1 in use, 2 set aside (turns.test: answering everything; public.test: refusing)"), s
	})

	rewrite(t, r, 0, turnsGood)
	back := regexp.MustCompile(`level=INFO msg="DNS list back in use: it passes its health check" zone=turns.test aside_for=`)
	waitLog(t, p, "turns.test back", back)
	if v := verdict(t, addr, "127.0.0.10"); !strings.HasPrefix(v, "554 5.7.1 Listed by turns") {
		t.Errorf("127.0.0.10 once turns.test is back: %s", v)
	}
	if m := scrape(t, metrics); m[`mxfront_dns_list_set_aside{zone="turns.test"}`] != 0 || m[`mxfront_dns_list_healthy{zone="turns.test"}`] != 1 {
		t.Errorf("metrics once back: %v", m)
	}
	// Dozens of health checks ran meanwhile: each change was logged once.
	log := p.Output()
	if count(aside, log) != 1 || count(back, log) != 1 || count(public, log) != 1 {
		t.Errorf("set aside %d, back %d, public %d times, want once each:\n%s", count(aside, log), count(back, log), count(public, log), log)
	}
}

// rbldnsd stopped: every lookup for a client times out. After
// --dns-health-failures of them in a row the zone is set aside (logged
// once) and the next clients are not kept waiting for it: their lines say
// it was not asked.
func TestServeLiveFailuresSetAside(t *testing.T) {
	bin := filepath.Join(testpeer.Binaries(t), "mxfront")
	r := testpeer.StartRbldnsd(t, zones[1])
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	metrics := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	// The health check runs at start (rbldnsd answers), then not for an
	// hour: only the live failures can set the zone aside here.
	p := testpeer.Start(t, exec.Command(bin, "serve", "--listen", addr, "--metrics-listen", metrics, "--log", "stderr",
		"--hostname", "mx.example.test", "--dns-server", r.Addr, "--dns-timeout", "300ms",
		"--dnsbl", "steady.test", "--dns-health-interval", "1h", "--dns-health-failures", "3", "--", "/usr/bin/env"))
	testpeer.WaitOutput(t, p, "metrics="+metrics)
	// The gauge says healthy before any check too: the status page tells
	// a check that ran ("ok (checked ...)") from none yet. Stopping
	// rbldnsd before the start's check is over set the zone aside by the
	// health check instead of by live failures (once beside another make
	// test).
	checked := regexp.MustCompile(`data-health="steady.test">ok \(checked `)
	testpeer.Poll(t, "the start's health check", func() (bool, string) {
		pg := page(t, metrics)
		return checked.MatchString(pg), pg
	})
	if err := r.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Cmd.Process.Signal(syscall.SIGCONT) })
	live := regexp.MustCompile(`level=WARN msg="DNS list set aside[^"]*" zone=steady.test by=live-failures reason="3 lookups in a row failed; the last: timeout after 300ms" hint="no answer in time`)
	for i := range 3 {
		if v := verdict(t, addr, "127.0.0.11"); v != "pass" {
			t.Fatalf("client %d while rbldnsd is stopped: %s (unsure means accept)", i+1, v)
		}
		if i < 2 && live.MatchString(p.Output()) {
			t.Fatalf("set aside after %d failures:\n%s", i+1, p.Output())
		}
	}
	waitLog(t, p, "steady.test set aside by live failures", live)
	if m := scrape(t, metrics); m[`mxfront_dns_list_set_aside{zone="steady.test"}`] != 1 ||
		m[`mxfront_dns_lookups_total{result="timeout",zone="steady.test"}`] != 3 {
		t.Errorf("metrics: %v", m)
	}
	if v := verdict(t, addr, "127.0.0.12"); v != "pass" {
		t.Fatalf("client after: %s", v)
	}
	skipped := regexp.MustCompile(`msg=pass ip=127.0.0.12 .*reason="DNS lists: steady.test set aside by live-failures since [^ ]+ \(3 lookups in a row failed; the last: timeout after 300ms\): not asked"`)
	waitLog(t, p, "the next client's line", skipped)
	if m := scrape(t, metrics); m[`mxfront_dns_lookups_total{result="timeout",zone="steady.test"}`] != 3 {
		t.Errorf("steady.test asked while set aside: %v", m)
	}
	if n := count(live, p.Output()); n != 1 {
		t.Errorf("set aside logged %d times", n)
	}
}
