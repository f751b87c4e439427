package relay_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// mxfilter --local-header-addresses asks the relay's recipient sources
// (here a cdb made with tinycdb's cdb tool) about the local addresses of
// a message's From, Sender and Reply-To.
func TestFilterLocalHeaderAddresses(t *testing.T) {
	bin := filepath.Join(testpeer.Binaries(t), "mxfilter")
	dir := t.TempDir()
	db := filepath.Join(dir, "validrcptto.cdb")
	mk := exec.Command(testpeer.Need(t, "cdb"), "-c", "-m", db)
	mk.Stdin = strings.NewReader("alice@example.test\n")
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("cdb -c -m: %v\n%s", err, out)
	}
	domains := testpeer.WriteFile(t, dir, "rcpthosts", "example.test\n")
	for _, tc := range []struct {
		from string
		code int
		want string
	}{
		{"alice@example.test", 0, "250 "},
		{"ghost@example.test", 20, "554 5.7.1 header address ghost@example.test is not a mailbox of this site"},
		{"someone@example.org", 0, "250 "},
	} {
		cmd := exec.Command(bin, "check", "--local-header-addresses", "--local-domains", domains, "--rcpt-cdb", db, "--from", "bounce@example.org", "--rcpt", "alice@example.test")
		cmd.Stdin = strings.NewReader("From: " + tc.from + "\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nSubject: x\r\n\r\nbody\r\n")
		out, code := testpeer.Run(t, 30*time.Second, cmd)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("From: %s: exit %d, want %d and %q\n%s", tc.from, code, tc.code, tc.want, out)
		}
	}
}
