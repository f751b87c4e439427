package filter

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadEnvelope(t *testing.T) {
	for _, tc := range []struct {
		in      string
		sender  string
		rcpts   int
		wantErr bool
	}{
		{"Fa@b.test\x00Tc@d.test\x00Te@f.test\x00\x00", "a@b.test", 2, false},
		{"F\x00Tc@d.test\x00\x00", "", 1, false},
		{"Fa@b.test\x00\x00", "", 0, true},          // no recipient
		{"Fa@b.test\x00Tc@d.test\x00", "", 0, true}, // no final NUL
		{"Ta@b.test\x00\x00", "", 0, true},          // no F
		{"Fa@b.test\x00Xc@d.test\x00\x00", "", 0, true},
	} {
		env, raw, err := ReadEnvelope(strings.NewReader(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err == nil && (env.Sender != tc.sender || len(env.Recipients) != tc.rcpts || string(raw) != tc.in) {
			t.Errorf("%q: got %+v raw %q", tc.in, env, raw)
		}
	}
}

func TestSplitRecipients(t *testing.T) {
	got := SplitRecipients("a@x b@y", "c@z, <d@w>")
	if strings.Join(got, "|") != "a@x|b@y|c@z|d@w" {
		t.Fatalf("got %q", got)
	}
}

func TestClamdReply(t *testing.T) {
	if v, err := parseClamdReply("stream: OK"); v != "" || err != nil {
		t.Errorf("OK: %q %v", v, err)
	}
	if v, err := parseClamdReply("stream: Eicar-Test-Signature FOUND"); v != "Eicar-Test-Signature" || err != nil {
		t.Errorf("FOUND: %q %v", v, err)
	}
	if _, err := parseClamdReply("INSTREAM size limit exceeded. ERROR"); err == nil {
		t.Error("ERROR reply taken as an answer")
	}
}

func TestSpamdReply(t *testing.T) {
	r := "SPAMD/1.1 0 EX_OK\r\nContent-length: 9\r\nSpam: True ; 1000.5 / 5.0\r\n\r\nGTUBE,X_Y"
	res, err := parseSpamdReply(bufio.NewReader(strings.NewReader(r)))
	if err != nil || !res.Spam || res.Score != 1000.5 || res.Threshold != 5 || res.Symbols != "GTUBE,X_Y" {
		t.Fatalf("%+v %v", res, err)
	}
	for _, bad := range []string{"SPAMD/1.1 76 EX_PROTOCOL\r\n\r\n", "SPAMD/1.1 0 EX_OK\r\n\r\n", ""} {
		if _, err := parseSpamdReply(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func spool(t *testing.T, msg string) *Spool {
	t.Helper()
	sp, err := NewSpool(t.TempDir(), strings.NewReader(msg), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

const cleanMsg = "From: a@example.org\nDate: Mon, 1 Jan 2024 10:00:00 +0000\nSubject: x\n\nbody\n"

// TestExecCodes: the exit code map of --exec commands, their reply text,
// their environment and the headers they add.
func TestExecCodes(t *testing.T) {
	for _, tc := range []struct {
		command string
		reply   string
		headers int
	}{
		{"cat >/dev/null; echo 'X-Checked: yes'; exit 0", "250 2.0.0 message accepted", 1},
		{"echo 'no thanks'; exit 100", "554 5.7.1 no thanks", 0},
		{"echo '554 5.7.1 chasquid style'; exit 20", "554 5.7.1 chasquid style", 0},
		{"exit 31", "554 5.7.1 message refused by local policy", 0},
		{"echo later; exit 111", "451 4.3.0 later", 0},
		{"exit 71", "451 4.3.0 message deferred by local policy, try again later", 0},
		{"exit 99", "451 4.3.0 local error in the content filter, try again later", 0},
		{"kill -9 $$", "451 4.3.0 local error in the content filter, try again later", 0},
		{`[ "$QMAILUSER@$QMAILHOST" = "$MAIL_FROM" ] && [ "$NUMRCPTS" = 2 ] && [ "$RCPT_TO" = "b@x c@y" ] && [ "$REMOTE_ADDR" = 192.0.2.1 ] && grep -q '^Subject: x' || exit 100`, "250 2.0.0 message accepted", 0},
	} {
		cfg := DefaultConfig()
		cfg.Exec = []string{tc.command}
		m := &Message{Spool: spool(t, cleanMsg), Env: Envelope{Sender: "a@example.org", Recipients: []string{"b@x", "c@y"}},
			Getenv: func(k string) string {
				if k == "TCPREMOTEIP" {
					return "192.0.2.1"
				}
				return ""
			}, Environ: []string{"PATH=/usr/bin:/bin"}}
		rep := cfg.Judge(context.Background(), m)
		if rep.Verdict.Reply() != tc.reply || len(rep.AddHeaders) != tc.headers {
			t.Errorf("%s: %q headers %q, want %q and %d", tc.command, rep.Verdict.Reply(), rep.AddHeaders, tc.reply, tc.headers)
		}
	}
}

// TestModes: the same finding under each mode, and the relay client skip.
func TestModes(t *testing.T) {
	msg := "Subject: no from\n\nbody\n"
	for mode, want := range map[string]string{"reject": "554 5.6.0", "tempfail": "451 4.6.0", "log": "250 2.0.0", "off": "250 2.0.0"} {
		cfg := DefaultConfig()
		m, _ := ParseMode(mode)
		cfg.Modes[CheckHeaders] = m
		rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, msg)})
		if !strings.HasPrefix(rep.Verdict.Reply(), want) {
			t.Errorf("mode %s: %q, want %s", mode, rep.Verdict.Reply(), want)
		}
	}
	cfg := DefaultConfig()
	rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, msg), Environ: []string{"RELAYCLIENT="}})
	if rep.Verdict.Action != Accept || !rep.Trusted {
		t.Errorf("relay client: %+v", rep)
	}
	cfg.CheckRelayClients = true
	rep = cfg.Judge(context.Background(), &Message{Spool: spool(t, msg), Environ: []string{"RELAYCLIENT="}})
	if rep.Verdict.Action != Reject {
		t.Errorf("relay client with --check-relayclients: %+v", rep.Verdict)
	}
}

// TestScannerDown: a clamd that is not there defers, or accepts with
// --scanner-fail accept; never a silent pass of a refusal.
func TestScannerDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nothing.sock")
	cfg := DefaultConfig()
	cfg.Clamd = []string{sock}
	cfg.ScannerTimeout = 2 * time.Second
	rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, cleanMsg)})
	if rep.Verdict.Reply() != "451 4.3.0 content scanner unavailable, try again later" {
		t.Errorf("clamd down: %q", rep.Verdict.Reply())
	}
	cfg.ScannerFailAccept = true
	rep = cfg.Judge(context.Background(), &Message{Spool: spool(t, cleanMsg)})
	if rep.Verdict.Action != Accept {
		t.Errorf("clamd down, --scanner-fail accept: %q", rep.Verdict.Reply())
	}
	// A refusal by a structure check stands even when the scanner is down.
	rep = cfg.Judge(context.Background(), &Message{Spool: spool(t, "Subject: x\n\n")})
	if rep.Verdict.Action != Reject {
		t.Errorf("refused message with clamd down: %q", rep.Verdict.Reply())
	}
}

// TestHandOverBytes: NEXT gets the added headers (with the message's own
// line ends), then the message byte for byte, and the envelope unchanged.
func TestHandOverBytes(t *testing.T) {
	dir := t.TempDir()
	next := filepath.Join(dir, "next")
	os.WriteFile(next, []byte("#!/bin/sh\ncat > "+dir+"/msg; cat <&1 > "+dir+"/env 2>/dev/null || cat /dev/fd/1 > "+dir+"/env; exit 7\n"), 0o755)
	msg := "From: a@x\r\nDate: d\r\n\r\nbody \x00 with NUL\r\n"
	env := []byte("Fa@x\x00Tb@y\x00\x00")
	code, err := HandOver(context.Background(), []string{next}, spool(t, msg), Changes{AddHeaders: []string{"X-Spam-Flag: NO"}}, env, nil)
	if err != nil || code != 7 {
		t.Fatalf("code %d, %v", code, err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "msg"))
	if string(got) != "X-Spam-Flag: NO\r\n"+msg {
		t.Errorf("message %q", got)
	}
	gotEnv, _ := os.ReadFile(filepath.Join(dir, "env"))
	if !bytes.Equal(gotEnv, env) {
		t.Errorf("envelope %q", gotEnv)
	}
	code, _ = HandOver(context.Background(), []string{next}, spool(t, msg), Changes{StripNUL: true}, env, nil)
	got, _ = os.ReadFile(filepath.Join(dir, "msg"))
	if code != 7 || string(got) != strings.ReplaceAll(msg, "\x00", "") {
		t.Errorf("strip-nul: %q", got)
	}
}

// TestReplyIsOneShortLine: findings quote the message (here a
// Content-Type with a CR, a control byte, 8-bit bytes, or 600 bytes long);
// the reply must still be one line of printable ASCII within RFC 5321's 512
// octets, as must the custom-error text and the --exec reply.
func TestReplyIsOneShortLine(t *testing.T) {
	long := strings.Repeat("x", 600)
	for name, msg := range map[string]string{
		"cr":      "From: a@example.org\nDate: d\nContent-Type: multipart/mi\rxed\x01\n\nbody\n",
		"8bit":    "From: a@example.org\nDate: d\nContent-Type: multipart/caf\xc3\xa9\n\nbody\n",
		"long":    "From: a@example.org\nDate: d\nContent-Type: multipart/" + long + "\n\nbody\n",
		"attach":  "From: a@example.org\nDate: d\nContent-Type: application/octet-stream; name=\"=?utf-8?q?" + long + "=0D=0A.exe?=\"\n\nx\n",
		"missing": "Date: d\n\nbody\n",
	} {
		for _, mode := range []Mode{Refuse, Defer} {
			cfg := DefaultConfig()
			cfg.Modes[CheckHeaderChars] = Log // let the MIME check's finding be the reply
			for _, c := range []string{CheckHeaders, CheckMIME, CheckAttachments} {
				cfg.Modes[c] = mode
			}
			rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, msg)})
			if rep.Verdict.Action == Accept {
				t.Errorf("%s/%s: accepted", name, mode)
			}
			for _, line := range []string{rep.Verdict.Reply(), CustomErrorText(rep.Verdict)} {
				if len(line)+2 > 512 || Sanitize(line, 1<<20) != line {
					t.Errorf("%s/%s: reply of %d bytes, not printable ASCII on one line: %q", name, mode, len(line), line)
				}
			}
		}
	}
	cfg := DefaultConfig()
	cfg.Exec = []string{"printf '554 5.7.1 %0600d\\n' 0; exit 100"}
	rep := cfg.Judge(context.Background(), &Message{Spool: spool(t, cleanMsg)})
	if r := rep.Verdict.Reply(); len(r)+2 > 512 || !strings.HasPrefix(r, "554 5.7.1 000") {
		t.Errorf("--exec reply of %d bytes: %.40q...", len(r), r)
	}
}

// TestPanicDefers: a check that panics (here: a message without a spool,
// which only a bug produces) defers the message with the panic in its log
// result, instead of killing mxfilter before its log line.
func TestPanicDefers(t *testing.T) {
	cfg := DefaultConfig()
	rep := cfg.Judge(context.Background(), &Message{Env: Envelope{Sender: "a@example.org", Recipients: []string{"b@x"}}})
	if rep.Verdict.Reply() != "451 4.3.0 local error in the content filter, try again later" {
		t.Errorf("reply %q", rep.Verdict.Reply())
	}
	if len(rep.Checks) < 2 || !strings.HasPrefix(rep.Checks[1].Result, "error(nul: panic: ") {
		t.Errorf("checks %+v", rep.Checks)
	}
}

// TestCommandEnvSanitised: envelope values reach --exec commands printable
// and bounded; a recipient with a line end stays one line of QMAILRCPTS.
func TestCommandEnvSanitised(t *testing.T) {
	env := CommandEnv(Envelope{Sender: "a\rb@x.test", Recipients: []string{"c@y.test\nevil@z.test", strings.Repeat("r", 300) + "@y.test"}}, "192.0.2.1\n", "helo\x00name", "")
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	if rc := strings.Split(got["QMAILRCPTS"], "\n"); len(rc) != 2 || rc[0] != "c@y.test evil@z.test" || len(rc[1]) != 256 {
		t.Errorf("QMAILRCPTS %q", got["QMAILRCPTS"])
	}
	if got["NUMRCPTS"] != "2" || got["MAIL_FROM"] != "a b@x.test" || got["QMAILUSER"] != "a b" || got["QMAILHOST"] != "x.test" ||
		got["REMOTE_ADDR"] != "192.0.2.1 " || got["EHLO_DOMAIN"] != "helo?name" {
		t.Errorf("environment %q", env)
	}
}

// TestEightBitDisposition: a Content-Disposition that only the fallback
// reads, with 8-bit bytes before "filename=" (which lower-casing widens),
// is judged, not a panic; its file name is still found.
func TestEightBitDisposition(t *testing.T) {
	st, err := Analyze(strings.NewReader("Content-Disposition:\x91filenAme=x.exe; a\n\nMZ\n"), Limits{})
	if err != nil || len(st.Attachments) != 1 || st.Attachments[0].Name != "x.exe" {
		t.Fatalf("%+v %v", st, err)
	}
}

// TestParseMediaValue: parameters read as mail readers read them.
func TestParseMediaValue(t *testing.T) {
	for _, tc := range []struct {
		in, typ, name, want string
		problem             bool
	}{
		{`multipart/mixed; boundary="a b"`, "multipart/mixed", "boundary", "a b", false},
		{`multipart/mixed; boundary=----=_Part_1.2/x@y`, "multipart/mixed", "boundary", "----=_Part_1.2/x@y", false},
		{`multipart/mixed (c); boundary=abc (d)`, "multipart/mixed", "boundary", "abc", false},
		{`multipart/mixed; boundary*=us-ascii'en'abc%2Ddef`, "multipart/mixed", "boundary", "abc-def", false},
		{`attachment; filename*0*=koi8-r''%F3; filename*1=.exe`, "attachment", "filename", "\xf3.exe", false},
		{`attachment; filename*1=.exe; filename*0="a"`, "attachment", "filename", "a.exe", false},
		{`attachment; filename="a\"b.exe"`, "attachment", "filename", `a"b.exe`, false},
		{`attachment; filename="x.exe`, "attachment", "filename", "x.exe", true},
		{`attachment; filename`, "attachment", "filename", "", true},
		{`filename=x.exe`, "", "filename", "x.exe", true},
		{`attachment; filename*=utf-8''%ZZ.exe`, "attachment", "filename", "%ZZ.exe", true},
	} {
		m := parseMediaValue(tc.in)
		if m.Type != tc.typ || m.first(tc.name) != tc.want || (m.Problem != "") != tc.problem {
			t.Errorf("%q: type %q %s=%q problem %q; want %q %q problem %v", tc.in, m.Type, tc.name, m.first(tc.name), m.Problem, tc.typ, tc.want, tc.problem)
		}
	}
	if got := parseMediaValue(`attachment; filename="a.txt"; filename=b.exe`).all("filename"); len(got) != 2 || got[1] != "b.exe" {
		t.Errorf("duplicates: %q", got)
	}
}

// TestBase64Reader: decodes as mail readers do, and names a real failure.
func TestBase64Reader(t *testing.T) {
	for _, tc := range []struct{ in, out, err string }{
		{"QUJD", "ABC", ""},
		{"QUI", "AB", ""},                // no padding
		{"QQ", "A", ""},                  // no padding
		{"QUI=QUI=", "ABAB", ""},         // padded chunks
		{"QQ==\r\nQUJD\r\n", "AABC", ""}, // chunks over lines
		{" Q U J D ", "ABC", ""},
		{"QUJDR", "ABC", "ends with a single character"},
		{"QUJ!", "", "illegal character '!' at byte 3"},
		{"Q=", "", "padding after a single character at byte 1"},
	} {
		b, err := io.ReadAll(&base64Reader{r: strings.NewReader(tc.in)})
		if tc.err == "" && (err != nil || string(b) != tc.out) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: %q %v; want %q %q", tc.in, b, err, tc.out, tc.err)
		}
	}
}

// TestZipEntriesBounded: a zip of many entries is walked whole (a blocked
// name at its end is found) while few names are kept.
func TestZipEntriesBounded(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < 5000; i++ {
		zw.Create(fmt.Sprintf("f%05d.txt", i))
	}
	zw.Create("last.exe")
	zw.Close()
	msg := "From: a@example.org\nContent-Type: application/zip; name=a.zip\nContent-Transfer-Encoding: base64\n\n" + base64.StdEncoding.EncodeToString(buf.Bytes()) + "\n"
	st, err := Analyze(strings.NewReader(msg), Limits{TempDir: t.TempDir(), Blocked: []string{".exe"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.ZipEntries != 5001 || len(st.Attachments) > 1+maxKeptEntries+maxKeptBlocked || st.Attachments[len(st.Attachments)-1].Name != "last.exe" {
		t.Fatalf("%d entries, %d kept, last %+v", st.ZipEntries, len(st.Attachments), st.Attachments[len(st.Attachments)-1])
	}
}

// TestManyRecipients: with 8,000 recipients (QMAILRCPTS would be ~160 KB,
// over Linux's 128 KiB for one variable) an --exec command still starts,
// NUMRCPTS counts all, MXFILTER_RCPTS lists all, the list variables stay
// within MaxRcptEnv; and the log line names five and counts the rest.
func TestManyRecipients(t *testing.T) {
	var rcpts []string
	for i := 0; i < 8000; i++ {
		rcpts = append(rcpts, fmt.Sprintf("user%05d@example.test", i))
	}
	cfg := DefaultConfig()
	cfg.Limits.TempDir = t.TempDir()
	cfg.Exec = []string{`[ "$NUMRCPTS" = 8000 ] && [ "$(wc -l < "$MXFILTER_RCPTS")" = 8000 ] && [ "$(tail -n 1 "$MXFILTER_RCPTS")" = user07999@example.test ] && [ ${#QMAILRCPTS} -le 65536 ] && [ ${#RCPT_TO} -le 65536 ] && [ "$(printf '%s\n' "$QMAILRCPTS" | head -n 1)" = user00000@example.test ] || { echo "env: $NUMRCPTS ${#QMAILRCPTS}"; exit 100; }`}
	m := &Message{Spool: spool(t, cleanMsg), Env: Envelope{Sender: "a@example.org", Recipients: rcpts}, Environ: []string{"PATH=/usr/bin:/bin"}}
	rep := cfg.Judge(context.Background(), m)
	if rep.Verdict.Action != Accept {
		t.Fatalf("%s (%+v)", rep.Verdict.Reply(), rep.Checks)
	}
	if left, _ := filepath.Glob(filepath.Join(cfg.Limits.TempDir, "mxfilter-rcpts-*")); len(left) != 0 {
		t.Errorf("recipients file left behind: %v", left)
	}
	var log bytes.Buffer
	LogLine(slog.New(slog.NewTextHandler(&log, nil)), "check", m, rep, 0)
	if log.Len() > 2000 || !strings.Contains(log.String(), "rcpts=user00000@example.test,user00001@example.test,user00002@example.test,user00003@example.test,user00004@example.test,...+7995 nrcpts=8000 ") {
		t.Errorf("log line of %d bytes: %.400s", log.Len(), log.String())
	}
}

// TestUnparsedFieldsSearched: a field whose parameters cannot be read is
// searched for a blocked extension only where a reader could find a name.
func TestUnparsedFieldsSearched(t *testing.T) {
	for _, tc := range []struct {
		field string
		found bool
	}{
		// Unreadable and naming a file: judged as unparsable, whatever
		// parameter the blocked extension is in.
		{`Content-Disposition: attachment; filename="a.pdf"; junk; x=evil.exe`, true},
		{`Content-Disposition: attachment; x=evil.exe`, false}, // readable: x is not a name
		{`Content-Disposition: attachment; junk; filename=evil.exe`, true},
		{`Content-Type: text/plain; junk (from www.example.com)`, false},
		{`Content-Type: text/plain; name; junk="evil.exe"`, true},
	} {
		msg := "From: a@example.org\n" + tc.field + "\n\nx\n"
		st, err := Analyze(strings.NewReader(msg), Limits{Blocked: DefaultBlocked})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range st.Attachments {
			found = found || blockedName(a.Name, DefaultBlocked)
		}
		if found != tc.found {
			t.Errorf("%s: found %v (%+v)", tc.field, found, st.Attachments)
		}
	}
}
