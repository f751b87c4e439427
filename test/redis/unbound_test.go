package redis_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// The recipe's resolver: chain mode (a process per connection, so no cache
// of its own) asks the local unbound, which forwards the lists' zone to
// the list server (rbldnsd) and caches its answers for their TTL. Five
// connections from a listed client and five from a client on no list: each
// is judged as without the resolver (refused with the list's reason, or
// passed), and rbldnsd's query log shows one query per name and type.
func TestUnboundCachesTheListsForChainMode(t *testing.T) {
	const zone = "bl.example.org"
	b := build(t)
	// Short: rbldnsd truncates a long name. Open to rbldnsd's own user.
	dir, err := os.MkdirTemp("", "rbl-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	qlog := filepath.Join(dir, "q.log")
	if err := os.WriteFile(qlog, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(qlog, 0o666) // past the umask
	// $SOA makes the NXDOMAIN of a client on no list cacheable (RFC 2308).
	rbl := testpeer.StartRbldnsdArgs(t, []string{"-l", "+" + qlog}, testpeer.RbldnsdZone{Name: zone, Type: "ip4set",
		Data: "$SOA 300 ns.example.org. hostmaster.example.org. 1 600 300 86400 300\n" +
			":127.0.0.2:Listed in the test list\n127.0.0.50\n"})
	// The recipe's local caching resolver: the lists' zone a stub zone
	// served by rbldnsd; every other name refused.
	resolver := testpeer.StartUnbound(t, "", map[string]string{zone: rbl.Addr})
	h := chainHost(t, b, "mx-c.example.test", "127.0.0.12", "--dnsbl", zone, "--dns-server", resolver)

	for i := range 5 {
		out, code := h.send(t, "127.0.0.50")
		if code == 0 || !strings.Contains(out, "Listed in the test list") {
			t.Fatalf("listed client, connection %d: want a refusal with the list's reason, got exit %d:\n%s", i+1, code, out)
		}
		out, code = h.send(t, "127.0.0.51")
		if code != 0 {
			t.Fatalf("client on no list, connection %d: want delivery, got exit %d:\n%s", i+1, code, out)
		}
	}
	b2, err := os.ReadFile(qlog)
	if err != nil {
		t.Fatal(err)
	}
	// One line a query: "TIME CLIENT NAME TYPE CLASS: ANSWER".
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b2)), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 {
			counts[strings.ToLower(strings.TrimSuffix(f[2], "."))+" "+f[3]]++
		}
	}
	for _, q := range []string{"50.0.0.127." + zone + " A", "50.0.0.127." + zone + " TXT", "51.0.0.127." + zone + " A"} {
		if counts[q] != 1 {
			t.Errorf("rbldnsd was asked %s %d times over 5 connections, want once (unbound's cache):\n%s", q, counts[q], b2)
		}
	}
	if len(counts) == 0 {
		t.Fatalf("rbldnsd's query log is empty: the test proves nothing")
	}
	t.Logf("rbldnsd's queries over 10 connections: %v", counts)
}
