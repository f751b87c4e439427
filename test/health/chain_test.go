package health_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// contrib/mxfront-lists.service and .timer as an administrator installs
// them: systemd-analyze verifies the pair and rates the service's
// hardening; the service's ExecStart, run as its user against rbldnsd
// (turns.test gone bad), writes the state file and exits 1; chain mode
// under tcpserver with --dns-health-state then passes the client that only
// turns.test lists, logged with the reason, while steady.test still
// refuses; a stale or missing state file is one warning and every list is
// asked again.
func TestTimerStateFileAndChainMode(t *testing.T) {
	bin := filepath.Join(testpeer.Binaries(t), "mxfront")
	analyze := testpeer.Need(t, "systemd-analyze")
	bad := append([]testpeer.RbldnsdZone{}, zones[:2]...)
	bad[0].Data = turnsBad
	r := testpeer.StartRbldnsd(t, bad...)

	// The state directory, as StateDirectory= makes it for the unit's user.
	dir, err := os.MkdirTemp("", "mxfront-health-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	state := filepath.Join(dir, "lists.state")

	service, timer := testpeer.Contrib(t, "mxfront-lists.service"), testpeer.Contrib(t, "mxfront-lists.timer")
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindStringSubmatch(service)
	if m == nil || !strings.Contains(m[1], "check --lists --state-file /var/lib/mxfront/lists.state") {
		t.Fatalf("mxfront-lists.service ExecStart: %v", m)
	}
	if !regexp.MustCompile(`(?m)^OnUnitActiveSec=5min$`).MatchString(timer) {
		t.Fatal("mxfront-lists.timer does not run every 5 minutes, which --dns-health-max-age's 15m assumes")
	}
	exe := strings.NewReplacer("/usr/sbin/mxfront", bin, "/var/lib/mxfront/lists.state", state,
		"--dnsbl zen.spamhaus.org", "--dnsbl turns.test --dnsbl steady.test", "127.0.0.1:53", r.Addr).Replace(m[1])
	units := t.TempDir()
	testpeer.WriteFile(t, units, "mxfront-lists.service", strings.Replace(service, m[1], exe, 1))
	testpeer.WriteFile(t, units, "mxfront-lists.timer", timer)
	out, err := exec.Command(analyze, "verify", "--man=no", filepath.Join(units, "mxfront-lists.service"),
		filepath.Join(units, "mxfront-lists.timer")).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	if level, sec := testpeer.Exposure(t, analyze, filepath.Join(units, "mxfront-lists.service")); level >= 2 {
		t.Errorf("mxfront-lists.service: exposure %.1f, want below 2 (it needs no privilege):\n%s", level, sec)
	}

	argv := testpeer.AsUnitUser(t, service, strings.Fields(exe))
	out2, code := testpeer.Run(t, 60*time.Second, exec.Command(argv[0], argv[1:]...))
	if code != 1 || !strings.Contains(out2, "turns.test: answering everything") || !strings.Contains(out2, "steady.test: ok") ||
		!strings.Contains(out2, "turns.test: hint: 127.0.0.1 is listed") {
		t.Fatalf("the service's check: exit %d, want 1:\n%s", code, out2)
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^checked \S+Z\naside turns.test \S+Z answering everything: 127.0.0.2 listed`).Match(b) ||
		strings.Contains(string(b), "steady.test") {
		t.Fatalf("state file:\n%s", b)
	}
	if fi, _ := os.Stat(state); fi.Mode().Perm() != 0o644 {
		t.Errorf("state file mode %v, want 0644: chain mode runs as other users", fi.Mode().Perm())
	}

	addr, ts := testpeer.TCPServer(t, "127.0.0.1", bin, "--hostname", "mx.example.test", "--dns-server", r.Addr,
		"--dnsbl", "turns.test", "--dnsbl", "steady.test", "--dns-health-state", state, "--", "/usr/bin/env")
	if v := verdict(t, addr, "127.0.0.10"); v != "pass" {
		t.Fatalf("127.0.0.10 (turns.test only) with the state file: %s", v)
	}
	skipped := regexp.MustCompile(`msg=pass ip=127.0.0.10 .*reason="DNS lists: turns.test set aside by state-file since \S+ \(answering everything: 127.0.0.2 listed[^)]*\)?[^"]*: not asked"`)
	waitLog(t, ts, "the passed client's line", skipped)
	if v := verdict(t, addr, "127.0.0.11"); !strings.HasPrefix(v, "554 5.7.1 Listed by steady") {
		t.Errorf("127.0.0.11 (steady.test): %s", v)
	}
	if strings.Contains(ts.Output(), "level=WARN") {
		t.Errorf("warnings with a fresh state file:\n%s", ts.Output())
	}

	// Stale: older than --dns-health-max-age (15m). Each connection's
	// mxfront reads the file anew.
	old := regexp.MustCompile(`(?m)^checked \S+$`).ReplaceAll(b, []byte("checked "+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)))
	if err := os.WriteFile(state, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if v := verdict(t, addr, "127.0.0.10"); !strings.HasPrefix(v, "554 5.7.1 Listed by turns") {
		t.Errorf("127.0.0.10 with a stale state file: %s", v)
	}
	waitLog(t, ts, "the stale file's warning", regexp.MustCompile(`level=WARN msg="DNS list state file stale: every DNS list is asked" file=\S+ checked=\S+ age=1h0m[0-9]+s max_age=15m0s hint=`))
	os.Remove(state)
	if v := verdict(t, addr, "127.0.0.10"); !strings.HasPrefix(v, "554 5.7.1 Listed by turns") {
		t.Errorf("127.0.0.10 without a state file: %s", v)
	}
	waitLog(t, ts, "the missing file's warning", regexp.MustCompile(`level=WARN msg="DNS list state file unreadable: every DNS list is asked" file=\S+ error="open \S+: no such file or directory"`))
}
