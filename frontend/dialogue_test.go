package frontend

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// script is a client that sends all its bytes at once (the most pipelined
// client there is) and records every byte of the answer.
type script struct {
	in  io.Reader
	out bytes.Buffer
}

func (s *script) Read(b []byte) (int, error)       { return s.in.Read(b) }
func (s *script) Write(b []byte) (int, error)      { return s.out.Write(b) }
func (s *script) SetReadDeadline(time.Time) error  { return nil }
func (s *script) SetWriteDeadline(time.Time) error { return nil }

var (
	deny     = Verdict{Action: Refuse, By: ByDenyList, Reply: Reply{554, StatusPolicy, "Client host [192.0.2.7] is on our local deny list"}}
	tempDeny = Verdict{Action: Refuse, By: ByDenyList, Reply: Reply{451, Status{4, 7, 1}, "Try again later"}}
)

func TestDialogueGolden(t *testing.T) {
	cfg := DialogueConfig{Hostname: "mx.example.test"}
	greeting := cfg
	greeting.RefuseAt = AtGreeting
	heloRefuse, heloLog := cfg, cfg
	heloRefuse.HELO = HELOCheck{Mode: HELORefuse}
	heloLog.HELO = HELOCheck{Mode: HELOLog}
	greylisted := greylistedForGolden(t)
	cases := []struct {
		name string
		v    Verdict
		cfg  DialogueConfig
		ci   connInfo
	}{
		{"basic", deny, cfg, connInfo{}},
		{"pipelined", tempDeny, cfg, connInfo{}},
		{"badlines", deny, cfg, connInfo{}},
		{"errors", deny, cfg, connInfo{}},
		{"rcptflood", deny, cfg, connInfo{}},
		{"commandflood", deny, cfg, connInfo{}},
		{"http", deny, cfg, connInfo{}},
		{"eof", deny, cfg, connInfo{}},
		// Pipelined commands, then a last line without its end and a
		// half-close: every reply to what came before still leaves.
		{"halfclose", deny, cfg, connInfo{}},
		// A PROXY header in the dialogue (from a peer not allowed to send
		// one): no SMTP client sends it.
		{"proxy-header", deny, cfg, connInfo{}},
		{"greeting-permanent", deny, greeting, connInfo{}},
		{"greeting-temporary", tempDeny, greeting, connInfo{}},
		{"longline", deny, cfg, connInfo{}},
		// Greylisting's refusal: 451 at every RCPT, saying when to retry.
		{"greylisted", greylisted, cfg, connInfo{}},
		// A greylisted client with a bogus HELO under --helo-check refuse:
		// 250 to the HELO, then 554 for good at RCPT.
		{"helo-refuse", greylisted, heloRefuse, connInfo{local: netip.MustParseAddrPort("192.0.2.25:25")}},
		// The same with --helo-check log: still 451, the name noted.
		{"helo-log", greylisted, heloLog, connInfo{local: netip.MustParseAddrPort("192.0.2.25:25")}},
		// An early talker already has "220-mx.example.test ESMTP": the
		// dialogue ends that greeting with its last line (never a second
		// greeting, never 554 after 220-, even with --refuse-at greeting)
		// and answers the commands it sent early, refusing at RCPT.
		{"early-talker", earlyTalker(Verdict{Action: Pass}, 20*time.Millisecond, 5*time.Second), greeting, connInfo{greeted: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := filepath.Join("testdata", "dialogue", tc.name)
			in, err := os.ReadFile(base + ".in")
			if err != nil {
				t.Fatal(err)
			}
			in = expand(in)
			s := &script{in: bytes.NewReader(in)}
			tr := speak(s, tc.v, tc.cfg, tc.ci)
			got := fmt.Sprintf("%s--- transcript\nhelo=%q mail=%q rcpts=%q n=%d commands=%d errors=%d end=%s\n",
				s.out.String(), tr.HELO, tr.MailFrom, tr.Rcpts, tr.NRcpts, tr.Commands, tr.Errors, tr.End)
			if tr.HELOBogus != "" {
				got += fmt.Sprintf("helo_bogus=%q\n", tr.HELOBogus)
			}
			golden(t, base+".golden", got)
		})
	}
}

// expand turns the readable .in files into wire bytes: each line ends in
// CRLF (a line ending in "\LF" keeps a bare LF, one in "\NOEOL" none), {NUL} is a NUL byte,
// {N*x} repeats x N times, {N*LINE text} repeats the line N times.
func expand(in []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(in), "\n") {
		if line == "" {
			continue
		}
		line = strings.TrimSuffix(line, "\n")
		end := "\r\n"
		if strings.HasSuffix(line, `\LF`) {
			line, end = strings.TrimSuffix(line, `\LF`), "\n"
		}
		if strings.HasSuffix(line, `\NOEOL`) {
			line, end = strings.TrimSuffix(line, `\NOEOL`), ""
		}
		n := 1
		if _, err := fmt.Sscanf(line, "{%d*LINE ", &n); err == nil {
			line = line[strings.Index(line, " ")+1 : len(line)-1]
		} else {
			n = 1
		}
		line = strings.ReplaceAll(line, "{NUL}", "\x00")
		for {
			i := strings.Index(line, "{")
			var k int
			var x string
			if i < 0 {
				break
			}
			if _, err := fmt.Sscanf(line[i:], "{%d*%1s}", &k, &x); err != nil {
				break
			}
			j := strings.Index(line[i:], "}")
			line = line[:i] + strings.Repeat(x, k) + line[i+j+1:]
		}
		for range n {
			out.WriteString(line + end)
		}
	}
	return out.Bytes()
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		_ = os.WriteFile(strings.TrimSuffix(path, ".golden")+".got", []byte(got), 0o644)
		t.Errorf("%s differs from what the dialogue said; see the .got file beside it", path)
	} else {
		os.Remove(strings.TrimSuffix(path, ".golden") + ".got")
	}
}

// TestDialogueTimeout: a client that never speaks meets 421 and the end of
// the dialogue, on a real connection with real deadlines.
func TestDialogueTimeout(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	done := make(chan Transcript, 1)
	go func() {
		done <- speak(server, deny, DialogueConfig{Hostname: "mx", CommandTimeout: 50 * time.Millisecond}, connInfo{})
		server.Close()
	}()
	out, _ := io.ReadAll(client)
	tr := <-done
	if tr.End != "timeout" || !strings.HasSuffix(string(out), "421 4.4.2 mx Error: timeout exceeded\r\n") {
		t.Fatalf("end %q, said %q", tr.End, out)
	}
}

// TestDialogueSessionTimeout: a client that sends a NOOP now and then still
// meets the session bound.
func TestDialogueSessionTimeout(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	done := make(chan Transcript, 1)
	go func() {
		done <- speak(server, deny, DialogueConfig{Hostname: "mx", CommandTimeout: time.Second,
			SessionTimeout: 200 * time.Millisecond, MaxCommands: 1000}, connInfo{})
		server.Close()
	}()
	go func() {
		for {
			if _, err := client.Write([]byte("NOOP\r\n")); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	out, _ := io.ReadAll(client)
	tr := <-done
	if tr.End != "timeout" || !strings.Contains(string(out), "421 4.4.2") {
		t.Fatalf("end %q after %d commands", tr.End, tr.Commands)
	}
}

// TestDialogueClientNeverReads: a client that floods commands and never
// reads the replies cannot block the dialogue past its bounds.
func TestDialogueClientNeverReads(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	done := make(chan Transcript, 1)
	go func() {
		done <- speak(server, deny, DialogueConfig{Hostname: "mx", CommandTimeout: 100 * time.Millisecond}, connInfo{})
		server.Close()
	}()
	go client.Write(bytes.Repeat([]byte("NOOP\r\n"), 5000))
	select {
	case tr := <-done:
		if tr.End != "write-error" && tr.End != "timeout" {
			t.Fatalf("end %q", tr.End)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dialogue still running with a client that never reads")
	}
}

func FuzzDialogue(f *testing.F) {
	for _, name := range []string{"basic", "badlines", "http", "rcptflood"} {
		b, err := os.ReadFile(filepath.Join("testdata", "dialogue", name+".in"))
		if err == nil {
			f.Add(expand(b))
		}
	}
	f.Add([]byte("DATA\r\n.\r\nQUIT\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &script{in: bytes.NewReader(in)}
		tr := speak(s, deny, DialogueConfig{Hostname: "mx"}, connInfo{})
		out := s.out.String()
		// Never a message taken, never a success to DATA, never a bare LF.
		if strings.Contains(out, "\r\n354 ") || strings.HasPrefix(out, "354") {
			t.Fatalf("DATA accepted: %q", out)
		}
		if strings.Contains(strings.ReplaceAll(out, "\r\n", ""), "\n") {
			t.Fatalf("bare LF in output: %q", out)
		}
		if strings.Contains(out, "\r\n250 2.1.5") {
			t.Fatalf("RCPT accepted: %q", out)
		}
		if tr.Commands > 101 || tr.Errors > 10 {
			t.Fatalf("bounds exceeded: %+v", tr)
		}
	})
}
