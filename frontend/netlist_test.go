package frontend

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mxfront/mxfront/internal/sanitize"
)

const sampleList = `# a deny file
192.0.2.0/24      spam from the documentation net
192.0.2.77                  
!192.0.2.128/25
192.0.2.200       back in, narrower than the exclusion
10.1              rbldnsd abbreviation of 10.1.0.0/16
172.16.0.5-172.16.0.9 a range
2001:db8::/32     v6 spam
2001:db8:1::1
:127.0.0.2:default value line of rbldnsd
$TTL 3600
198.51.100.1 :127.0.0.2:text after the rbldnsd value
`

func TestNetListLookup(t *testing.T) {
	l := &NetList{}
	if err := l.read(strings.NewReader(sampleList), "deny"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ip, net, reason string
		ok              bool
	}{
		{"192.0.2.1", "192.0.2.0/24", "spam from the documentation net", true},
		{"192.0.2.77", "192.0.2.77", "", true},
		{"192.0.2.130", "", "", false},
		{"192.0.2.200", "192.0.2.200", "back in, narrower than the exclusion", true},
		{"10.1.255.3", "10.1.0.0/16", "rbldnsd abbreviation of 10.1.0.0/16", true},
		{"10.2.0.1", "", "", false},
		{"172.16.0.4", "", "", false},
		{"172.16.0.7", "172.16.0.5-172.16.0.9", "a range", true},
		{"2001:db8:ffff::1", "2001:db8::/32", "v6 spam", true},
		{"2001:db8:1::1", "2001:db8:1::1", "", true},
		{"::ffff:192.0.2.1", "192.0.2.0/24", "spam from the documentation net", true},
		{"2001:db9::1", "", "", false},
		{"198.51.100.1", "198.51.100.1", "text after the rbldnsd value", true},
	}
	for _, tt := range tests {
		got, ok := l.Lookup(netip.MustParseAddr(tt.ip))
		if ok != tt.ok || got.Net != tt.net || got.Reason != tt.reason {
			t.Errorf("Lookup(%s) = %+v %v; want %q %q %v", tt.ip, got, ok, tt.net, tt.reason, tt.ok)
		}
	}
	if got, _ := l.Lookup(netip.MustParseAddr("192.0.2.1")); got.Source != "deny:2" {
		t.Errorf("source = %q, want deny:2", got.Source)
	}
}

func TestNetListErrors(t *testing.T) {
	for _, bad := range []string{"300.1.1.1", "192.0.2.0/33", "1.2.3.4.5", "10.0.0.9-10.0.0.1", "1.2.3.4-2001:db8::1", "::ffff:1.2.3.0/120", "example.org", "!"} {
		l := &NetList{}
		if err := l.read(strings.NewReader("# c\n"+bad+" text\n"), "f"); err == nil {
			t.Errorf("%q: no error", bad)
		} else if !strings.HasPrefix(err.Error(), "f:2: ") {
			t.Errorf("%q: error %q does not name the line", bad, err)
		}
	}
}

func FuzzNetList(f *testing.F) {
	f.Add(sampleList, "192.0.2.1")
	f.Add("10\n!10.0.0.0/8\n", "10.1.2.3")
	f.Add("::/0 all\n", "::1")
	f.Fuzz(func(t *testing.T, file, ip string) {
		l := &NetList{}
		if err := l.read(strings.NewReader(file), "fuzz"); err != nil {
			return
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return
		}
		got, ok := l.Lookup(a)
		if ok && (strings.ContainsAny(got.Reason, "\r\n\x00") || len(got.Reason) > sanitize.MaxReason) {
			t.Fatalf("reason not sanitised: %q", got.Reason)
		}
	})
}

// Where an entry was read is told for the entry a lookup finds: a file's
// name and line, or the flag; the HELO patterns say theirs too.
func TestListSourcesFromFiles(t *testing.T) {
	dir := t.TempDir()
	deny := filepath.Join(dir, "deny")
	if err := os.WriteFile(deny, []byte("# x\n\n192.0.2.0/24 go away\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &NetList{}
	if err := l.ReadFile(deny); err != nil {
		t.Fatal(err)
	}
	if err := l.Add("198.51.100.7", "", "--deny"); err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]string{"192.0.2.9": deny + ":3", "198.51.100.7": "--deny"} {
		if got, _ := l.Lookup(netip.MustParseAddr(ip)); got.Source != want {
			t.Errorf("%s: source %q, want %q", ip, got.Source, want)
		}
	}
	helo := filepath.Join(dir, "helo")
	if err := os.WriteFile(helo, []byte("\n*.dyn.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pats := &HELOPatterns{}
	if err := pats.ReadFile(helo); err != nil {
		t.Fatal(err)
	}
	if p, ok := pats.Match("a.dyn.example"); !ok || p.Source != helo+":2" {
		t.Errorf("HELO pattern: %+v %v, want source %s:2", p, ok, helo)
	}
	// A missing file is an error that names it, as os.Open's did.
	err := (&NetList{}).ReadFile(filepath.Join(dir, "missing"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "open "+dir+"/missing") {
		t.Errorf("missing file: %v", err)
	}
}
