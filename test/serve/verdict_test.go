package serve_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// envProgram is a PROGRAM that shows mxfront's verdict: its MXFRONT_*
// variables, sorted.
const envProgram = `env | grep ^MXFRONT_ | sort`

// clock strips what depends on the moment of a run: durations and times
// of day (greylist ages and retry times).
var clock = regexp.MustCompile(`[0-9]+(\.[0-9]+)?(ms|µs|s|m|h)\b|[0-9]{2}:[0-9]{2}:[0-9]{2}`)

// The same flags and the same clients in chain mode (under tcpserver) and
// serve mode give the same verdict: the same replies for a refused client,
// the same MXFRONT_* variables for a passed one. Deny and allow lists, DNS
// block and allow lists on rbldnsd, greylisting (first attempt, early
// retry, retry after the delay, known network, skip list) and a bogus
// HELO. (RBLSMTPD is chain mode's alone.)
func TestServeVerdictEqualsChain(t *testing.T) {
	b := build(t)
	dns := testpeer.StartRbldnsd(t,
		testpeer.RbldnsdZone{Name: "bl.test", Type: "ip4set", Data: ":127.0.0.2:Listed by bl.test\n127.0.0.2\n127.0.0.4\n"},
		testpeer.RbldnsdZone{Name: "wl.test", Type: "ip4set", Data: ":127.0.0.2:Known good\n127.0.0.3\n127.0.0.4\n"})
	dir := t.TempDir()
	skip := testpeer.WriteFile(t, dir, "skip", "127.0.0.21\n")
	flags := func(db string) []string {
		return []string{"--hostname", "mx.example.test", "--deny", "127.0.0.66 Denied here", "--allow", "127.0.0.77",
			"--dnsbl", "bl.test", "--dnswl", "wl.test", "--dns-server", dns.Addr,
			"--greylist", "--greylist-db", filepath.Join(dir, db), "--greylist-delay", "2s", "--greylist-v4-prefix", "32",
			"--greylist-skip-file", skip, "--helo-check", "refuse"}
	}
	chainArgs := append(append([]string{b.mxfront}, flags("chain.db")...), "--", "/bin/sh", "-c", envProgram)
	chainAddr, _ := testpeer.TCPServer(t, "127.0.0.1", chainArgs...)
	serveAddr, _ := serve(t, func(addr string) *exec.Cmd {
		// wl.test does not list the RFC 5782 test point 127.0.0.2 (a
		// client here): serve's health check would set it aside.
		args := append(append([]string{"serve", "--listen", addr, "--dns-health-interval", "0"}, flags("serve.db")...), "--", "/bin/sh", "-c", envProgram)
		return exec.Command(b.mxfront, args...)
	})

	type attempt struct{ ip, helo string }
	rounds := [][]attempt{
		{{"127.0.0.66", "client.example.org"}, {"127.0.0.77", "client.example.org"}, {"127.0.0.2", "client.example.org"},
			{"127.0.0.3", "client.example.org"}, {"127.0.0.4", "client.example.org"}, {"127.0.0.21", "client.example.org"},
			{"127.0.0.20", "client.example.org"}, {"127.0.0.22", "localhost"}},
		{{"127.0.0.20", "client.example.org"}}, // too early
		{{"127.0.0.20", "client.example.org"}}, // after the delay: passes
		{{"127.0.0.20", "client.example.org"}}, // known
	}
	for i, round := range rounds {
		if i == 2 {
			time.Sleep(3 * time.Second) // the greylist delay is 2s
		}
		for _, a := range round {
			in := fmt.Sprintf("EHLO %s\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nQUIT\r\n", a.helo)
			chain := normalize(testpeer.Session(t, chainAddr, a.ip, []byte(in), 15*time.Second))
			served := normalize(testpeer.Session(t, serveAddr, a.ip, []byte(in), 15*time.Second))
			if chain != served {
				t.Errorf("round %d, %s (HELO %s):\nchain:\n%s\nserve:\n%s", i, a.ip, a.helo, chain, served)
			} else {
				t.Logf("round %d, %s: %s", i, a.ip, strings.ReplaceAll(chain, "\n", " | "))
			}
			if chain == "" {
				t.Errorf("round %d, %s: no answer", i, a.ip)
			}
		}
	}
}

// normalize keeps the verdict of a session: the RCPT reply of a refusal,
// or PROGRAM's MXFRONT_* lines, without durations and times (and without
// the network's age in seconds that ends MXFRONT_GREYLIST).
func normalize(session string) string {
	var keep []string
	for _, l := range strings.Split(strings.ReplaceAll(session, "\r", ""), "\n") {
		if strings.HasPrefix(l, "MXFRONT_") || (len(l) > 3 && (l[0] == '4' || l[0] == '5')) {
			if strings.HasPrefix(l, "MXFRONT_GREYLIST=") {
				l = strings.TrimRight(l, "0123456789") + "AGE"
			}
			keep = append(keep, clock.ReplaceAllString(l, "T"))
		}
	}
	sort.Strings(keep)
	return strings.Join(keep, "\n")
}
