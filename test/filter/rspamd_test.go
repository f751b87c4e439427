package filter_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// rspamd's test patterns (enable_test_patterns in
// testdata/filter/rspamd/rspamd.conf): GTUBE rejects, its Y variant adds a
// header, its Z variant rewrites the subject.
var (
	gtubeAddHeader = "Y" + gtube[1:]
	gtubeRewrite   = "Z" + gtube[1:]
)

// softRejectSubject is the subject testdata/filter/rspamd/soft-reject.map
// holds: the local multimap rule soft-rejects it.
const softRejectSubject = "mxfilter-soft-reject"

// Rspamd is a real rspamd (Debian's package) on a loopback port, with the
// configuration in testdata/filter/rspamd: no module that uses the
// network, and a resolver on a loopback port nothing answers on.
type Rspamd struct {
	Addr string // http://127.0.0.1:PORT
	Proc *testpeer.Proc
}

func startRspamd(t testing.TB) *Rspamd {
	t.Helper()
	bin := testpeer.Need(t, "rspamd")
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	// Everything in a directory of its own that rspamd's unprivileged
	// workers can read and write.
	dir, err := os.MkdirTemp("", "mxfilter-rspamd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	for _, f := range []string{"rspamd.conf", "soft-reject.map"} {
		b, err := os.ReadFile(filepath.Join(root, "testdata/filter/rspamd", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	port, dnsPort := testpeer.FreePort(t), testpeer.FreePort(t)
	args := []string{"-f", "-c", filepath.Join(dir, "rspamd.conf"), "--var", "DIR=" + dir, "--var", fmt.Sprintf("PORT=%d", port),
		"--var", fmt.Sprintf("DNSPORT=%d", dnsPort), "--var", "TESTDATA=" + dir}
	if os.Getuid() == 0 {
		args = append(args, "-u", "nobody", "-g", "nogroup")
	}
	p := testpeer.Start(t, exec.Command(bin, args...))
	r := &Rspamd{Addr: fmt.Sprintf("http://127.0.0.1:%d", port), Proc: p}
	// rspamd compiles its TLD list and regular expressions before it
	// listens: seconds on a quiet machine, over two minutes beside another
	// make test. The deadlines are for a stuck rspamd, not a slow one.
	testpeer.WaitTCP(t, fmt.Sprintf("127.0.0.1:%d", port), 5*time.Minute)
	// Ready once the worker runs with its map loaded: it soft-rejects the
	// probe (a deadline for a slow machine, not an order of events).
	deadline := time.Now().Add(5 * time.Minute)
	for {
		body, err := rspamdProbe(r.Addr, softMessage())
		if err == nil && strings.Contains(body, `"action":"soft reject"`) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("rspamd never soft-rejected the probe: %v %s\n%s", err, body, p.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func rspamdProbe(addr, msg string) (string, error) {
	resp, err := http.Post(addr+"/checkv2", "message/rfc822", strings.NewReader(msg))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, err = fmt.Fprint(&b, readAll(resp))
	return b.String(), err
}

func readAll(resp *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func softMessage() string { return cleanMessage(softRejectSubject) }

var (
	sharedRspamdOnce sync.Once
	sharedRspamd     *Rspamd
)

// rspamd returns the package's shared rspamd, started once.
func rspamd(t *testing.T) string {
	t.Helper()
	testpeer.Need(t, "rspamd")
	sharedRspamdOnce.Do(func() { sharedRspamd = startRspamd(packageT{t}) })
	if sharedRspamd == nil {
		t.Fatal("rspamd did not start")
	}
	return sharedRspamd.Addr
}

// TestRspamdActions: the real rspamd rejects GTUBE (with its own
// smtp_message as the reply text), soft-rejects what the local rule
// names, adds headers for its add-header pattern, and passes a clean
// message, to which --spam-headers adds its score and symbols.
func TestRspamdActions(t *testing.T) {
	addr := rspamd(t)
	env := []string{"MAIL_FROM=alice@example.org", "RCPT_TO=bob@example.test", "TCPREMOTEIP=192.0.2.5", "MXFRONT_HELO=client.example.org"}
	for _, tc := range []struct {
		name, msg, want string
		code            int
		out             []string
	}{
		{"gtube", gtubeMessage(), "554 5.7.1 Gtube pattern", 20, nil},
		{"soft reject", softMessage(), "451 4.7.1 try again later, the test says", 75, nil},
		{"add header", fmt.Sprintf(header, "offer") + "\n" + gtubeAddHeader + "\n", "250 2.0.0 message accepted", 0, []string{"X-Spam-Flag: YES\n", "X-Spam: Yes\n"}},
		{"clean", cleanMessage("lunch"), "250 2.0.0 message accepted", 0, []string{"X-Spam-Flag: NO\n", "X-Spam-Status: No, score=", "action=no action"}},
	} {
		out, log, code := check(t, tc.msg, env, "--rspamd", addr, "--spam-headers", "--headers")
		if code != tc.code || lastLine(out) != tc.want {
			t.Errorf("%s: exit %d %q, want %d %q\n%s", tc.name, code, out, tc.code, tc.want, log)
			continue
		}
		for _, o := range tc.out {
			if !strings.Contains(out, o) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, o, out)
			}
		}
		if !strings.Contains(log, " rspamd="+addr) {
			t.Errorf("%s: the log line does not name rspamd at %s:\n%s", tc.name, addr, log)
		}
	}
}

// TestRspamdRewritesSubject: in qmail-queue mode rspamd's rewrite subject
// reaches NEXT as the new Subject, the rest of the message unchanged.
func TestRspamdRewritesSubject(t *testing.T) {
	addr := rspamd(t)
	dir := t.TempDir()
	next := recorder(t, dir, "0")
	msg := fmt.Sprintf(header, "cheap pills") + "\n" + gtubeRewrite + "\n"
	envelope := "Falice@example.org\x00Tbob@example.test\x00\x00"
	code, _ := qmailSMTPD(t, mxfilter(t), []string{"qmail-queue", "--rspamd", addr, "--", next}, msg, envelope, 0)
	got, _ := os.ReadFile(filepath.Join(dir, "msg"))
	if code != 0 || !strings.Contains(string(got), "\nSubject: ") || strings.Contains(string(got), "Subject: cheap pills\n") ||
		!strings.Contains(string(got), "cheap pills") || !strings.HasPrefix(string(got), "X-Spam: Yes\n") || !strings.HasSuffix(string(got), gtubeRewrite+"\n") {
		t.Fatalf("exit %d, NEXT got:\n%s\n%s", code, got, lastStderr)
	}
}

// TestRspamdStopped: an rspamd that answered and then stopped (by its
// PID) makes mxfilter defer, or accept with --scanner-fail accept; GTUBE
// is then deferred, never accepted.
func TestRspamdStopped(t *testing.T) {
	r := startRspamd(t)
	if out, log, code := check(t, cleanMessage("before"), nil, "--rspamd", r.Addr); code != 0 {
		t.Fatalf("rspamd running: exit %d %q\n%s", code, out, log)
	}
	r.Proc.Stop()
	out, log, code := check(t, cleanMessage("after"), nil, "--rspamd", r.Addr, "--scanner-timeout", "30s")
	if code != 75 || lastLine(out) != "451 4.3.0 content scanner unavailable, try again later" || !strings.Contains(log, "level=WARN") {
		t.Fatalf("rspamd stopped: exit %d %q\n%s", code, out, log)
	}
	if out, _, code = check(t, cleanMessage("after"), nil, "--rspamd", r.Addr, "--scanner-fail", "accept"); code != 0 {
		t.Fatalf("rspamd stopped, --scanner-fail accept: exit %d %q", code, out)
	}
	if out, _, code = check(t, gtubeMessage(), nil, "--rspamd", r.Addr); code != 75 {
		t.Fatalf("GTUBE, rspamd stopped: exit %d %q", code, out)
	}
}
