package recipients

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

func TestList(t *testing.T) {
	l, err := ParseList(strings.NewReader(`# users
Alice@Example.ORG
@catchall.example
!closed@catchall.example
postmaster@example.org.
`), "rcpts")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want Verdict
	}{
		{"alice@example.org", Valid},
		{"ALICE@EXAMPLE.ORG", Valid},
		{"alice@example.org.", Valid},
		{"bob@example.org", Invalid},
		{"postmaster@example.org", Valid},
		{"anyone@catchall.example", Valid},
		{"closed@catchall.example", Invalid},
		{"CLOSED@catchall.example.", Invalid},
		{"anyone@sub.catchall.example", Invalid},
		{"alice", Invalid},
	} {
		if got := l.Lookup(Normal(tc.addr)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.addr, got, tc.want)
		}
	}
	if l.Len() != 4 {
		t.Errorf("Len %d, want 4", l.Len())
	}
}

func TestListErrors(t *testing.T) {
	for _, in := range []string{"a b@example.org", "<a@example.org>", "!@example.org", "@", "!", strings.Repeat("a", 2000)} {
		if _, err := ParseList(strings.NewReader("ok@example.org\n"+in+"\n"), "f"); err == nil {
			t.Errorf("%.40q: no error", in)
		} else if !strings.HasPrefix(err.Error(), "f:") {
			t.Errorf("%.40q: %v: the error does not name the file", in, err)
		}
	}
}

func TestDomains(t *testing.T) {
	d := ParseDomains([]string{"example.org", ".example.net", "# comment", "", "Mixed.Example."})
	for dom, want := range map[string]bool{
		"example.org": true, "EXAMPLE.ORG.": true, "sub.example.org": false,
		"example.net": false, "mx.example.net": true, "mixed.example": true, "other.test": false,
	} {
		if got := d.Contains(dom); got != want {
			t.Errorf("%s: %v, want %v", dom, got, want)
		}
	}
}

// makeCDB builds a cdb of keys (each with its data) with tinycdb's cdb
// tool, the oracle: what it writes, CDB must read.
func makeCDB(t *testing.T, keys, data []string) string {
	t.Helper()
	bin := testpeer.Need(t, "cdb")
	var in bytes.Buffer
	for i, k := range keys {
		fmt.Fprintf(&in, "+%d,%d:%s->%s\n", len(k), len(data[i]), k, data[i])
	}
	in.WriteString("\n")
	p := filepath.Join(t.TempDir(), "db.cdb")
	cmd := exec.Command(bin, "-c", p)
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cdb -c: %v\n%s", err, out)
	}
	return p
}

func openCDB(t *testing.T, p string) *CDB {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, _ := f.Stat()
	c, err := NewCDB(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Random keys, among them binary ones and ones that share a hash table:
// every key is found with its data, and keys not written are not, as
// tinycdb's own `cdb -q` says.
func TestCDBAgainstTinycdb(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var keys, data []string
	seen := map[string]bool{}
	for len(keys) < 3000 {
		b := make([]byte, 1+rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		if len(keys)%2 == 0 {
			b = []byte(fmt.Sprintf("user%d@example%d.org", len(keys), rng.IntN(9)))
		}
		k := string(b)
		if seen[k] || strings.ContainsAny(k, "\n") {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
		data = append(data, fmt.Sprintf("d%d", len(keys)))
	}
	p := makeCDB(t, keys, data)
	c := openCDB(t, p)
	for i, k := range keys {
		d, ok, err := c.Get([]byte(k))
		if err != nil || !ok || string(d) != data[i] {
			t.Fatalf("key %q: %q %v %v, want %q", k, d, ok, err, data[i])
		}
	}
	// Misses, checked against the tool for a sample.
	bin := testpeer.Need(t, "cdb")
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("nobody%d@example.org", i)
		_, ok, err := c.Get([]byte(k))
		if err != nil || ok {
			t.Fatalf("absent key %q: found=%v err=%v", k, ok, err)
		}
		if i < 20 {
			err := exec.Command(bin, "-q", p, k).Run()
			if ee, isExit := err.(*exec.ExitError); !isExit || ee.ExitCode() != 100 {
				t.Fatalf("cdb -q %q: %v, want exit 100: the oracle disagrees", k, err)
			}
		}
	}
}

// A cdb cut short or scribbled on is an error (Unsure), never a crash
// and never "valid".
func TestCDBCorrupt(t *testing.T) {
	keys := []string{"a@example.org", "@example.net"}
	p := makeCDB(t, keys, []string{"", ""})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		m := append([]byte(nil), b...)
		switch i % 3 {
		case 0:
			m = m[:rng.IntN(len(m))]
		default:
			for j := 0; j < 1+rng.IntN(8); j++ {
				m[rng.IntN(len(m))] = byte(rng.IntN(256))
			}
		}
		c, err := NewCDB(bytes.NewReader(m), int64(len(m)))
		if err != nil {
			continue
		}
		for _, k := range append(keys, "b@example.org") {
			_, _, _ = c.Get([]byte(k))
		}
	}
}

func TestValidRcptTo(t *testing.T) {
	p := makeCDB(t, []string{"alice@example.org", "@catchall.example"}, []string{"", ""})
	v := ValidRcptTo{Path: p}
	for addr, want := range map[string]Verdict{
		"alice@example.org": Valid, "bob@example.org": Invalid, "x@catchall.example": Valid,
	} {
		if got, err := v.Lookup(addr); got != want || err != nil {
			t.Errorf("%s: %v %v, want %v", addr, got, err, want)
		}
	}
	if got, err := (ValidRcptTo{Path: p + ".missing"}).Lookup("alice@example.org"); got != Unsure || err == nil {
		t.Errorf("missing file: %v %v, want unsure and an error", got, err)
	}
}

// script writes a RCPTCHECK-style shell script.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rcptcheck")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommand(t *testing.T) {
	p := script(t, `echo "checked $RECIPIENT from $SENDER at $TCPREMOTEIP"
case "$RECIPIENT" in
  alice@*) exit 0 ;;
  later@*) exit 111 ;;
  odd@*) exit 3 ;;
  *) exit 100 ;;
esac`)
	c := &Command{Argv: []string{p}, Timeout: 30 * time.Second}
	for _, tc := range []struct {
		rcpt string
		want Verdict
	}{{"alice@example.org", Valid}, {"later@example.org", Defer}, {"odd@example.org", Valid}, {"bob@example.org", Invalid}} {
		r := c.Check(context.Background(), Query{Recipient: tc.rcpt, Sender: "s@example.net", RemoteIP: "192.0.2.7"})
		if r.Verdict != tc.want || r.Err != nil {
			t.Errorf("%s: %+v, want %v", tc.rcpt, r, tc.want)
		}
		if want := "checked " + tc.rcpt + " from s@example.net at 192.0.2.7"; r.Said != want {
			t.Errorf("%s: said %q, want %q", tc.rcpt, r.Said, want)
		}
	}
}

// A command that hangs is killed at its timeout, and one that cannot run
// is unsure: the recipient is accepted, and the error logged.
func TestCommandFails(t *testing.T) {
	hang := &Command{Argv: []string{script(t, "exec sleep 600")}, Timeout: 100 * time.Millisecond}
	if r := hang.Check(context.Background(), Query{Recipient: "a@example.org"}); r.Verdict != Unsure || r.Err == nil {
		t.Errorf("hanging command: %+v", r)
	}
	gone := &Command{Argv: []string{"/nonexistent/rcptcheck"}}
	if r := gone.Check(context.Background(), Query{Recipient: "a@example.org"}); r.Verdict != Unsure || r.Err == nil {
		t.Errorf("missing command: %+v", r)
	}
}

func TestSet(t *testing.T) {
	list, _ := ParseList(strings.NewReader("alice@example.org\n"), "list")
	defer111 := &Command{Argv: []string{script(t, "exit 111")}, Timeout: 30 * time.Second}
	broken := ValidRcptTo{Path: "/nonexistent.cdb"}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		set  Set
		rcpt string
		want Verdict
	}{
		{"list valid", Set{Lists: []*List{list}}, "Alice@example.org", Valid},
		{"list invalid", Set{Lists: []*List{list}}, "bob@example.org", Invalid},
		{"postmaster", Set{Lists: []*List{list}}, "PostMaster", Valid},
		{"valid wins over a broken cdb", Set{Lists: []*List{list}, CDBs: []ValidRcptTo{broken}}, "alice@example.org", Valid},
		{"broken cdb: unsure", Set{Lists: []*List{list}, CDBs: []ValidRcptTo{broken}}, "bob@example.org", Unsure},
		{"command defers", Set{Lists: []*List{list}, Command: defer111}, "bob@example.org", Defer},
		{"unsure wins over defer", Set{CDBs: []ValidRcptTo{broken}, Command: defer111}, "bob@example.org", Unsure},
	} {
		if r := tc.set.Check(ctx, Query{Recipient: tc.rcpt}); r.Verdict != tc.want {
			t.Errorf("%s: %+v, want %v", tc.name, r, tc.want)
		}
	}
	if !(&Set{}).Empty() || (&Set{Lists: []*List{list}}).Empty() {
		t.Error("Empty is wrong")
	}
}
