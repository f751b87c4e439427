// Package filter_test runs the real mxfilter binary beside real peers:
// clamd with a test signature database made here, spamd, exim4 -bs, and
// the qmail-queue interface driven as qmail-smtpd drives it.
package filter_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// eicar is the EICAR anti-virus test file (harmless by design); its MD5 is
// the only signature the test clamd knows.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

const eicarMD5 = "44d88612fea8a8f36de82e1278abb02f"

// gtube is SpamAssassin's spam test string.
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

const header = "From: Alice <alice@example.org>\nTo: bob@example.test\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nMessage-ID: <e2e@example.org>\nSubject: %s\n"

func cleanMessage(subject string) string {
	return fmt.Sprintf(header, subject) + "\nHello Bob.\n"
}

func eicarMessage() string {
	return fmt.Sprintf(header, "invoice") + "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nsee attached\n--b\nContent-Type: application/octet-stream; name=\"eicar.com.txt\"\nContent-Disposition: attachment; filename=\"eicar.com.txt\"\nContent-Transfer-Encoding: base64\n\n" +
		base64.StdEncoding.EncodeToString([]byte(eicar)) + "\n--b--\n"
}

func gtubeMessage() string {
	return fmt.Sprintf(header, "offer") + "\n" + gtube + "\n"
}

// mxfilter builds ./cmd/mxfilter alone, once, and returns its path.
func mxfilter(t *testing.T) string { return testpeer.Build(t, "./cmd/mxfilter") }

// Clamd is a clamd on a loopback port with one signature: EICAR's MD5.
type Clamd struct {
	Addr string
	Proc *testpeer.Proc
}

// startClamd starts a clamd whose life is the calling test's.
func startClamd(t testing.TB) *Clamd {
	t.Helper()
	bin := testpeer.Need(t, "clamd")
	dir, err := os.MkdirTemp("", "mxfilter-clamd-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	db := filepath.Join(dir, "db")
	os.Mkdir(db, 0o755)
	if err := os.WriteFile(filepath.Join(db, "test.hdb"), []byte(fmt.Sprintf("%s:%d:Eicar-Test-Signature\n", eicarMD5, len(eicar))), 0o644); err != nil {
		t.Fatal(err)
	}
	port := testpeer.FreePort(t)
	conf := filepath.Join(dir, "clamd.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`Foreground yes
DatabaseDirectory %s
TCPSocket %d
TCPAddr 127.0.0.1
PidFile %s/clamd.pid
LogFile %s/clamd.log
TemporaryDirectory %s
LogVerbose no
`, db, port, dir, dir, dir)), 0o644)
	p := testpeer.Start(t, exec.Command(bin, "--config-file", conf, "--foreground"))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// Generous: the peers' start (clamd's, spamd's rules) takes minutes on
	// a machine that runs another make test beside this one.
	testpeer.WaitTCP(t, addr, 5*time.Minute)
	return &Clamd{Addr: addr, Proc: p}
}

var (
	sharedClamdOnce sync.Once
	sharedClamd     *Clamd
	sharedSpamdOnce sync.Once
	sharedSpamd     string
	peerCleanups    []func()
	peerMu          sync.Mutex
)

// packageT lets peers shared by the package outlive the test that started
// them: they are stopped in TestMain.
type packageT struct{ testing.TB }

func (p packageT) Cleanup(f func()) {
	peerMu.Lock()
	peerCleanups = append(peerCleanups, f)
	peerMu.Unlock()
}

// Failed is false: the test that started a shared peer has ended by the
// time the peer is stopped, and must not be logged to.
func (p packageT) Failed() bool { return false }

func TestMain(m *testing.M) {
	code := m.Run()
	peerMu.Lock()
	for i := len(peerCleanups) - 1; i >= 0; i-- {
		peerCleanups[i]()
	}
	peerMu.Unlock()
	testpeer.RemoveBuilds()
	os.Exit(code)
}

// clamd returns the package's shared clamd, started once.
func clamd(t *testing.T) string {
	t.Helper()
	testpeer.Need(t, "clamd")
	sharedClamdOnce.Do(func() { sharedClamd = startClamd(packageT{t}) })
	if sharedClamd == nil {
		t.Fatal("clamd did not start")
	}
	return sharedClamd.Addr
}

// spamd returns the address of the package's shared spamd (-L: local
// tests only, its own site config directory), started once.
func spamd(t *testing.T) string {
	t.Helper()
	bin := testpeer.Need(t, "spamd")
	sharedSpamdOnce.Do(func() {
		pt := packageT{t}
		dir, err := os.MkdirTemp("", "mxfilter-spamd-")
		if err != nil {
			t.Fatal(err)
		}
		pt.Cleanup(func() { os.RemoveAll(dir) })
		os.Chmod(dir, 0o755)
		site := filepath.Join(dir, "site")
		os.Mkdir(site, 0o755)
		// The site directory replaces /etc/spamassassin: it needs the .pre
		// files that load the plugins (v320.pre loads Check).
		pres, _ := filepath.Glob("/etc/spamassassin/*.pre")
		for _, pre := range pres {
			if b, err := os.ReadFile(pre); err == nil {
				os.WriteFile(filepath.Join(site, filepath.Base(pre)), b, 0o644)
			}
		}
		os.WriteFile(filepath.Join(site, "local.cf"), []byte("required_score 5.0\nuse_bayes 0\nskip_rbl_checks 1\n"), 0o644)
		port := testpeer.FreePort(t)
		cmd := exec.Command(bin, "-L", "--siteconfigpath", site, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
			"--max-children", "2", "--nouser-config", "-u", "nobody", "-H", dir, "-s", "stderr",
			"--pidfile", filepath.Join(dir, "spamd.pid"))
		testpeer.Start(pt, cmd)
		sharedSpamd = fmt.Sprintf("127.0.0.1:%d", port)
		testpeer.WaitTCP(t, sharedSpamd, 5*time.Minute)
	})
	if sharedSpamd == "" {
		t.Fatal("spamd did not start")
	}
	return sharedSpamd
}

// check runs mxfilter check with the message on stdin and returns its
// stdout, stderr and exit code.
func check(t *testing.T, msg string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(mxfilter(t), append([]string{"check"}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	cmd.Stdin = strings.NewReader(msg)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
