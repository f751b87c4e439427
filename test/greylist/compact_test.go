package greylist_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// compactors run `mxfront greylist compact` again and again, several at
// once, as an administrator and a cron job might.
type compactors struct {
	stop atomic.Bool
	wg   sync.WaitGroup
	mu   sync.Mutex
	done int      // compactions that succeeded
	errs []string // the output of those that did not
}

// startCompactors starts n loops of `mxfront greylist compact` on db and
// returns once each loop has compacted once.
func startCompactors(t *testing.T, b bins, db string, n int) *compactors {
	t.Helper()
	c := &compactors{}
	var first sync.WaitGroup
	for range n {
		first.Add(1)
		c.wg.Go(func() {
			once := false
			for !c.stop.Load() {
				cmd := exec.Command(b.mxfront, "greylist", "compact", "--greylist-db", db)
				out, code := testpeer.Run(t, 60*time.Second, cmd)
				c.mu.Lock()
				if code == 0 && strings.HasPrefix(out, "compacted "+db) {
					c.done++
				} else {
					c.errs = append(c.errs, fmt.Sprintf("exit %d: %s", code, out))
				}
				c.mu.Unlock()
				if !once {
					once = true
					first.Done()
				}
			}
		})
	}
	first.Wait()
	return c
}

// end stops the loops and returns how many compactions succeeded; any
// that failed fails t.
func (c *compactors) end(t *testing.T) int {
	t.Helper()
	c.stop.Store(true)
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		t.Errorf("%d compactions failed, e.g. %s", len(c.errs), c.errs[0])
	}
	n := c.done
	c.done = 0
	return n
}

// Issue 13: three `mxfront greylist compact` running at once, again and
// again, beside 40 chain-mode processes at a time. No write a client was
// answered on is lost: every client greylisted in the first wave passes
// when it retries after the delay (a lost record would greylist it again),
// and every network that passed is then recorded as passing.
//
// A chain-mode process that waits in vain for the lock (1s) passes its
// client and says so in the log: that is no decision and no write, so the
// test counts such clients apart.
func TestCompactionsBesideChainProcesses(t *testing.T) {
	b := build(t)
	db := filepath.Join(t.TempDir(), "greylist.db")
	addr, p := tcpserver(t, b.mxfront, "--greylist", "--greylist-db", db, "--greylist-delay", "1s",
		"--hostname", "mx.example.test", "--", b.mxsink)
	compactionRace(t, b, db, addr, p)
	allExitedZero(t, p, 80)
}

// The same beside a mxfront serve that holds the file: the compactions
// reach it through its control socket, and it compacts the file it holds
// between its decisions (which wait for it at most 1s, or pass unsure).
func TestCompactionsBesideServe(t *testing.T) {
	b := build(t)
	db := filepath.Join(t.TempDir(), "greylist.db")
	addr, p := serve(t, b, "--greylist", "--greylist-db", db, "--greylist-delay", "1s",
		"--hostname", "mx.example.test", "--log", "stderr", "--", b.mxsink)
	waitOutput(t, p, `msg="control socket"`)
	compactionRace(t, b, db, addr, p)
	if strings.Contains(p.Output(), "lock not had") {
		t.Log("some decisions waited for a compaction in vain (and passed their client)")
	}
}

// compactionRace runs two waves of clients against addr beside
// compactions of db and checks that no acknowledged write was lost.
func compactionRace(t *testing.T, b bins, db, addr string, p *testpeer.Proc) {
	const clients = 40
	in := []byte("EHLO client.example.org\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<u@example.test>\r\nQUIT\r\n")
	src := func(i int) string { return fmt.Sprintf("127.0.%d.2", 10+i) } // a /24 each
	// wave runs the clients at once beside compactions and returns each
	// one's session, and how many compactions ran meanwhile.
	wave := func() ([]string, int) {
		c := startCompactors(t, b, db, 3)
		var wg sync.WaitGroup
		got := make([]string, clients)
		for i := range clients {
			wg.Go(func() { got[i] = testpeer.Session(t, addr, src(i), in, 30*time.Second) })
		}
		wg.Wait()
		return got, c.end(t)
	}
	// unsure reports whether client i's process logged that its greylist
	// operation failed (it passed the client and wrote nothing).
	unsure := func(i int) bool {
		return strings.Contains(p.Output(), `msg="greylist failed: client passed" ip=`+src(i)+" ")
	}

	first, compactions := wave()
	start := time.Now()
	greylisted, unsureFirst := map[int]bool{}, 0
	for i, out := range first {
		switch {
		case strings.Contains(out, "451 4.7.1 Greylisted"):
			greylisted[i] = true
		case unsure(i):
			unsureFirst++
		default:
			t.Errorf("client %d, first attempt: %q", i, out)
		}
	}
	t.Logf("first wave: %d clients greylisted, %d passed unsure, beside %d compactions", len(greylisted), unsureFirst, compactions)
	if len(greylisted) == 0 {
		t.Fatal("no client was greylisted: nothing to lose")
	}

	// Records keep whole seconds: 2s make sure the delay of 1s is over.
	sleepUntil(start.Truncate(time.Second).Add(2 * time.Second))
	second, compactions := wave()
	lost, passed := 0, map[int]bool{}
	for i, out := range second {
		ok := strings.Contains(out, "250 2.1.5 Ok")
		if greylisted[i] && !ok {
			if lost++; lost <= 5 {
				t.Errorf("client %d, greylisted in the first wave, is not passed on its retry: %q", i, out)
			}
		}
		if ok && !unsure(i) {
			passed[i] = true
		}
	}
	t.Logf("second wave: %d of the %d greylisted clients passed, %d greylisted again (a write lost), beside %d compactions",
		len(greylisted)-lost, len(greylisted), lost, compactions)

	got := listed(t, b, db)
	notPassing := 0
	for i := range passed {
		n := fmt.Sprintf("127.0.%d.0/24", 10+i)
		if got[n] != "passing" {
			if notPassing++; notPassing <= 5 {
				t.Errorf("%s passed and is %q in the database", n, got[n])
			}
		}
	}
	t.Logf("after the second wave: %d networks recorded as passed, %d of them not passing (a pass lost)", len(passed), notPassing)
}
