// Package observe_test is the end-to-end test of --observe: the same
// clients against the same checks, once enforced and once observed,
// through tcpserver (chain mode) and mxfront serve.
package observe_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

const session = "EHLO client.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nQUIT\r\n"

// The clients, each in a /24 of its own (greylisting judges networks):
// one on a DNS list, one on the deny list, one unknown (greylisted), and
// an early talker (unknown too: its refusal replaces greylisting's).
var clients = []struct {
	ip    string
	early bool
}{
	{"127.0.1.66", false}, {"127.0.2.77", false}, {"127.0.3.88", false}, {"127.0.4.99", true},
}

// refusals maps each refused client's IP to its reply, from the log lines
// of refusals (msg=refused or msg=greylisted) with the verdict given; the
// greylist's retry time ("after 12:17:10 UTC") is left out, as it differs
// from run to run.
func refusals(t *testing.T, log, verdict string) map[string]string {
	t.Helper()
	line := regexp.MustCompile(`msg=(?:refused|greylisted) ip=(\S+) .*verdict=` + verdict + ` .*reply="([^"]*)"`)
	out := map[string]string{}
	for _, m := range line.FindAllStringSubmatch(log, -1) {
		reply, _, _ := strings.Cut(m[2], ", after ")
		out[m[1]] = reply
	}
	return out
}

// run starts a frontend with the checks (start returns its address and
// its log), plays every client, and returns what each client heard.
func run(t *testing.T, start func(args ...string) (string, func() string), args ...string) (map[string]string, string) {
	t.Helper()
	addr, log := start(args...)
	heard := map[string]string{}
	for _, c := range clients {
		if c.early {
			heard[c.ip] = testpeer.Session(t, addr, c.ip, []byte(session), 30*time.Second)
			continue
		}
		cl := testpeer.Dial(t, addr, c.ip)
		greeting := cl.Await(t, "220 ")
		cl.Send(t, session)
		heard[c.ip] = greeting + "\n" + cl.Rest(t)
		cl.Close()
	}
	// Every client's refusal line (would-refuse under --observe) is written
	// once its connection ends. Count those: serve also logs "session
	// ended" with the IP for each client it passed, so counting every
	// line with an IP stopped the wait before the last refusal's line.
	refusal := regexp.MustCompile(`msg=(?:refused|greylisted) ip=`)
	deadline := time.Now().Add(30 * time.Second)
	for len(refusal.FindAllString(log(), -1)) < len(clients) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return heard, log()
}

// --observe with every connect-time check: no client is refused, no
// greylist record is written, and the log holds exactly the refusals an
// enforcing run of the same clients gives, as would-refuse.
func TestObserve(t *testing.T) {
	bin := testpeer.Binaries(t)
	mx, sink := filepath.Join(bin, "mxfront"), filepath.Join(bin, "mxsink")
	bl := testpeer.StartRbldnsd(t, testpeer.RbldnsdZone{Name: "bl.test", Type: "ip4set",
		Data: ":127.0.0.2:Listed by bl.test\n127.0.0.2\n127.0.1.66\n"}) // 127.0.0.2: the RFC 5782 test point serve's health check asks
	// A long greeting delay: the early talker must be heard within it
	// even on a loaded machine (one heard after it is not an early talker).
	checks := func(db string) []string {
		return []string{"--hostname", "mx.example.test", "--log", "stderr", "--deny", "127.0.2.77",
			"--dnsbl", "bl.test", "--dns-server", bl.Addr, "--greylist", "--greylist-db", db, "--greet-delay", "3s"}
	}
	spool := t.TempDir()
	program := []string{"--", sink, "-hostname", "mx.example.test", "-spool", spool}
	modes := map[string]func(args ...string) (string, func() string){
		"tcpserver": func(args ...string) (string, func() string) {
			addr, p := testpeer.TCPServer(t, "127.0.0.1", append(append([]string{mx}, args...), program...)...)
			return addr, p.Output
		},
		"serve": func(args ...string) (string, func() string) {
			addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
			p := testpeer.Start(t, exec.Command(mx, append(append([]string{"serve", "--listen", addr}, args...), program...)...))
			testpeer.WaitOutput(t, p, "addr="+addr)
			return addr, p.Output
		},
	}
	for name, start := range modes {
		t.Run(name, func(t *testing.T) {
			enforcedDB, observedDB := filepath.Join(t.TempDir(), "enforced.db"), filepath.Join(t.TempDir(), "observed.db")
			_, enforcedLog := run(t, start, checks(enforcedDB)...)
			heard, observedLog := run(t, start, append(checks(observedDB), "--observe")...)

			want, got := refusals(t, enforcedLog, "refuse"), refusals(t, observedLog, "would-refuse")
			if len(want) != len(clients) {
				t.Fatalf("the enforcing run refused %d clients, want %d:\n%s", len(want), len(clients), enforcedLog)
			}
			for ip, reply := range want {
				if got[ip] != reply {
					t.Errorf("%s: observed %q, enforced %q", ip, got[ip], reply)
				}
			}
			if len(got) != len(want) || strings.Contains(observedLog, "verdict=refuse ") {
				t.Errorf("observed refusals %q, want %q:\n%s", got, want, observedLog)
			}
			for ip, h := range heard {
				if !strings.Contains(h, "250 2.0.0") && !strings.Contains(h, "250 ") || regexp.MustCompile(`(?m)^[45]\d\d `).MatchString(h) {
					t.Errorf("%s was refused under --observe:\n%s", ip, h)
				}
			}
			list, code := testpeer.Run(t, 30*time.Second, exec.Command(mx, "greylist", "list", "--json", "--greylist-db", observedDB))
			if code != 0 || strings.Contains(list, "network") {
				t.Errorf("--observe wrote greylist records (exit %d):\n%s", code, list)
			}
		})
	}
}
