package filter

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzEnvelope: ReadEnvelope never panics, and what it accepts renders
// back to exactly the bytes it read.
func FuzzEnvelope(f *testing.F) {
	f.Add([]byte("Fa@b.test\x00Tc@d.test\x00\x00"))
	f.Add([]byte("F\x00Tx@y\x00Tz@w\x00\x00trailing"))
	f.Add([]byte("Fa@b\x00\x00"))
	f.Add([]byte("Xa@b\x00Tc\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		env, raw, err := ReadEnvelope(bytes.NewReader(in))
		if err != nil {
			return
		}
		if !bytes.Equal(raw, env.Bytes()) || !bytes.HasPrefix(in, raw) {
			t.Fatalf("envelope %q read as %q renders %q", in, raw, env.Bytes())
		}
		if len(env.Recipients) == 0 || strings.Contains(env.Sender, "\x00") {
			t.Fatalf("envelope %q read as %+v", in, env)
		}
		for _, r := range env.Recipients {
			if strings.Contains(r, "\x00") {
				t.Fatalf("envelope %q: recipient %q holds a NUL", in, r)
			}
		}
	})
}

// FuzzAnalyze: the MIME walk never panics and never fails on a reader that
// does not fail; the same bytes give the same structure; and judging them
// with the built-in checks gives a verdict of a known kind whose code
// agrees with it, a reply that is one line of printable ASCII within 512
// octets, and log results that are printable, with no internal error.
func FuzzAnalyze(f *testing.F) {
	f.Add("From: a@b\nDate: x\n\nbody\n")
	f.Add("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nContent-Type: multipart/mixed; boundary=c\n\n--c\n\nx\n--c--\n--b--\n")
	f.Add("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename*=utf-8''a%2Eexe\n\nQUJD\n--b--\n")
	f.Add("Content-Type: application/zip; name=x.zip\nContent-Transfer-Encoding: base64\n\nUEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==\n")
	f.Add(" continuation first\n\xff\x00: x\n\n")
	// Every corpus message, the generated disguises and shapes included.
	files, _ := filepath.Glob(filepath.Join(corpus, "*.eml"))
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("From: a@b\nDate: x\nContent-Type: multipart/mi\rxed\x01\n\nbody\n")
	f.Fuzz(func(t *testing.T, msg string) {
		dir := t.TempDir()
		lim := Limits{TempDir: dir}
		st, err := Analyze(strings.NewReader(msg), lim)
		if err != nil {
			t.Fatalf("Analyze(%q): %v", msg, err)
		}
		again, err := Analyze(strings.NewReader(msg), lim)
		if err != nil || !reflect.DeepEqual(st, again) {
			t.Fatalf("Analyze(%q) differs on the same bytes:\n%+v\n%+v (%v)", msg, st, again, err)
		}
		for _, a := range st.Attachments {
			if a.Name == "" {
				t.Fatalf("Analyze(%q): attachment without a name: %+v", msg, st.Attachments)
			}
		}
		rep := fuzzJudge(t, dir, msg)
		v := rep.Verdict
		class := map[Action]string{Accept: "2", Tempfail: "4", Reject: "5"}[v.Action]
		if class == "" || strconv.Itoa(v.Code)[:1] != class || !strings.HasPrefix(v.Enhanced, class+".") {
			t.Fatalf("verdict %+v: action and codes disagree", v)
		}
		reply := v.Reply()
		if len(reply)+2 > 512 || Sanitize(reply, 1<<20) != reply || strings.ContainsAny(reply, "\r\n") {
			t.Fatalf("reply %q: not one printable line within 512 octets", reply)
		}
		if custom := CustomErrorText(v); Sanitize(custom, 1<<20) != custom {
			t.Fatalf("custom-error text %q is not printable", custom)
		}
		for _, c := range rep.Checks {
			if Sanitize(c.Result, 1<<20) != c.Result {
				t.Fatalf("%s result %q is not printable", c.Name, c.Result)
			}
			if strings.HasPrefix(c.Result, "error(") {
				t.Fatalf("%s: internal error on a readable message: %s", c.Name, c.Result)
			}
		}
		if again := fuzzJudge(t, dir, msg); again.Verdict != v || len(again.Checks) != len(rep.Checks) {
			t.Fatalf("the same bytes judged twice: %q then %q", reply, again.Verdict.Reply())
		}
	})
}

func fuzzJudge(t *testing.T, dir, msg string) *Report {
	sp, err := NewSpool(dir, strings.NewReader(msg), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if sp.Size() != int64(len(msg)) {
		t.Fatalf("spooled %d bytes of %d", sp.Size(), len(msg))
	}
	cfg := DefaultConfig()
	cfg.Limits.TempDir = dir
	cfg.RequireHeaders = []string{"From", "Date", "Message-ID"}
	return cfg.Judge(context.Background(), &Message{Spool: sp, Env: Envelope{Sender: "a@example.org", Recipients: []string{"b@example.test"}}})
}
