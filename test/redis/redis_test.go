package redis_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mxfront/mxfront/internal/testpeer"
)

// Two MX hosts (mxfront serve on 127.0.0.10 and 127.0.0.11) and a third
// in chain mode under tcpserver (127.0.0.12) share one redis-server:
//
//   - 127.0.0.50 is greylisted at A; its retry at B before the delay is
//     still greylisted, as early (B knows A's record); after the delay it
//     passes at B, as a retry;
//   - another address of that /24 passes at A and at C (chain mode) at
//     once: known;
//   - a pending network removed with `mxfront greylist remove` is
//     greylisted as new at B, though its delay is over;
//   - a passing network removed is greylisted again at C (chain mode asks
//     Redis each time), while A and B, serve mode, pass it from their
//     pass cache (within its 60s, as mxfront(8) says).
func TestTwoMXHostsShareOneRedis(t *testing.T) {
	b := build(t)
	r := testpeer.StartRedis(t)
	// This test is about what the hosts share, and it wants no ERROR line
	// (greylistFlags gives a timeout long enough for a loaded machine).
	flags := greylistFlags(r.URL())
	a := serveHost(t, b, "mx-a.example.test", "127.0.0.10", flags...)
	bh := serveHost(t, b, "mx-b.example.test", "127.0.0.11", flags...)
	c := chainHost(t, b, "mx-c.example.test", "127.0.0.12", flags...)

	first := time.Now()
	out, code := a.send(t, "127.0.0.50")
	mustGreylisted(t, out, code, "127.0.0.50 at A, first attempt")
	a.logLine(t, "msg=greylisted ip=127.0.0.50 ", "network 127.0.0.0/24 new")
	out, code = a.send(t, "127.0.1.50")
	mustGreylisted(t, out, code, "127.0.1.50 at A, first attempt")

	// At B before the delay: early, by A's record. (A machine so slow that
	// the delay is over by now makes it pass at B as a retry instead:
	// that too is A's record.)
	out, code = bh.send(t, "127.0.0.50")
	if code == 0 {
		t.Logf("the retry at B came after the delay (%v): it passed", time.Since(first))
		bh.logLine(t, "msg=pass ip=127.0.0.50 ", `GREYLIST="retry `)
	} else {
		mustGreylisted(t, out, code, "127.0.0.50 at B before the delay")
		bh.logLine(t, "msg=greylisted ip=127.0.0.50 ", "network 127.0.0.0/24 early")
		bh.passAfterDelay(t, "127.0.0.50", first)
	}
	if got := bh.greylistEnv(t); len(got) != 1 || !strings.HasPrefix(got[0], "retry ") {
		t.Fatalf("B's server got MXFRONT_GREYLIST %q, want one retry", got)
	}

	// Known on every host: A's serve process, and C's chain-mode process,
	// ask Redis.
	out, code = a.send(t, "127.0.0.51")
	mustPass(t, out, code, "127.0.0.51 (same /24) at A")
	out, code = c.send(t, "127.0.0.52")
	mustPass(t, out, code, "127.0.0.52 (same /24) at C, chain mode")
	if got := a.greylistEnv(t); len(got) != 1 || !strings.HasPrefix(got[0], "passed ") {
		t.Errorf("A's server got MXFRONT_GREYLIST %q, want one passed", got)
	}
	if got := c.greylistEnv(t); len(got) != 1 || !strings.HasPrefix(got[0], "passed ") {
		t.Errorf("C's server got MXFRONT_GREYLIST %q, want one passed", got)
	}

	// remove on "A" (the admin command with the same store) of the pending
	// /24: at B, past its delay, it starts over instead of passing.
	if out, code := admin(t, b, "remove", "127.0.1.50", "--greylist-store", r.URL()); code != 0 || out != "removed 127.0.1.0/24\n" {
		t.Fatalf("remove 127.0.1.50: exit %d\n%s", code, out)
	}
	out, code = bh.send(t, "127.0.1.50")
	mustGreylisted(t, out, code, "127.0.1.50 at B after remove")
	bh.logLine(t, "msg=greylisted ip=127.0.1.50 ", "network 127.0.1.0/24 new")

	// remove of the passing /24: chain mode greylists it again at once;
	// serve mode passes it from its cache for up to 60s.
	if out, code := admin(t, b, "remove", "127.0.0.0/24", "--greylist-store", r.URL()); code != 0 {
		t.Fatalf("remove 127.0.0.0/24: exit %d\n%s", code, out)
	}
	out, code = c.send(t, "127.0.0.52")
	mustGreylisted(t, out, code, "127.0.0.52 at C after remove")
	out, code = a.send(t, "127.0.0.51")
	mustPass(t, out, code, "127.0.0.51 at A after remove, from A's pass cache")

	es := listed(t, b, "--greylist-store", r.URL())
	if len(es) != 2 || es[0].Network != "127.0.0.0/24" || es[0].Status != "pending" || es[1].Network != "127.0.1.0/24" || es[1].Status != "pending" {
		t.Errorf("Redis holds %+v, want 127.0.0.0/24 and 127.0.1.0/24 pending", es)
	}
	for _, h := range []*host{a, bh, c} {
		if strings.Contains(h.p.Output(), "level=ERROR") {
			t.Errorf("%s logged an error:\n%s", h.name, h.p.Output())
		}
	}
}

// Chain mode under tcpserver with the Redis store (mxfront execs
// mxfront-cli for it): the first attempt is greylisted, a retry before the
// delay too, a retry after it passes; Redis holds the record with its TTL.
func TestChainModeRedis(t *testing.T) {
	b := build(t)
	r := testpeer.StartRedis(t)
	c := chainHost(t, b, "mx-c.example.test", "127.0.0.12", greylistFlags(r.URL(), "--greylist-store-prefix", "site-c:")...)
	first := time.Now()
	out, code := c.send(t, "127.0.0.50")
	mustGreylisted(t, out, code, "first attempt")
	if ttl, err := testpeer.RedisCommand(r.Addr, "PTTL site-c:127.0.0.0/24"); err != nil || !strings.HasPrefix(ttl, ":") || ttl == ":-1" || ttl == ":-2" {
		t.Fatalf("the pending record's TTL: %q %v (want the window, 1h)", ttl, err)
	}
	out, code = c.send(t, "127.0.0.50")
	if code != 0 {
		mustGreylisted(t, out, code, "a retry before the delay")
		c.logLine(t, "msg=greylisted ip=127.0.0.50 ", "network 127.0.0.0/24 early")
		c.passAfterDelay(t, "127.0.0.50", first)
	}
	if got := c.greylistEnv(t); len(got) != 1 || !strings.HasPrefix(got[0], "retry ") {
		t.Fatalf("the server got MXFRONT_GREYLIST %q, want one retry", got)
	}
	if es := listed(t, b, "--greylist-store", r.URL(), "--greylist-store-prefix", "site-c:"); len(es) != 1 || es[0].Status != "passing" {
		t.Fatalf("Redis holds %+v", es)
	}
}

// Unsure means accept. Redis stopped by its PID: serve mode and chain
// mode pass new clients with MXFRONT_GREYLIST=error, and an ERROR line
// names the store: chain mode's for each client, serve mode's once for the
// incident. Redis started again: decisions resume without a restart of
// mxfront, and serve logs that the store answers again and how many
// clients passed meanwhile. A port that accepts connections and never
// answers: the client passes within the timeout (not measured here: the
// ERROR line says the store gave no answer within it).
func TestRedisFailurePasses(t *testing.T) {
	b := build(t)
	r := testpeer.StartRedis(t)
	a := serveHost(t, b, "mx-a.example.test", "127.0.0.10", greylistFlags(r.URL())...)
	c := chainHost(t, b, "mx-c.example.test", "127.0.0.12", greylistFlags(r.URL())...)
	a.logLine(t, "msg=\"greylist store answers; it expires records itself\"", "store="+r.URL())
	out, code := a.send(t, "127.0.2.50")
	mustGreylisted(t, out, code, "127.0.2.50 at A while Redis runs")

	r.Stop()
	for _, h := range []*host{a, c} {
		for _, src := range []string{"127.0.3.50", "127.0.3.51"} {
			out, code := h.send(t, src)
			mustPass(t, out, code, src+" at "+h.name+" with Redis stopped")
			h.logLine(t, "msg=pass ip="+src+" ", "GREYLIST=error")
		}
		line := h.unsureLine(t, "127.0.3.50")
		if !strings.Contains(line, "greylist: "+r.URL()+": get 127.0.3.0/24: ") {
			t.Errorf("%s: the ERROR line does not name the store and the network:\n%s", h.name, line)
		}
		want := 2 // chain mode: a process, a client, a line
		if h.serve {
			want = 1 // one incident
		}
		if n := strings.Count(h.p.Output(), "level=ERROR"); n != want {
			t.Errorf("%s logged %d ERROR lines for two clients, want %d:\n%s", h.name, n, want, h.p.Output())
		}
	}
	if got := a.greylistEnv(t); len(got) != 2 || got[0] != "error" || got[1] != "error" {
		t.Errorf("A's server got MXFRONT_GREYLIST %q, want error twice", got)
	}

	r.Restart(t)
	// A network of its own at each host: one shared would pass at the
	// second host as a retry if the first attempt were over the delay ago.
	for h, src := range map[*host]string{a: "127.0.8.50", c: "127.0.9.50"} {
		out, code := h.send(t, src)
		mustGreylisted(t, out, code, src+" at "+h.name+" with Redis back")
	}
	a.logLine(t, `level=WARN msg="greylist store answers again" passed=2 `)

	// A "Redis" that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	held.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		held.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	mute := "redis://" + ln.Addr().String()
	d := serveHost(t, b, "mx-d.example.test", "127.0.0.13", greylistFlags(mute, "--greylist-store-timeout", "300ms")...)
	d.logLine(t, `level=ERROR msg="greylist store not answering: clients pass until it does"`, "no answer within 300ms")
	e := chainHost(t, b, "mx-e.example.test", "127.0.0.14", greylistFlags(mute, "--greylist-store-timeout", "300ms")...)
	for _, h := range []*host{d, e} {
		out, code := h.send(t, "127.0.4.50")
		mustPass(t, out, code, "127.0.4.50 at "+h.name+", a store that never answers")
		h.unsureLine(t, "127.0.4.50", "no answer within 300ms")
	}
}

// A site moves its bbolt greylist to Redis: export from the file, import
// into Redis, and list --json of both agree; a network that had passed
// passes at once through Redis (MXFRONT_GREYLIST=passed), and a pending
// one keeps its first-seen time (its retry at the Redis host is early,
// not new). Importing again keeps every record.
func TestExportBoltImportRedis(t *testing.T) {
	b := build(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "greylist.db")
	old := chainHost(t, b, "mx-old.example.test", "127.0.0.12", "--greylist", "--greylist-db", db,
		"--greylist-delay", delay.String(), "--greylist-window", "1h")
	first := time.Now()
	out, code := old.send(t, "127.0.5.50")
	mustGreylisted(t, out, code, "127.0.5.50 at the bbolt host")
	old.passAfterDelay(t, "127.0.5.50", first)
	pendingSince := time.Now()
	out, code = old.send(t, "127.0.6.50")
	mustGreylisted(t, out, code, "127.0.6.50 at the bbolt host")

	exported, code := admin(t, b, "export", "--greylist-db", db)
	if code != 0 || strings.Count(exported, "\n") != 2 {
		t.Fatalf("export: exit %d\n%s", code, exported)
	}
	file := filepath.Join(dir, "greylist.jsonl")
	if err := os.WriteFile(file, []byte(exported), 0o600); err != nil {
		t.Fatal(err)
	}
	r := testpeer.StartRedis(t)
	if out, code := admin(t, b, "import", file, "--greylist-store", r.URL()); code != 0 ||
		out != "import: added 2, kept 0 (the store had them), left out 0 stale and 0 of another length\n" {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	from, to := listed(t, b, "--greylist-db", db), listed(t, b, "--greylist-store", r.URL())
	if len(from) != 2 || len(to) != 2 || !from[0].equal(to[0]) || !from[1].equal(to[1]) {
		t.Fatalf("list --json: bbolt %+v, Redis %+v", from, to)
	}
	if out, code := admin(t, b, "import", file, "--greylist-store", r.URL()); code != 0 || !strings.HasPrefix(out, "import: added 0, kept 2 ") {
		t.Fatalf("import again: exit %d\n%s", code, out)
	}

	a := serveHost(t, b, "mx-a.example.test", "127.0.0.10", greylistFlags(r.URL())...)
	out, code = a.send(t, "127.0.5.99")
	mustPass(t, out, code, "127.0.5.99, a known network, at the Redis host")
	if got := a.greylistEnv(t); len(got) != 1 || !strings.HasPrefix(got[0], "passed ") {
		t.Errorf("the Redis host's server got MXFRONT_GREYLIST %q, want passed", got)
	}
	out, code = a.send(t, "127.0.6.50")
	if code == 0 {
		t.Logf("the delay was over (%v since the first attempt): passed", time.Since(pendingSince))
		a.logLine(t, "msg=pass ip=127.0.6.50 ", `GREYLIST="retry `)
	} else {
		mustGreylisted(t, out, code, "127.0.6.50, pending, at the Redis host")
		a.logLine(t, "msg=greylisted ip=127.0.6.50 ", "network 127.0.6.0/24 early")
	}
}
