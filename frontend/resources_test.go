package frontend

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/dnsbl"
	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/internal/logline"
)

// exhaustFDs lowers the process's fd limit to what it has open and fills
// every free slot below it: the next socket(2) or open(2) gets EMFILE.
func exhaustFDs() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	high := 0
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			high = max(high, n)
		}
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	rl.Cur = uint64(high + 1)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return err
	}
	for {
		if _, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0); err != nil {
			return nil // EMFILE: full
		}
	}
}

// Out of fds is not "unsure": a client whose DNS lists or greylist could
// not be asked for lack of our own fds is told 421 4.3.2 (too busy), never
// passed, or anyone holding enough connections open would switch the
// checks off. (Run in a child process: it spends every fd it has.)
func TestOutOfFDsIsNotUnsure(t *testing.T) {
	if os.Getenv("MXFRONT_FD_HELPER") == "1" {
		// The lists' server runs in the parent: it must not want an fd.
		c, err := dnsbl.New(dnsbl.Config{Zones: zonesOf(t, []string{"bl1.test"}, nil),
			Servers: []string{os.Getenv("MXFRONT_FD_DNS")}, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		// The parent's directory: the helper cannot clean up after itself.
		store, err := greylist.OpenBolt(filepath.Join(os.Getenv("MXFRONT_FD_DIR"), "greylist.db"), greylist.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		gp, err := greylist.NewPolicy(store, greylist.Config{})
		if err != nil {
			t.Fatal(err)
		}
		var log strings.Builder
		lists := &Policy{DNS: &DNSLists{Checker: c, Threshold: 1, AllowThreshold: -1}, Log: logline.WriterLogger(&log)}
		grey := &Policy{Greylist: &Greylisting{Policy: gp}, Log: logline.WriterLogger(&log)}
		if err := exhaustFDs(); err != nil {
			t.Fatal(err)
		}
		client := Client{Remote: netip.MustParseAddrPort("192.0.2.1:25")}
		for name, p := range map[string]*Policy{"dns lists": lists, "greylist": grey} {
			v := p.Decide(context.Background(), client)
			if v.Action != Refuse || v.By != ByResources || v.Reply.String() != "421 4.3.2 Too busy, try again later" {
				t.Errorf("%s: out of fds: %v by %v (%s), %q", name, v.Action, v.By, v.Reply, v.Reasons)
			}
		}
		return
	}
	srv := testLists(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestOutOfFDsIsNotUnsure$", "-test.v")
	cmd.Env = append(os.Environ(), "MXFRONT_FD_HELPER=1", "MXFRONT_FD_DIR="+t.TempDir(), "MXFRONT_FD_DNS="+srv.addr)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("helper: %v\n%s", err, out)
	}
}
