package testpeer

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// Contrib reads a file of contrib/, the very files administrators install.
func Contrib(t testing.TB, name string) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "contrib", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// AsUnitUser runs argv as the unit's User= and Group=, as systemd would
// (setpriv from util-linux keeps the fds it is given): mxfront never parses
// network input as root. Root is for the test only: without it, argv runs
// as is. A unit without User= and Group= fails the test.
func AsUnitUser(t testing.TB, unit string, argv []string) []string {
	t.Helper()
	user := regexp.MustCompile(`(?m)^User=(\S+)$`).FindStringSubmatch(unit)
	group := regexp.MustCompile(`(?m)^Group=(\S+)$`).FindStringSubmatch(unit)
	if user == nil || group == nil {
		t.Fatal("the unit runs as root: no User= and Group=")
	}
	if os.Geteuid() != 0 {
		return argv
	}
	setpriv := Need(t, "setpriv")
	return append([]string{setpriv, "--reuid=" + user[1], "--regid=" + group[1], "--init-groups", "--"}, argv...)
}

// Exposure is a unit file's `systemd-analyze security --offline` exposure
// level (0 safest, 10 unsafe), logged; the output is returned for the
// caller's error message.
func Exposure(t testing.TB, analyze, unitPath string) (float64, string) {
	t.Helper()
	out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", unitPath).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security %s: %v\n%s", unitPath, err, out)
	}
	level, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("%s: systemd-analyze security exposure %.1f", filepath.Base(unitPath), level)
	return level, string(out)
}

// Poll calls ok until it reports true, for a generous minute, and fails the
// test with what and ok's last word otherwise.
func Poll(t testing.TB, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		done, last := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 60s for %s; last:\n%s", what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
