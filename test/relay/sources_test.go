package relay_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// Recipient sources end to end: a cdb made with tinycdb's cdb tool and a
// RCPTCHECK-style script, behind tcpserver in front of exim.
func TestRecipientSources(t *testing.T) {
	b := build(t)
	s := newSite(t)
	cdbBin := testpeer.Need(t, "cdb")
	db := filepath.Join(s.dir, "validrcptto.cdb")
	cmd := exec.Command(cdbBin, "-c", "-m", db)
	cmd.Stdin = strings.NewReader("carol@example.test\n@lists.example.test\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cdb -c -m: %v\n%s", err, out)
	}
	// The script: dave is valid, erin is deferred, the rest refused. It
	// writes what it was told where the test can read it.
	seen := filepath.Join(s.dir, "seen")
	script := testpeer.WriteFile(t, s.dir, "rcptcheck", fmt.Sprintf(`#!/bin/sh
echo "$SENDER $RECIPIENT $TCPREMOTEIP" >> %s
case "$RECIPIENT" in
  dave@*) exit 0 ;;
  erin@*) exit 111 ;;
esac
exit 100
`, seen))
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	domains := testpeer.WriteFile(t, s.dir, "rcpthosts", "example.test\n.example.test\n")
	ex := testpeer.NewExim(t, testpeer.EximOptions{LocalDomain: "example.test : lists.example.test"})
	flags := []string{"--inspect", "--rcpt-cdb", db, "--rcpt-command", script, "--local-domains", domains,
		"--sender-check", "off", "--hostname", "mx.example.test", "--log", "stderr"}
	addr := relayed(t, b, ex, flags)
	sess := testpeer.Session(t, addr, "127.0.0.2", []byte("EHLO client.example.org\r\nMAIL FROM:<s@example.org>\r\n"+
		"RCPT TO:<Carol@Example.Test>\r\nRCPT TO:<any@lists.example.test>\r\nRCPT TO:<dave@example.test>\r\n"+
		"RCPT TO:<erin@example.test>\r\nRCPT TO:<frank@example.test>\r\nDATA\r\nSubject: sources\r\n\r\nhi\r\n.\r\nQUIT\r\n"), 60*time.Second)
	for _, want := range []string{
		"451 4.3.0 Recipient <erin@example.test> cannot be checked now, try again later\r\n",
		"550 5.1.1 Recipient <frank@example.test> rejected: no such user here\r\n",
	} {
		if !strings.Contains(sess, want) {
			t.Errorf("no %q in\n%s", want, sess)
		}
	}
	if n := strings.Count(sess, "250 Accepted"); n != 3 {
		t.Errorf("%d recipients accepted by exim, want 3 (carol, the list, dave):\n%s", n, sess)
	}
	// The maildir gets a copy per recipient.
	if msgs := awaitMessages(t, ex, 3); len(msgs) != 3 {
		t.Fatalf("exim delivered %d messages\n%s", len(msgs), ex.Log())
	}
	if eximLogHas(ex, "erin@") || eximLogHas(ex, "frank@") {
		t.Errorf("exim heard of a refused recipient:\n%s", ex.Log())
	}
	told, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	// carol and the list are in the cdb: the script is not asked about them.
	if string(told) != "s@example.org dave@example.test 127.0.0.2\ns@example.org erin@example.test 127.0.0.2\ns@example.org frank@example.test 127.0.0.2\n" {
		t.Errorf("the script was told:\n%s", told)
	}
}

// A 10 MB message with dot-stuffed lines, bare LFs, NULs and 8-bit octets
// reaches exim as it reaches it without the relay: exim's spooled data
// files (-D) of the two are the same.
func TestTenMegabytesAsSent(t *testing.T) {
	b := build(t)
	s := newSite(t)
	ex := testpeer.NewExim(t, testpeer.EximOptions{})
	queueOnly := []string{ex.Bin, "-C", ex.Conf, "-odq", "-bs"} // the message stays in the spool
	body := bigMessage(10 << 20)
	in := append([]byte("EHLO client.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"), body...)
	in = append(in, ".\r\nQUIT\r\n"...)

	spooled := func(flags ...string) []byte {
		t.Helper()
		argv := append(append([]string{b.mxfront}, flags...), "--")
		addr, proc := testpeer.TCPServer(t, "127.0.0.1", append(argv, queueOnly...)...)
		out := testpeer.Session(t, addr, "127.0.0.2", in, 120*time.Second)
		proc.Stop()
		if !strings.Contains(out, "250 OK id=") {
			t.Fatalf("exim did not take the message:\n%.2000s\n%s", out, ex.Log())
		}
		files, _ := filepath.Glob(filepath.Join(ex.Spool, "input", "*-D"))
		if len(files) != 1 {
			t.Fatalf("%d data files in exim's spool", len(files))
		}
		d, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(files, strings.TrimSuffix(files[0], "-D")+"-H") {
			os.Remove(f)
		}
		_, data, _ := bytes.Cut(d, []byte("\n")) // the first line is the message's id
		return data
	}
	direct := spooled("--log", "stderr")
	viaRelay := spooled(s.flags()...)
	if len(direct) < 9<<20 {
		t.Fatalf("exim spooled only %d octets of the message", len(direct))
	}
	if !bytes.Equal(direct, viaRelay) {
		i := 0
		for i < len(direct) && i < len(viaRelay) && direct[i] == viaRelay[i] {
			i++
		}
		t.Fatalf("spooled data differ at octet %d of %d/%d: %q vs %q", i, len(direct), len(viaRelay),
			direct[i:min(i+40, len(direct))], viaRelay[i:min(i+40, len(viaRelay))])
	}
}

// bigMessage is a message of about n octets: a header, then lines with
// leading dots (stuffed), bare LFs, NULs, 8-bit octets and long lines.
func bigMessage(n int) []byte {
	rng := rand.New(rand.NewPCG(15, 15))
	var b bytes.Buffer
	b.WriteString("Subject: ten megabytes\r\nFrom: s@example.org\r\n\r\n")
	for b.Len() < n {
		switch rng.IntN(8) {
		case 0:
			b.WriteString("..a line that began with a dot\r\n")
		case 1:
			b.WriteString("bare\nLF inside a line\r\n")
		case 2:
			b.WriteString("a NUL \x00 here\r\n")
		case 3:
			b.WriteString("8-bit \xe9\xe8\xff\xfe\r\n")
		case 4:
			b.WriteString(strings.Repeat("long", 200) + "\r\n")
		default:
			fmt.Fprintf(&b, "line %d of plain text\r\n", rng.IntN(1_000_000))
		}
	}
	return b.Bytes()
}
