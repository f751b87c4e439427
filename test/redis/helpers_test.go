// Package redis_test is the end-to-end suite of several MX hosts sharing
// one greylist in Redis: a real redis-server started on loopback on a free
// port (and stopped by its PID), two `mxfront serve` "MX hosts" on
// 127.0.0.10 and 127.0.0.11, chain mode under tcpserver on 127.0.0.12,
// swaks as the client from 127.0.0.50 and its neighbours, the demo server
// mxsink as PROGRAM, and `mxfront greylist` run beside them. Each test
// reads like a runbook of the scale-out recipe in mxfront(8).
package redis_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// delay is the greylist delay of every test: short, so that a test waits
// for it rather long, never for ordering.
const delay = 3 * time.Second

// patience bounds every wait for something that must happen (a retry to
// pass after the delay, a line in a log): generous, so that a slow or
// loaded machine only makes a test slower.
const patience = 60 * time.Second

type bins struct{ mxfront, mxsink string }

func build(t *testing.T) bins {
	dir := testpeer.Binaries(t)
	return bins{mxfront: filepath.Join(dir, "mxfront"), mxsink: filepath.Join(dir, "mxsink")}
}

// host is one "MX host": mxfront in front of mxsink on its own loopback
// address, its log, and mxsink's spool.
type host struct {
	name, addr, spool string
	p                 *testpeer.Proc
	serve             bool // mxfront serve; else chain mode under tcpserver
}

// serveHost starts `mxfront serve` on ip with the greylist flags given.
func serveHost(t *testing.T, b bins, name, ip string, flags ...string) *host {
	t.Helper()
	h := &host{name: name, addr: net.JoinHostPort(ip, fmt.Sprint(testpeer.FreePort(t))), spool: t.TempDir(), serve: true}
	args := append([]string{"serve", "--listen", h.addr, "--hostname", name, "--log", "stderr"}, flags...)
	args = append(args, "--", b.mxsink, "-hostname", name, "-spool", h.spool)
	h.p = testpeer.Start(t, exec.Command(b.mxfront, args...))
	testpeer.WaitOutput(t, h.p, "addr="+h.addr)
	return h
}

// chainHost starts tcpserver on ip running mxfront in chain mode (one
// process per connection) with the greylist flags given.
func chainHost(t *testing.T, b bins, name, ip string, flags ...string) *host {
	t.Helper()
	h := &host{name: name, spool: t.TempDir()}
	argv := append([]string{b.mxfront, "--hostname", name, "--log", "stderr"}, flags...)
	argv = append(argv, "--", b.mxsink, "-hostname", name, "-spool", h.spool)
	h.addr, h.p = testpeer.TCPServer(t, ip, argv...)
	return h
}

// greylistFlags are every host's flags for the store at url. A host
// waits up to 30 s for Redis unless extra gives its own
// --greylist-store-timeout: beside another make test an answer from a
// running Redis took longer than the 200ms default, and the client passed
// unsure where the test wanted a verdict. The tests of a store that fails
// give short timeouts on purpose; one that is stopped refuses connections
// at once, whatever the timeout.
func greylistFlags(url string, extra ...string) []string {
	flags := []string{"--greylist", "--greylist-store", url, "--greylist-delay", delay.String(), "--greylist-window", "1h"}
	if !slices.Contains(extra, "--greylist-store-timeout") {
		flags = append(flags, "--greylist-store-timeout", "30s")
	}
	return append(flags, extra...)
}

// send has swaks send one message from src through h and returns its
// transcript and exit code (0 delivered, 24 RCPT refused).
func (h *host) send(t *testing.T, src string) (string, int) {
	t.Helper()
	return testpeer.Swaks(t, h.addr, src)
}

// mustGreylisted checks that a swaks run met greylisting's 451 at RCPT.
func mustGreylisted(t *testing.T, out string, code int, who string) {
	t.Helper()
	if code != 24 || !strings.Contains(out, "451 4.7.1 Greylisted: please try again in") {
		t.Fatalf("%s: want 451 4.7.1 Greylisted at RCPT (swaks exit 24), got exit %d:\n%s", who, code, out)
	}
}

func mustPass(t *testing.T, out string, code int, who string) {
	t.Helper()
	if code != 0 {
		t.Fatalf("%s: want delivery (swaks exit 0), got exit %d:\n%s", who, code, out)
	}
}

// passAfterDelay retries from src at h until the message is delivered,
// waiting out the delay since first (records keep whole seconds, so a
// retry in the delay's last second may still be early): each refusal
// before that must be greylisting's, and the retries must pass within
// patience.
func (h *host) passAfterDelay(t *testing.T, src string, first time.Time) string {
	t.Helper()
	time.Sleep(time.Until(first.Add(delay)))
	deadline := time.Now().Add(patience)
	for {
		out, code := h.send(t, src)
		if code == 0 {
			return out
		}
		mustGreylisted(t, out, code, fmt.Sprintf("%s at %s, retrying after the delay", src, h.name))
		if time.Now().After(deadline) {
			t.Fatalf("%s at %s: still greylisted %v after the delay", src, h.name, patience)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logLine returns the last line of h's log that contains all of want,
// waiting (patience at most) for one to appear.
func (h *host) logLine(t *testing.T, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		lines := strings.Split(h.p.Output(), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(lines[i], w)
			}
			if ok {
				return lines[i]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s logged no line with %q:\n%s", h.name, want, h.p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unsureLine waits for the ERROR line that says the store failed for src:
// chain mode logs one per client; serve mode one per incident, which src
// began (see frontend.StoreHealth).
func (h *host) unsureLine(t *testing.T, src string, want ...string) string {
	t.Helper()
	msg := `level=ERROR msg="greylist failed: client passed" ip=`
	if h.serve {
		msg = `level=ERROR msg="greylist store failing: clients pass unchecked until it answers" ip=`
	}
	return h.logLine(t, append([]string{msg + src + " "}, want...)...)
}

// greylistEnv returns MXFRONT_GREYLIST of every message h's server got,
// in no order.
func (h *host) greylistEnv(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, m := range testpeer.Spooled(t, h.spool) {
		for _, line := range strings.Split(m, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "X-Mxsink-Env: MXFRONT_GREYLIST="); ok {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}

// admin runs `mxfront greylist ARGS...` and returns its output and exit
// code.
func admin(t *testing.T, b bins, args ...string) (string, int) {
	t.Helper()
	return testpeer.Run(t, patience, exec.Command(b.mxfront, append([]string{"greylist"}, args...)...))
}

type entry struct {
	Network   string    `json:"network"`
	FirstSeen time.Time `json:"first_seen"`
	LastPass  time.Time `json:"last_pass"`
	Status    string    `json:"status"`
}

func (e entry) equal(o entry) bool {
	return e.Network == o.Network && e.Status == o.Status && e.FirstSeen.Equal(o.FirstSeen) && e.LastPass.Equal(o.LastPass)
}

// listed returns `mxfront greylist list --json STORE-FLAGS...`, sorted by
// network.
func listed(t *testing.T, b bins, storeFlags ...string) []entry {
	t.Helper()
	out, code := admin(t, b, append([]string{"list", "--json"}, storeFlags...)...)
	if code != 0 {
		t.Fatalf("greylist list --json %q: exit %d\n%s", storeFlags, code, out)
	}
	var es []entry
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatalf("greylist list --json %q: %v\n%s", storeFlags, err, out)
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.Network, b.Network) })
	return es
}
