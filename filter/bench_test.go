package filter

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// WriteTestMessage writes a message of about size bytes to path: a text
// part and a base64 attachment of random bytes (the MIME walk decodes it).
func writeTestMessage(tb testing.TB, path string, size int) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	fmt.Fprint(w, "From: a@example.org\nTo: b@example.test\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nMessage-ID: <bench@example.org>\nSubject: bench\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nhello\n--b\nContent-Type: application/pdf; name=\"data.pdf\"\nContent-Disposition: attachment; filename=\"data.pdf\"\nContent-Transfer-Encoding: base64\n\n")
	rnd := rand.New(rand.NewSource(1))
	raw := make([]byte, 57)
	for n := 0; n < size*3/4; n += 57 {
		rnd.Read(raw)
		w.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n")
	}
	fmt.Fprint(w, "--b--\n")
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
}

func benchJudge(b *testing.B, cfg Config) {
	path := filepath.Join(b.TempDir(), "10k.eml")
	writeTestMessage(b, path, 10<<10)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		f, _ := os.Open(path)
		sp, err := NewSpool(b.TempDir(), f, 0)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		rep := cfg.Judge(context.Background(), &Message{Spool: sp, Env: Envelope{Sender: "a@example.org", Recipients: []string{"b@example.test"}}})
		sp.Close()
		if rep.Verdict.Action != Accept {
			b.Fatalf("%s", rep.Verdict.Reply())
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkBuiltin10KB: 10 KB messages through the built-in checks.
func BenchmarkBuiltin10KB(b *testing.B) { benchJudge(b, DefaultConfig()) }

// BenchmarkClamd10KB: the same with a real clamd (one signature).
func BenchmarkClamd10KB(b *testing.B) {
	bin := testpeer.Need(b, "clamd")
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "test.hdb"), []byte("44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n"), 0o644)
	sock := filepath.Join(dir, "clamd.sock")
	os.WriteFile(filepath.Join(dir, "clamd.conf"), []byte(fmt.Sprintf("Foreground yes\nDatabaseDirectory %s\nLocalSocket %s\nPidFile %s/pid\nTemporaryDirectory %s\n", dir, sock, dir, dir)), 0o644)
	testpeer.Start(b, exec.Command(bin, "--config-file", filepath.Join(dir, "clamd.conf")))
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i > 600 {
			b.Fatal("clamd did not create its socket")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cfg := DefaultConfig()
	cfg.Clamd = []string{sock}
	benchJudge(b, cfg)
}

// peakRSS runs mxfilter check on a message of size bytes and returns the
// child's peak resident set in MiB: VmHWM from /proc, read while the child
// is blocked writing its log line (its stderr is a pipe filled beforehand),
// that is after the message was judged. (ru_maxrss of a child is not
// usable: Linux charges it the parent's resident set at exec.)
func peakRSS(tb testing.TB, size int) float64 {
	path := filepath.Join(tb.TempDir(), "big.eml")
	writeTestMessage(tb, path, size)
	return peakRSSOf(tb, path, "250 ")
}

// leastPeak measures a peak up to three times while it is over bound and
// returns the least. A peak is not the program's alone: on a loaded
// machine (beside another make test) one measure of the 300,000-entry zip
// gave 49.7 MiB where 16 is usual. A program that needs more than the
// bound exceeds it every time.
func leastPeak(bound float64, measure func() float64) float64 {
	least := measure()
	for i := 1; i < 3 && least > bound; i++ {
		least = min(least, measure())
	}
	return least
}

// peakRSSOf is peakRSS for the message in path, whose reply must start
// with want.
func peakRSSOf(tb testing.TB, path, want string) float64 {
	return peakRSSOfBin(tb, mxfilterBin(tb), path, want)
}

// peakRSSOfBin is peakRSSOf for the mxfilter at bin.
func peakRSSOfBin(tb testing.TB, bin, path, want string) float64 {
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer pr.Close()
	fill := make([]byte, 4096)
	raw, _ := pw.SyscallConn()
	raw.Control(func(fd uintptr) {
		for {
			if _, err := syscall.Write(int(fd), fill); err != nil {
				return // EAGAIN: the pipe is full
			}
		}
	})
	cmd := exec.Command(bin, "check", "--from", "a@example.org", "--rcpt", "b@example.test", "--tmpdir", tb.TempDir())
	cmd.Stdin = f
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	pw.Close()
	hwm := -1.0
	deadline := time.Now().Add(5 * time.Minute) // a loaded machine: minutes
	for time.Now().Before(deadline) {
		if blockedOnPipe(cmd.Process.Pid) {
			hwm = vmHWM(tb, cmd.Process.Pid)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	go func() { io.Copy(io.Discard, pr) }()
	if err := cmd.Wait(); !strings.HasPrefix(out.String(), want) {
		tb.Fatalf("mxfilter check: %v %q, want a reply starting %q", err, out.String(), want)
	}
	if hwm < 0 {
		tb.Fatal("mxfilter never blocked on its log line")
	}
	return hwm
}

// blockedOnPipe reports whether a thread of pid sleeps writing to a pipe.
func blockedOnPipe(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/wchan", pid))
	for _, t := range tasks {
		if b, err := os.ReadFile(t); err == nil && strings.Contains(string(b), "pipe_w") {
			return true
		}
	}
	return false
}

func vmHWM(tb testing.TB, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			var kb float64
			fmt.Sscanf(strings.TrimPrefix(l, "VmHWM:"), "%f", &kb)
			return kb / 1024
		}
	}
	tb.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

func BenchmarkPeakRSS1MB(b *testing.B) {
	var rss float64
	for i := 0; i < b.N; i++ {
		rss = peakRSS(b, 1<<20)
	}
	b.ReportMetric(rss, "peak-RSS-MiB")
}

func BenchmarkPeakRSS50MB(b *testing.B) {
	var rss float64
	for i := 0; i < b.N; i++ {
		rss = peakRSS(b, 50<<20)
	}
	b.ReportMetric(rss, "peak-RSS-MiB")
}

// TestPeakRSS50MB: a 50 MB message is judged with at most 32 MiB of peak
// resident memory (the message is streamed, never held whole).
func TestPeakRSS50MB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mxfilter and writes 50 MB")
	}
	if rss := leastPeak(32, func() float64 { return peakRSS(t, 50<<20) }); rss > 32 {
		t.Fatalf("peak RSS %.1f MiB for a 50 MB message, want <= 32", rss)
	} else {
		t.Logf("peak RSS %.1f MiB", rss)
	}
}

// TestPeakRSSLongLines: a 50 MB message that is one endless line, in the
// message header, in a MIME part's header or in a part's body, is judged
// within the same 32 MiB: no line is ever held whole.
func TestPeakRSSLongLines(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mxfilter and writes 50 MB")
	}
	for _, tc := range []struct{ name, prefix, want string }{
		{"header", "From: a@example.org\nDate: d\nX-Long: ", "554 "},
		{"part header", "From: a@example.org\nDate: d\nContent-Type: multipart/mixed; boundary=b\n\n--b\nX-Long: ", "554 "},
		{"part body", "From: a@example.org\nDate: d\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n", "554 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "line.eml")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(f, &endless{prefix: tc.prefix, fill: 'a', n: 50 << 20})
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if rss := leastPeak(32, func() float64 { return peakRSSOf(t, path, tc.want) }); rss > 32 {
				t.Errorf("peak RSS %.1f MiB for a 50 MB line, want <= 32", rss)
			} else {
				t.Logf("peak RSS %.1f MiB", rss)
			}
		})
	}
}

// BenchmarkCheckProcess10KB: one mxfilter check process per 10 KB message,
// as an MTA runs it (process start included); with MXFILTER_BENCH_BASE,
// the base commit's mxfilter too, turn about, in the same run.
func BenchmarkCheckProcess10KB(b *testing.B) {
	bins := []string{mxfilterBin(b)}
	if base := baseBinary(b); base != "" {
		bins = append(bins, base)
	}
	path := filepath.Join(b.TempDir(), "10k.eml")
	writeTestMessage(b, path, 10<<10)
	spent := make([]time.Duration, len(bins))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, bin := range bins {
			start := time.Now()
			f, _ := os.Open(path)
			cmd := exec.Command(bin, "check", "--from", "a@example.org", "--rcpt", "b@example.test")
			cmd.Stdin = f
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			spent[k] += time.Since(start)
		}
	}
	b.ReportMetric(float64(b.N)/spent[0].Seconds(), "msgs/s")
	if len(bins) > 1 {
		b.ReportMetric(float64(b.N)/spent[1].Seconds(), "base-msgs/s")
	}
}

// BenchmarkSpamd10KB: 10 KB messages through the built-in checks and a
// real spamd (local tests only).
func BenchmarkSpamd10KB(b *testing.B) {
	bin := testpeer.Need(b, "spamd")
	// Not b.TempDir: its parent is private to root, and spamd runs as
	// nobody.
	dir, err := os.MkdirTemp("", "mxfilter-bench-spamd-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	site := filepath.Join(dir, "site")
	os.Mkdir(site, 0o755)
	pres, _ := filepath.Glob("/etc/spamassassin/*.pre")
	for _, pre := range pres {
		if data, err := os.ReadFile(pre); err == nil {
			os.WriteFile(filepath.Join(site, filepath.Base(pre)), data, 0o644)
		}
	}
	os.WriteFile(filepath.Join(site, "local.cf"), []byte("required_score 5.0\nuse_bayes 0\nskip_rbl_checks 1\n"), 0o644)
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(b))
	testpeer.Start(b, exec.Command(bin, "-L", "--siteconfigpath", site, "--listen", addr, "--max-children", "2",
		"--nouser-config", "-u", "nobody", "-H", dir, "-s", "stderr", "--pidfile", filepath.Join(dir, "spamd.pid")))
	testpeer.WaitTCP(b, addr, 120*time.Second)
	cfg := DefaultConfig()
	cfg.Spamd = []string{addr}
	benchJudge(b, cfg)
}

// BenchmarkRspamd10KB: the same with a real rspamd, configured as the
// end-to-end suite runs it (testdata/filter/rspamd).
func BenchmarkRspamd10KB(b *testing.B) {
	bin := testpeer.Need(b, "rspamd")
	root, err := testpeer.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mxfilter-bench-rspamd-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	for _, f := range []string{"rspamd.conf", "soft-reject.map"} {
		data, err := os.ReadFile(filepath.Join(root, "testdata/filter/rspamd", f))
		if err != nil {
			b.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), data, 0o644)
	}
	port := testpeer.FreePort(b)
	args := []string{"-f", "-c", filepath.Join(dir, "rspamd.conf"), "--var", "DIR=" + dir, "--var", fmt.Sprintf("PORT=%d", port),
		"--var", fmt.Sprintf("DNSPORT=%d", testpeer.FreePort(b)), "--var", "TESTDATA=" + dir}
	if os.Getuid() == 0 {
		args = append(args, "-u", "nobody", "-g", "nogroup")
	}
	testpeer.Start(b, exec.Command(bin, args...))
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testpeer.WaitTCP(b, addr, 120*time.Second)
	cfg := DefaultConfig()
	cfg.Rspamd = []string{"http://" + addr}
	// The first answers wait for rspamd's worker to start.
	if _, err := RspamdCheck(context.Background(), cfg.Rspamd[0], RspamdEnvelope{}, strings.NewReader(cleanMsg), int64(len(cleanMsg)), 120*time.Second); err != nil {
		b.Fatal(err)
	}
	benchJudge(b, cfg)
}

// writeZipMessage writes a message holding one zip of n empty entries
// (stored, short names), and a blocked name as the very last entry when
// blocked: 300,000 entries make a message of about 42 MB.
func writeZipMessage(tb testing.TB, path string, n int, blocked bool) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprint(w, "From: a@example.org\nTo: b@example.test\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nMessage-ID: <zip@example.org>\nSubject: zip\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: application/zip; name=\"many.zip\"\nContent-Transfer-Encoding: base64\n\n")
	lw := &lineWriter{w: w}
	enc := base64.NewEncoder(base64.StdEncoding, lw)
	zw := zip.NewWriter(bufio.NewWriterSize(enc, 1<<20))
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("d%03d/f%07d.txt", i%1000, i)
		if blocked && i == n-1 {
			name = "d999/setup.exe"
		}
		if _, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	enc.Close()
	fmt.Fprint(w, "\n--b--\n")
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
}

// lineWriter breaks base64 into 76-character lines.
type lineWriter struct {
	w   *bufio.Writer
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	for _, c := range p {
		l.w.WriteByte(c)
		if l.col++; l.col == 76 {
			l.w.WriteByte('\n')
			l.col = 0
		}
	}
	return len(p), nil
}

// TestPeakRSSZip300k: a message holding a zip of 300,000 entries (about
// 42 MB) is judged within 32 MiB, and the executable named by its last
// entry is found: the directory is walked one entry at a time.
func TestPeakRSSZip300k(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mxfilter and writes 42 MB")
	}
	path := filepath.Join(t.TempDir(), "zip.eml")
	writeZipMessage(t, path, 300000, true)
	if rss := leastPeak(32, func() float64 {
		return peakRSSOf(t, path, "554 5.7.1 attachment type refused: d999/setup.exe in many.zip")
	}); rss > 32 {
		t.Fatalf("peak RSS %.1f MiB for a 300,000-entry zip, want <= 32", rss)
	} else {
		t.Logf("peak RSS %.1f MiB", rss)
	}
}

// BenchmarkPeakRSSZip300k: peak RSS of mxfilter check on the 300,000-entry
// zip message; with MXFILTER_BENCH_BASE=COMMIT, also that of the mxfilter
// of COMMIT (built from git archive), measured in the same run.
func BenchmarkPeakRSSZip300k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "zip.eml")
	writeZipMessage(b, path, 300000, false)
	base := baseBinary(b)
	var rss, baseRSS float64
	for i := 0; i < b.N; i++ {
		rss = peakRSSOfBin(b, mxfilterBin(b), path, "250 ")
		if base != "" {
			baseRSS = peakRSSOfBin(b, base, path, "250 ")
		}
	}
	b.ReportMetric(rss, "peak-RSS-MiB")
	if base != "" {
		b.ReportMetric(baseRSS, "base-peak-RSS-MiB")
	}
}

// baseBinary builds cmd/mxfilter as of $MXFILTER_BENCH_BASE ("" when
// unset), for before/after figures from one run.
func baseBinary(tb testing.TB) string {
	commit := os.Getenv("MXFILTER_BENCH_BASE")
	if commit == "" {
		return ""
	}
	root, err := testpeer.ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	archive := exec.Command("sh", "-c", "git archive "+commit+" | tar -x -C "+dir)
	archive.Dir = root
	if out, err := archive.CombinedOutput(); err != nil {
		tb.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	bin := filepath.Join(dir, "mxfilter-base")
	build := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", bin, "./cmd/mxfilter")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("build %s: %v\n%s", commit, err, out)
	}
	return bin
}
