package greylist_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

const delay = 4 * time.Second

// launcher starts mxfront (chain mode under tcpserver, or serve) with the
// greylist flags given, in front of mxsink spooling into spool.
type launcher struct {
	name  string
	start func(t *testing.T, b bins, spool string, flags ...string) (string, *testpeer.Proc)
}

var launchers = []launcher{
	{"tcpserver", func(t *testing.T, b bins, spool string, flags ...string) (string, *testpeer.Proc) {
		argv := append(append([]string{b.mxfront, "--hostname", "mx.example.test"}, flags...), "--", b.mxsink, "-hostname", "mx.example.test", "-spool", spool)
		return tcpserver(t, argv...)
	}},
	{"serve", func(t *testing.T, b bins, spool string, flags ...string) (string, *testpeer.Proc) {
		args := append(append([]string{"--hostname", "mx.example.test", "--log", "stderr"}, flags...), "--", b.mxsink, "-hostname", "mx.example.test", "-spool", spool)
		return serve(t, b, args...)
	}},
}

// The greylist's life through each launcher, with `mxfront greylist` run
// beside it: a new network gets 451 at RCPT and its one log line says
// greylisted with the network and the time left; a retry after the delay
// passes and the message reaches the server with MXFRONT_GREYLIST; another
// address of the /24 passes; another /24 is greylisted; remove, allow,
// list --json, stats, expire and compact work while the launcher runs and
// the launcher keeps deciding afterwards.
func TestGreylistLife(t *testing.T) {
	for _, l := range launchers {
		t.Run(l.name, func(t *testing.T) {
			b := build(t)
			dir := t.TempDir()
			db, spool := filepath.Join(dir, "greylist.db"), filepath.Join(dir, "spool")
			addr, p := l.start(t, b, spool, "--greylist", "--greylist-db", db, "--greylist-delay", delay.String(), "--greylist-window", "1h")

			// The first attempt and the early retry by a Go client, not
			// swaks: Perl's start can take seconds on a loaded machine, and
			// both must come within the delay (swaks meets the 451 below).
			session := []byte("EHLO client.example.org\r\nMAIL FROM:<sender@example.org>\r\nRCPT TO:<user@example.test>\r\nQUIT\r\n")
			first := time.Now()
			var recorded time.Time // the first 451 came after its record was written
			for _, who := range []string{"first attempt from 127.0.0.2", "a retry before the delay"} {
				got := testpeer.Session(t, addr, "127.0.0.2", session, 30*time.Second)
				if !strings.Contains(got, "451 4.7.1 Greylisted: please try again in") {
					t.Fatalf("%s: want 451 4.7.1 Greylisted at RCPT, got %q", who, got)
				}
				if recorded.IsZero() {
					recorded = time.Now()
				}
			}
			if time.Since(first) >= delay {
				t.Fatalf("the machine is too slow for this test: two sessions took %v, the delay is %v", time.Since(first), delay)
			}
			waitOutput(t, p, "msg=greylisted ip=127.0.0.2 ")
			line := logLine(p.Output(), "msg=greylisted ip=127.0.0.2 ")
			for _, want := range []string{"network=127.0.0.0/24", "retry_in=4s", `reply="451 4.7.1 Greylisted: please try again in 4s, after `, "helo=client.example.org", "rcpt=user@example.test"} {
				if !strings.Contains(line, want) {
					t.Errorf("log line lacks %q:\n%s", want, line)
				}
			}
			out, code := swaks(t, addr, "127.0.1.2")
			mustGreylisted(t, out, code, "another /24 (127.0.1.2)")
			if got := listed(t, b, db); got["127.0.0.0/24"] != "pending" || got["127.0.1.0/24"] != "pending" || len(got) != 2 {
				t.Fatalf("list --json while %s runs: %v", l.name, got)
			}

			sleepUntil(recorded.Add(delay + 200*time.Millisecond))
			out, code = swaks(t, addr, "127.0.0.2")
			mustPass(t, out, code, "the retry after the delay")
			out, code = swaks(t, addr, "127.0.0.3")
			mustPass(t, out, code, "another address of the passed /24")
			msgs := spooled(t, spool)
			if len(msgs) != 2 {
				t.Fatalf("the sink holds %d messages, want 2", len(msgs))
			}
			states := map[string]bool{}
			for _, m := range msgs {
				v := envHeader(m, "MXFRONT_GREYLIST")
				state, age, _ := strings.Cut(v, " ")
				if n, err := strconv.Atoi(age); err != nil || n < int(delay/time.Second) {
					t.Errorf("MXFRONT_GREYLIST=%q: want a state and an age of %v or more", v, delay)
				}
				states[state] = true
			}
			if !states["retry"] || !states["passed"] {
				t.Errorf("MXFRONT_GREYLIST states %v, want retry and passed", states)
			}
			if got := listed(t, b, db); got["127.0.0.0/24"] != "passing" {
				t.Fatalf("list after the pass: %v", got)
			}
			out, code = admin(t, b, db, "stats")
			if code != 0 || !strings.Contains(out, "pending: 1\npassing: 1\n") {
				t.Fatalf("stats: exit %d\n%s", code, out)
			}

			// remove: the pending /24, retried after its delay, starts over.
			if out, code := admin(t, b, db, "remove", "127.0.1.0/24"); code != 0 || !strings.Contains(out, "removed 127.0.1.0/24") {
				t.Fatalf("remove: exit %d\n%s", code, out)
			}
			out, code = swaks(t, addr, "127.0.1.2")
			mustGreylisted(t, out, code, "127.0.1.2 after remove (past its delay)")
			if out, code := admin(t, b, db, "remove", "127.0.9.0/24"); code != 1 || !strings.Contains(out, "no record") {
				t.Fatalf("remove of an unknown network: exit %d (want 1)\n%s", code, out)
			}
			// remove a passing network: greylisted again at once (serve,
			// told through its control socket, drops it from its cache of
			// passes too).
			if _, code := admin(t, b, db, "remove", "127.0.0.2"); code != 0 {
				t.Fatal("remove 127.0.0.2 failed")
			}
			out, code = swaks(t, addr, "127.0.0.4")
			// Taken after the attempt: on a loaded machine swaks may take
			// over a second, and the record must be 2s old below.
			lastNew := time.Now()
			mustGreylisted(t, out, code, "127.0.0.4 after remove")

			// allow: passes at once.
			if out, code := admin(t, b, db, "allow", "127.0.2.0/24"); code != 0 || !strings.Contains(out, "allowed 127.0.2.0/24") {
				t.Fatalf("allow: exit %d\n%s", code, out)
			}
			out, code = swaks(t, addr, "127.0.2.9")
			mustPass(t, out, code, "an allowed network")

			// expire, judged by a window of 1s: the pending networks go
			// (records keep whole seconds: 2s makes sure they are older).
			sleepUntil(lastNew.Add(2 * time.Second))
			out, code = admin(t, b, db, "expire", "--greylist-delay", "500ms", "--greylist-window", "1s")
			if code != 0 || !regexp.MustCompile(`expired [1-9]\d*: abandoned [1-9]`).MatchString(out) {
				t.Fatalf("expire: exit %d\n%s", code, out)
			}
			for n, s := range listed(t, b, db) {
				if s == "pending" {
					t.Errorf("%s still pending after expire", n)
				}
			}

			// compact replaces the file under the running launcher, which
			// goes on reading and writing the new one.
			if out, code := admin(t, b, db, "compact"); code != 0 || !strings.Contains(out, "compacted "+db) {
				t.Fatalf("compact: exit %d\n%s", code, out)
			}
			out, code = swaks(t, addr, "127.0.2.10")
			mustPass(t, out, code, "an allowed network after compact")
			out, code = swaks(t, addr, "127.0.3.2")
			mustGreylisted(t, out, code, "a new network after compact")
			if got := listed(t, b, db); got["127.0.3.0/24"] != "pending" || got["127.0.2.0/24"] != "passing" {
				t.Fatalf("list after compact: %v", got)
			}

			if strings.Contains(p.Output(), "level=ERROR") {
				t.Fatalf("the launcher logged errors:\n%s", p.Output())
			}
			if l.name == "tcpserver" {
				// Every mxfront process, greylisted ones included, exited 0.
				allExitedZero(t, p, 10)
			}
		})
	}
}

// allExitedZero waits until tcpserver has seen n processes end and checks
// that each exited 0 (tcpserver -v prints the wait status).
func allExitedZero(t *testing.T, p *testpeer.Proc, n int) {
	t.Helper()
	re := regexp.MustCompile(`end \d+ status (\d+)`)
	deadline := time.Now().Add(10 * time.Second)
	for len(re.FindAllString(p.Output(), -1)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d processes ended:\n%s", n, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, e := range re.FindAllStringSubmatch(p.Output(), -1) {
		if e[1] != "0" {
			t.Fatalf("an mxfront process exited with status %s:\n%s", e[1], p.Output())
		}
	}
}

// logLine returns the first line of out containing s.
func logLine(out, s string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// 50 chain-mode processes at once on one database file (tcpserver -c 60):
// 25 clients from 25 new networks and 25 from a network that passed. All
// finish, none logs an error, each gets the right answer, and the database
// holds exactly what they did; the 25 then retry at once and pass.
func TestConcurrentChainProcesses(t *testing.T) {
	b := build(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "greylist.db")
	// The processes take the file's lock in turn, each change written to
	// disk before the next: beside other tests a turn can come after the
	// 1s default, and that client would pass (unsure), not be greylisted.
	// This test is about what the file holds; TestLockTimeout is about
	// the bound.
	addr, p := tcpserver(t, b.mxfront, "--greylist", "--greylist-db", db, "--greylist-delay", "1s",
		"--greylist-lock-timeout", "60s", "--hostname", "mx.example.test", "--", b.mxsink)
	if _, code := admin(t, b, db, "allow", "127.0.100.0/24"); code != 0 {
		t.Fatal("allow failed")
	}
	in := "EHLO client.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u@example.test>\r\nQUIT\r\n"
	wave := func(round int) []string {
		var wg sync.WaitGroup
		got := make([]string, 50)
		for i := range 50 {
			src := fmt.Sprintf("127.0.%d.%d", 10+i, 2+round) // a new /24 each
			if i%2 == 1 {
				src = fmt.Sprintf("127.0.100.%d", 2+i) // the passed /24
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i] = testpeer.Session(t, addr, src, []byte(in), 30*time.Second)
			}()
		}
		wg.Wait()
		return got
	}
	for i, out := range wave(0) {
		want := "451 4.7.1 Greylisted"
		if i%2 == 1 {
			want = "250 2.1.5 Ok" // mxsink's answer: the real server got the client
		}
		if !strings.Contains(out, want) || !strings.HasSuffix(out, "221 2.0.0 Bye\r\n") {
			t.Errorf("client %d: want %q in a whole session, got %q", i, want, out)
		}
	}
	got := listed(t, b, db)
	pending := 0
	for n, s := range got {
		if s == "pending" {
			pending++
		} else if n != "127.0.100.0/24" {
			t.Errorf("%s is %s", n, s)
		}
	}
	if pending != 25 || got["127.0.100.0/24"] != "passing" || len(got) != 26 {
		t.Fatalf("database after 50 concurrent processes: %d pending, %v", pending, got)
	}
	// Records keep whole seconds, and the wave may have crossed one.
	sleepUntil(time.Now().Truncate(time.Second).Add(2 * time.Second))
	for i, out := range wave(1) {
		if !strings.Contains(out, "250 2.1.5 Ok") {
			t.Errorf("retry of client %d: %q", i, out)
		}
	}
	if out, _ := admin(t, b, db, "stats"); !strings.Contains(out, "pending: 0\npassing: 26\n") {
		t.Fatalf("stats after the retries:\n%s", out)
	}
	allExitedZero(t, p, 100)
	if strings.Contains(p.Output(), "level=ERROR") {
		t.Fatalf("errors logged:\n%s", p.Output())
	}
}

// A greylisted client with a bogus HELO under --helo-check refuse is
// refused for good (554 at RCPT) and forgotten: its retry after the delay,
// with a good HELO this time, is greylisted again instead of passing. With
// the default --helo-check log the same name is only noted in the log.
func TestBogusHELONeverPasses(t *testing.T) {
	for _, l := range launchers {
		t.Run(l.name, func(t *testing.T) {
			b := build(t)
			dir := t.TempDir()
			db := filepath.Join(dir, "greylist.db")
			addr, p := l.start(t, b, filepath.Join(dir, "spool"), "--greylist", "--greylist-db", db,
				"--greylist-delay", "1s", "--helo-check", "refuse")
			out, code := swaks(t, addr, "127.0.7.2", "--helo", "localhost")
			if code != 24 || !strings.Contains(out, "554 5.7.1 HELO/EHLO name localhost rejected: it is localhost") {
				t.Fatalf("bogus HELO: exit %d\n%s", code, out)
			}
			// A record, had one been kept, was written before the 554: from
			// here the delay counts, so the retry below would pass by it.
			start := time.Now()
			waitOutput(t, p, `helo_bogus="is localhost"`)
			if got := listed(t, b, db); len(got) != 0 {
				t.Fatalf("the bogus client's record was kept: %v", got)
			}
			sleepUntil(start.Add(1200 * time.Millisecond))
			out, code = swaks(t, addr, "127.0.7.2")
			mustGreylisted(t, out, code, "the retry of a client that gave a bogus HELO")
		})
	}
	// --helo-check log (the default): noted, the verdict unchanged.
	b := build(t)
	dir := t.TempDir()
	addr, p := tcpserver(t, b.mxfront, "--greylist", "--greylist-db", filepath.Join(dir, "g.db"),
		"--hostname", "mx.example.test", "--", b.mxsink)
	out, code := swaks(t, addr, "127.0.8.2", "--helo", "desktop")
	mustGreylisted(t, out, code, "--helo-check log")
	waitOutput(t, p, `helo_bogus="has no dot"`)
}

// A chain-mode decision waits for the bbolt file's lock at most
// --greylist-lock-timeout: with the lock held by another process, a new
// client passes (unsure means accept) once the bound is over, and the
// line says why.
func TestLockTimeout(t *testing.T) {
	b := build(t)
	db := filepath.Join(t.TempDir(), "greylist.db")
	if _, code := admin(t, b, db, "allow", "192.0.2.0/24"); code != 0 {
		t.Fatal("allow failed")
	}
	f, err := os.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	addr, p := tcpserver(t, b.mxfront, "--greylist", "--greylist-db", db, "--greylist-lock-timeout", "300ms",
		"--hostname", "mx.example.test", "--", b.mxsink)
	in := "EHLO client.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u@example.test>\r\nQUIT\r\n"
	if out := testpeer.Session(t, addr, "127.0.7.2", []byte(in), 30*time.Second); !strings.Contains(out, "250 2.1.5 Ok") {
		t.Fatalf("a new client while the lock is held: %q", out)
	}
	testpeer.WaitOutput(t, p, "GREYLIST=error")
	line := logLine(p.Output(), "msg=\"greylist failed: client passed\" ip=127.0.7.2 ")
	if !strings.Contains(line, "lock not had within 300ms") {
		t.Fatalf("the unsure line: %q\n%s", line, p.Output())
	}
}
