package filter_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// recipe reads a recipe from testdata/filter/recipes (the text mxfilter(8)
// shows) and puts the test's paths and addresses in place of the
// installed ones.
func recipe(t *testing.T, name string, repl ...string) string {
	t.Helper()
	root, err := testpeer.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "testdata/filter/recipes", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("recipe %s does not contain %q", name, repl[i])
		}
		s = strings.ReplaceAll(s, repl[i], repl[i+1])
	}
	return s
}

func writeScript(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestManPageShowsRecipes: every recipe the tests run is in mxfilter(8)
// word for word (indented as a code block).
func TestManPageShowsRecipes(t *testing.T) {
	root, _ := testpeer.ModuleRoot()
	man, err := os.ReadFile(filepath.Join(root, "man/mxfilter.8.md"))
	if err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(root, "testdata/filter/recipes/*"))
	if len(names) < 4 {
		t.Fatalf("recipes: %v", names)
	}
	for _, n := range names {
		b, _ := os.ReadFile(n)
		var ind strings.Builder
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if l == "" {
				ind.WriteString("\n")
			} else {
				ind.WriteString("    " + l + "\n")
			}
		}
		if !strings.Contains(string(man), ind.String()) {
			t.Errorf("man/mxfilter.8.md lacks the recipe %s as a code block:\n%s", filepath.Base(n), ind.String())
		}
	}
}

// qmailSMTPD runs program as qmail-smtpd runs $QMAILQUEUE: the message on
// fd 0, then the envelope on fd 1, and (with a patched qmail-smtpd) a
// pipe on fd customFD for the reply text. It returns the exit code and
// what was written on the custom descriptor; the last stderr is in
// lastStderr.
func qmailSMTPD(t *testing.T, program string, args []string, msg, envelope string, customFD int) (int, string) {
	t.Helper()
	cmd := exec.Command(program, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TCPREMOTEIP=192.0.2.25"}
	cmd.Stdin = strings.NewReader(msg)
	er, ew, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = er
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var cr, cw *os.File
	if customFD > 2 {
		cr, cw, _ = os.Pipe()
		cmd.ExtraFiles = make([]*os.File, customFD-2)
		cmd.ExtraFiles[customFD-3] = cw
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	er.Close()
	if cw != nil {
		cw.Close()
	}
	go func() { io.WriteString(ew, envelope); ew.Close() }()
	custom := ""
	if cr != nil {
		b, _ := io.ReadAll(cr)
		custom = string(b)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("mxfilter qmail-queue did not finish")
	}
	t.Logf("stderr: %s", stderr.String())
	lastStderr = stderr.String()
	return cmd.ProcessState.ExitCode(), custom
}

// lastStderr is what the last qmailSMTPD run wrote on stderr.
var lastStderr string

// recorder is a NEXT that records what it gets on fd 0 and fd 1.
func recorder(t *testing.T, dir string, exit string) string {
	return writeScript(t, dir, "next", "#!/bin/sh\ncat > "+dir+"/msg\ncat <&1 > "+dir+"/env\necho ran >> "+dir+"/runs\nexit "+exit+"\n")
}

// TestQmailQueueRecipe drives the QMAILQUEUE wrapper of mxfilter(8) as
// qmail-smtpd does, with real clamd and spamd: an accepted message reaches
// NEXT byte for byte with its envelope unchanged and mxfilter exits with
// NEXT's code; a virus or spam never reaches NEXT and exits 31.
func TestQmailQueueRecipe(t *testing.T) {
	clamdAddr, spamdAddr := clamd(t), spamd(t)
	dir := t.TempDir()
	wrapper := writeScript(t, dir, "mxfilter-qmail-queue", recipe(t, "qmail-queue.sh",
		"/usr/local/sbin/mxfilter", mxfilter(t),
		"127.0.0.1:3310", clamdAddr, "127.0.0.1:783", spamdAddr,
		"/var/qmail/bin/qmail-queue", recorder(t, dir, "${NEXT_EXIT:-0}")))
	// 8-bit body, CRLF and LF mixed, a NUL-free odd ending: all passed on as is.
	msg := strings.Replace(cleanMessage("bytes"), "Hello Bob.\n", "Hello Bob.\r\ncaf\xe9\n\tindented\nno final newline", 1)
	envelope := "Falice@example.org\x00Tbob@example.test\x00Tcarol@example.test\x00\x00"
	code, _ := qmailSMTPD(t, wrapper, nil, msg, envelope, 0)
	gotMsg, _ := os.ReadFile(filepath.Join(dir, "msg"))
	gotEnv, _ := os.ReadFile(filepath.Join(dir, "env"))
	if code != 0 || string(gotMsg) != msg || string(gotEnv) != envelope {
		t.Fatalf("clean: exit %d\nmessage %q\nwant    %q\nenvelope %q", code, gotMsg, msg, gotEnv)
	}
	os.Remove(filepath.Join(dir, "runs"))

	for name, bad := range map[string]string{"eicar": eicarMessage(), "gtube": gtubeMessage()} {
		code, _ = qmailSMTPD(t, wrapper, nil, bad, envelope, 0)
		if code != 31 {
			t.Errorf("%s: exit %d, want 31", name, code)
		}
		if _, err := os.Stat(filepath.Join(dir, "runs")); err == nil {
			t.Fatalf("%s: NEXT ran for a refused message", name)
		}
	}
}

// TestQmailQueueCodes: NEXT's exit code is mxfilter's; a bad envelope is
// 91 and a temporary refusal 71, neither running NEXT; with
// --custom-error the reply text goes to the patch's descriptor with exit 82.
func TestQmailQueueCodes(t *testing.T) {
	dir := t.TempDir()
	next := recorder(t, dir, "53")
	bin := mxfilter(t)
	envelope := "Fa@example.org\x00Tb@example.test\x00\x00"
	if code, _ := qmailSMTPD(t, bin, []string{"qmail-queue", "--", next}, cleanMessage("x"), envelope, 0); code != 53 {
		t.Errorf("NEXT exits 53: mxfilter exits %d", code)
	}
	// One log line, written after NEXT ran and saying how it ended.
	if strings.Count(lastStderr, "\n") != 1 || !strings.Contains(lastStderr, "verdict=accept") || !strings.HasSuffix(lastStderr, " next=53\n") {
		t.Errorf("NEXT exits 53: the log line does not say so:\n%s", lastStderr)
	}
	os.Remove(filepath.Join(dir, "runs"))
	if code, _ := qmailSMTPD(t, bin, []string{"qmail-queue", "--", next}, cleanMessage("x"), "Fa@example.org\x00Tb@x", 0); code != 91 {
		t.Errorf("truncated envelope: exit %d, want 91", code)
	}
	tempfail := []string{"qmail-queue", "--exec", "echo busy; exit 111", "--", next}
	if code, _ := qmailSMTPD(t, bin, tempfail, cleanMessage("x"), envelope, 0); code != 71 {
		t.Errorf("--exec exit 111: exit %d, want 71", code)
	}
	for _, tc := range []struct {
		patch string
		fd    int
	}{{"simscan", 4}, {"notqmail", 6}} {
		code, text := qmailSMTPD(t, bin, []string{"qmail-queue", "--custom-error", tc.patch, "--", next}, "Subject: no from\n\nx\n", envelope, tc.fd)
		if code != 82 || text != "D5.6.0 message lacks a required header: From" {
			t.Errorf("%s: exit %d, fd %d %q", tc.patch, code, tc.fd, text)
		}
		code, text = qmailSMTPD(t, bin, append([]string{"qmail-queue", "--custom-error", tc.patch}, tempfail[1:]...), cleanMessage("x"), envelope, tc.fd)
		if code != 82 || text != "Z4.3.0 busy" {
			t.Errorf("%s tempfail: exit %d, fd %d %q", tc.patch, code, tc.fd, text)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "runs")); err == nil {
		t.Fatal("NEXT ran for a refused message")
	}
}

// TestChasquidRecipe runs the post-data hook of mxfilter(8) as chasquid
// does: envelope in MAIL_FROM/RCPT_TO, exit 20 and the reply as the last
// line on refusal, header lines only on success.
func TestChasquidRecipe(t *testing.T) {
	clamdAddr, spamdAddr := clamd(t), spamd(t)
	dir := t.TempDir()
	hook := writeScript(t, dir, "post-data", recipe(t, "chasquid-post-data.sh",
		"/usr/local/sbin/mxfilter", mxfilter(t), "127.0.0.1:3310", clamdAddr, "127.0.0.1:783", spamdAddr+" --spam-headers"))
	env := []string{"PATH=/usr/bin:/bin", "MAIL_FROM=alice@example.org", "RCPT_TO=bob@example.test carol@example.test", "REMOTE_ADDR=192.0.2.9", "EHLO_DOMAIN=client.example.org"}
	run := func(msg string) (string, int) {
		cmd := exec.Command(hook)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(msg)
		out, _ := cmd.Output()
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := run(eicarMessage())
	if code != 20 || !strings.HasPrefix(out, "554 5.7.1 message contains a virus") || strings.Count(out, "\n") != 1 {
		t.Errorf("EICAR: exit %d %q", code, out)
	}
	out, code = run(cleanMessage("hi"))
	if code != 0 || !strings.HasPrefix(out, "X-Spam-Flag: NO\nX-Spam-Score: ") || strings.Contains(out, "250 ") {
		t.Errorf("clean: exit %d %q", code, out)
	}
}

// TestPostfixPipeRecipe runs the pipe(8) script of mxfilter(8) as Postfix
// does (argv sender recipients, message on stdin) with a recording
// sendmail: a clean message is re-injected unchanged with its envelope, a
// virus exits 69 with the reply and is not re-injected.
func TestPostfixPipeRecipe(t *testing.T) {
	clamdAddr := clamd(t)
	dir := t.TempDir()
	script := writeScript(t, dir, "mxfilter-postfix", recipe(t, "postfix-pipe.sh",
		"/usr/local/sbin/mxfilter", mxfilter(t), "127.0.0.1:3310", clamdAddr))
	sendmail := writeScript(t, dir, "sendmail", "#!/bin/sh\necho \"$@\" > "+dir+"/args\ncat > "+dir+"/msg\n")
	run := func(msg string) (string, int) {
		cmd := exec.Command(script, "alice@example.org", "bob@example.test", "carol@example.test")
		cmd.Env = []string{"PATH=/usr/bin:/bin", "SENDMAIL=" + sendmail}
		cmd.Stdin = strings.NewReader(msg)
		out, _ := cmd.Output()
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := run(eicarMessage())
	if _, err := os.Stat(filepath.Join(dir, "msg")); code != 69 || !strings.HasPrefix(out, "554 5.7.1 message contains a virus") || err == nil {
		t.Errorf("EICAR: exit %d %q (re-injected: %v)", code, out, err == nil)
	}
	msg := cleanMessage("hi")
	out, code = run(msg)
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	got, _ := os.ReadFile(filepath.Join(dir, "msg"))
	if code != 0 || string(got) != msg || string(args) != "-G -i -f alice@example.org -- bob@example.test carol@example.test\n" {
		t.Errorf("clean: exit %d %q args %q msg %q", code, out, args, got)
	}
}

// TestEximRecipe: exim4 -bs with the acl_smtp_data of mxfilter(8) refuses
// a virus at DATA with mxfilter's reply and accepts a clean message into
// its maildir.
func TestEximRecipe(t *testing.T) {
	clamdAddr := clamd(t)
	conf := recipe(t, "exim-acl.conf", "127.0.0.1:3310", clamdAddr, "/var/log/exim4/", "@LOGDIR@/")
	_, acl, ok := strings.Cut(conf, "acl_check_data:\n")
	if !ok {
		t.Fatal("recipe has no acl_check_data")
	}
	e := testpeer.NewExim(t, testpeer.EximOptions{DataACL: strings.TrimRight(acl, "\n")})
	// The ACL runs mxfilter as the exim user: it gets its own copy.
	bin := e.Install(t, mxfilter(t))
	b, err := os.ReadFile(e.Conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.Conf, []byte(strings.NewReplacer("/usr/local/sbin/mxfilter", bin, "@LOGDIR@", e.LogDir).Replace(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
	data := func(msg string) string {
		return strings.ReplaceAll(strings.ReplaceAll(msg, "\n", "\r\n"), "\r\n.", "\r\n..")
	}
	session := "EHLO client.example.org\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n" + data(eicarMessage()) + ".\r\n" +
		"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n" + data(cleanMessage("clean via exim")) + ".\r\nQUIT\r\n"
	cmd := e.Command("192.0.2.33")
	cmd.Stdin = strings.NewReader(session)
	out, code := testpeer.Run(t, 90*time.Second, cmd)
	if code != 0 {
		t.Fatalf("exim exit %d:\n%s\n%s", code, out, e.Log())
	}
	if !strings.Contains(out, "554 5.7.1 message contains a virus: Eicar-Test-Signature") {
		t.Errorf("the virus was not refused at DATA with mxfilter's text:\n%s\n%s", out, e.Log())
	}
	logFile := filepath.Join(e.LogDir, "mxfilter.log")
	if log, err := os.ReadFile(logFile); err != nil || strings.Count(string(log), "msg=message") != 2 {
		t.Errorf("mxfilter's log lines in %s: %v\n%s", logFile, err, log)
	}
	msgs := e.Messages(t)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: clean via exim") {
		t.Errorf("delivered %d messages, want the clean one:\n%q\n%s", len(msgs), msgs, e.Log())
	}
}
