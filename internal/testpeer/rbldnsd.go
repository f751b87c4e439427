package testpeer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// RbldnsdZone is one dataset served by rbldnsd: the zone it answers for,
// the dataset type (ip4set, ip4trie, ip6trie, ip4tset, ...) and the text of
// the dataset file (see rbldnsd(8), e.g. ":127.0.0.2:Listed, see $\n127.0.0.2\n").
type RbldnsdZone struct {
	Name string
	Type string
	Data string
}

// Rbldnsd is a running rbldnsd on loopback.
type Rbldnsd struct {
	*Proc
	Addr string // 127.0.0.1:PORT, for UDP and TCP
	Dir  string // where the dataset files are
}

// StartRbldnsd writes the zones' dataset files into a fresh directory and
// runs rbldnsd in the foreground on 127.0.0.1 on a free port, and waits
// until it answers. It is stopped (by PID) when the test ends.
func StartRbldnsd(t testing.TB, zones ...RbldnsdZone) *Rbldnsd {
	t.Helper()
	return StartRbldnsdArgs(t, nil, zones...)
}

// StartRbldnsdArgs is StartRbldnsd with more arguments for rbldnsd (e.g.
// "-l", "+FILE": its query log).
func StartRbldnsdArgs(t testing.TB, extra []string, zones ...RbldnsdZone) *Rbldnsd {
	t.Helper()
	bin := Need(t, "rbldnsd")
	if len(zones) == 0 {
		t.Fatal("testpeer: rbldnsd needs a zone")
	}
	// Not t.TempDir: started as root, rbldnsd reads its files as the
	// rbldns user, who cannot enter a 0700 directory.
	dir, err := os.MkdirTemp("", "mxfront-rbldnsd-")
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	port := FreePort(t)
	args := append([]string{"-n", "-b", fmt.Sprintf("127.0.0.1/%d", port), "-w", dir, "-t", "60"}, extra...)
	for i, z := range zones {
		file := fmt.Sprintf("zone%d.%s", i, z.Type)
		if err := os.WriteFile(filepath.Join(dir, file), []byte(z.Data), 0o644); err != nil {
			t.Fatalf("testpeer: %v", err)
		}
		args = append(args, z.Name+":"+z.Type+":"+file)
	}
	p := Start(t, exec.Command(bin, args...))
	r := &Rbldnsd{Proc: p, Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir}
	r.wait(t, dns.Fqdn(zones[0].Name), 10*time.Second)
	return r
}

// wait asks rbldnsd about name until any answer comes back.
func (r *Rbldnsd) wait(t testing.TB, name string, timeout time.Duration) {
	t.Helper()
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	deadline := time.Now().Add(timeout)
	for {
		_, _, err := c.Exchange(q, r.Addr)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testpeer: rbldnsd does not answer on %s: %v\n%s", r.Addr, err,
				strings.TrimSpace(r.Output()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
