package greylist_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mxfront/mxfront/greylist"
	"github.com/mxfront/mxfront/greylist/control/controltest"
)

// The networks of the compaction race tests, by index (helperAddr).
const (
	raceOld       = 0      // [raceOld, raceOld+n): seen at base, passed by the writers
	raceAbandoned = 50000  // seen two days before base, deleted by Expire
	raceNew       = 100000 // recorded as new by the writers
)

// populateAt records networks [lo, hi) as first seen at at, through one
// KeepOpen store.
func populateAt(t testing.TB, db string, lo, hi int, at time.Time) {
	t.Helper()
	store := openBolt(t, db, greylist.BoltOptions{KeepOpen: true})
	defer store.Close()
	p, err := greylist.NewPolicy(store, greylist.Config{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	for i := lo; i < hi; i++ {
		if o, err := p.Decide(ctx, helperAddr(i)); err != nil || o.State != greylist.New {
			t.Fatalf("populate %d: %v, %v", i, o.State, err)
		}
	}
}

// raceTally is what the goroutines of a race test acknowledged.
type raceTally struct {
	mu          sync.Mutex
	passed      []int // pass recorded (Decide said Passed)
	created     []int // first attempt recorded (Decide said New)
	expired     int   // records Expire reported deleted
	compactions int
	failed      int
	errs        []error // the first few failures
}

func (r *raceTally) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed++; len(r.errs) < 5 {
		r.errs = append(r.errs, err)
	}
}

// Several compactions, expiries and writers at once, each through a store
// of its own, as separate processes open the file: every write a writer was
// told succeeded is in the final file, and no record that Expire reported
// deleted comes back (each is deleted exactly once).
func TestBoltCompactorsExpirersAndWriters(t *testing.T) { compactionRace(t, false) }

// The same with one process holding the file (serve mode: a KeepOpen
// store, whose policy the writers share) and the compactions and expiries
// reaching it through its control socket, as `mxfront greylist` does.
func TestBoltCompactionRaceThroughControlSocket(t *testing.T) { compactionRace(t, true) }

// maintained is a store that compactors and expirers work on.
type maintained interface {
	greylist.Store
	greylist.Compacter
}

func compactionRace(t *testing.T, held bool) {
	const (
		writers, compactors, expirers = 4, 3, 2
		old, abandoned                = 600, 600
	)
	minCompactions := 100
	if testing.Short() {
		minCompactions = 30
	}
	db := dbPath(t)
	populateAt(t, db, raceOld, raceOld+old, base)
	populateAt(t, db, raceAbandoned, raceAbandoned+abandoned, base.Add(-48*time.Hour))
	now := func() time.Time { return base.Add(6 * time.Minute) }
	policy := func(s greylist.Store) *greylist.Policy {
		p, err := greylist.NewPolicy(s, greylist.Config{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// open is a store for one writer, compactor or expirer.
	open := func() (maintained, *greylist.Policy) {
		s := openBolt(t, db, greylist.BoltOptions{LockTimeout: time.Minute})
		return s, policy(s)
	}
	openWriter := open
	var holder *greylist.Bolt
	if held {
		holder = openBolt(t, db, greylist.BoltOptions{KeepOpen: true, LockTimeout: time.Minute})
		defer holder.Close()
		shared := policy(holder)
		openWriter = func() (maintained, *greylist.Policy) { return holder, shared }
		sock := controltest.Serve(t, holder, nil)
		open = func() (maintained, *greylist.Policy) {
			r := controltest.Dial(t, sock)
			return r, policy(r)
		}
	}

	var tally raceTally
	var stop atomic.Bool
	var wg sync.WaitGroup
	var writersDone sync.WaitGroup // through the networks they must pass
	for w := range writers {
		_, p := openWriter()
		writersDone.Add(1)
		wg.Go(func() {
			var passed, created []int
			defer func() {
				tally.mu.Lock()
				tally.passed = append(tally.passed, passed...)
				tally.created = append(tally.created, created...)
				tally.mu.Unlock()
			}()
			decide := func(i int, want greylist.State) bool {
				o, err := p.Decide(ctx, helperAddr(i))
				if err == nil && o.State != want {
					err = fmt.Errorf("network %d: %v, want %v", i, o.State, want)
				}
				if err != nil {
					tally.fail(err)
					return false
				}
				return true
			}
			for i := raceOld + w; i < raceOld+old; i += writers {
				if decide(i, greylist.Passed) {
					passed = append(passed, i)
				}
			}
			writersDone.Done()
			for i := raceNew + w; !stop.Load(); i += writers {
				if decide(i, greylist.New) {
					created = append(created, i)
				}
			}
		})
	}
	for range compactors {
		s, _ := open()
		wg.Go(func() {
			for !stop.Load() {
				if _, err := s.Compact(ctx); err != nil {
					tally.fail(fmt.Errorf("compact: %w", err))
					continue
				}
				tally.mu.Lock()
				tally.compactions++
				enough := tally.compactions >= minCompactions
				tally.mu.Unlock()
				if enough {
					// Writers keep going until they have passed
					// every old network under compaction.
					writersDone.Wait()
					stop.Store(true)
				}
			}
		})
	}
	for range expirers {
		_, p := open()
		wg.Go(func() {
			for !stop.Load() {
				e, err := p.Expire(ctx)
				if err != nil {
					tally.fail(fmt.Errorf("expire: %w", err))
					continue
				}
				tally.mu.Lock()
				tally.expired += e.Abandoned + e.Lapsed + e.Unreadable
				tally.mu.Unlock()
			}
		})
	}
	wg.Wait()
	// One last expiry, alone, deletes whatever a lost delete left.
	_, p := open()
	e, err := p.Expire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tally.expired += e.Abandoned + e.Lapsed + e.Unreadable
	if holder != nil {
		holder.Close()
	}
	checkFile(t, db)

	store := openBolt(t, db, greylist.BoltOptions{})
	lost := 0
	get := func(i int) greylist.Record {
		n, _ := p.Network(helperAddr(i))
		r, err := store.Get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, i := range tally.passed {
		if r := get(i); !r.LastPass.Equal(now()) {
			lost++
			if lost <= 5 {
				t.Errorf("network %d: pass recorded, the file has %+v", i, r)
			}
		}
	}
	for _, i := range tally.created {
		if r := get(i); !r.FirstSeen.Equal(now()) {
			lost++
			if lost <= 5 {
				t.Errorf("network %d: recorded as new, the file has %+v", i, r)
			}
		}
	}
	st, err := store.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d compactions, %d passes and %d new networks recorded and %d records expired beside them: %d writes lost, %d operations failed; %d records, %d bytes",
		tally.compactions, len(tally.passed), len(tally.created), tally.expired, lost, tally.failed, st.Records, st.Bytes)
	if tally.failed > 0 {
		t.Errorf("%d operations failed, e.g. %v", tally.failed, errors.Join(tally.errs...))
	}
	if len(tally.passed) != old {
		t.Errorf("%d passes recorded, want %d", len(tally.passed), old)
	}
	if tally.expired != abandoned {
		t.Errorf("Expire deleted %d records, want each of the %d abandoned once", tally.expired, abandoned)
	}
	if want := old + len(tally.created); st.Records != want {
		t.Errorf("the file holds %d records, want %d", st.Records, want)
	}
	if lost > 0 {
		t.Fatalf("%d acknowledged writes lost", lost)
	}
	leftovers, _ := filepath.Glob(db + ".compact-*")
	if len(leftovers) != 0 {
		t.Errorf("compactions left %v", leftovers)
	}
}

// maintain is a helper process that compacts the file, or expires its
// records, again and again until its standard input ends, as a cron job
// or an administrator would beside a running mxfront. It prints "ready"
// after its first operation, and at the end "done OPERATIONS EXPIRED
// FAILED"; the first failure goes to standard error.
func maintain(role string, store *greylist.Bolt, p *greylist.Policy) error {
	stop := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	expired, failed := 0, 0
	for ops := 0; ; ops++ {
		select {
		case <-stop:
			fmt.Printf("done %d %d %d\n", ops, expired, failed)
			return nil
		default:
		}
		var err error
		if role == "compact" {
			_, err = store.Compact(ctx)
		} else {
			var e greylist.Expired
			e, err = p.Expire(ctx)
			expired += e.Abandoned + e.Lapsed + e.Unreadable
		}
		if err != nil {
			if failed++; failed == 1 {
				fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
			}
		}
		if ops == 0 {
			fmt.Println("ready")
		}
	}
}

// maintainers are helper processes running maintain.
type maintainers struct {
	cmds  []*exec.Cmd
	ins   []io.WriteCloser
	outs  []*bufio.Reader
	roles []string
}

// startMaintainers starts the helpers of the given roles on db, with the
// clock at at, and returns once each has done its first operation.
func startMaintainers(t *testing.T, db string, at time.Time, roles ...string) *maintainers {
	t.Helper()
	m := &maintainers{roles: roles}
	for _, role := range roles {
		cmd := helperCmd(t, role, db, at, 0, 30*time.Second)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close(); cmd.Wait() })
		m.cmds, m.ins, m.outs = append(m.cmds, cmd), append(m.ins, in), append(m.outs, bufio.NewReader(out))
	}
	for i, out := range m.outs {
		if line, err := out.ReadString('\n'); line != "ready\n" {
			t.Fatalf("%s helper: %q, %v", roles[i], line, err)
		}
	}
	return m
}

// stop ends the helpers and returns how many compactions they made, how
// many records they expired and how many of their operations failed.
func (m *maintainers) stop(t *testing.T) (compactions, expired, failed int) {
	t.Helper()
	for _, in := range m.ins {
		in.Close()
	}
	for i, out := range m.outs {
		line, _ := out.ReadString('\n')
		var ops, n, f int
		if _, err := fmt.Sscanf(line, "done %d %d %d\n", &ops, &n, &f); err != nil {
			t.Fatalf("%s helper: %q: %v", m.roles[i], line, err)
		}
		if err := m.cmds[i].Wait(); err != nil {
			t.Fatalf("%s helper: %v", m.roles[i], err)
		}
		if m.roles[i] == "compact" {
			compactions += ops
		}
		expired += n
		failed += f
	}
	return compactions, expired, failed
}

// The race as it was seen: chain-mode processes deciding on one file while
// several compactions (and an expiry) run beside them, each its own
// process. Every network is recorded as new by exactly one process in
// round one and passed by exactly one in round two, and the file holds
// every pass: none was lost, so no passed client is greylisted again.
func TestBoltCompactionRaceProcesses(t *testing.T) {
	procs, nets, compactors, abandoned := 20, 60, 3, 500
	if testing.Short() {
		procs, nets, compactors = 8, 30, 2
	}
	db := dbPath(t)
	populateAt(t, db, raceAbandoned, raceAbandoned+abandoned, base.Add(-48*time.Hour))
	roles := []string{"expire"}
	for range compactors {
		roles = append(roles, "compact")
	}
	totalCompactions, totalExpired := 0, 0
	for round, at := range []time.Time{base, base.Add(6 * time.Minute)} {
		m := startMaintainers(t, db, at, roles...)
		got := runRound(t, db, at, procs, nets)
		compactions, expired, failed := m.stop(t)
		totalCompactions += compactions
		totalExpired += expired
		// A write lost shows as a second "new" (or "passed") for the
		// network: a later process found no record of the first.
		first, rest := "new", "early"
		if round == 1 {
			first, rest = "passed", "known"
		}
		lost, wrong, errs := 0, 0, 0
		for i := range nets {
			s := got[i]
			if count(s, first) > 1 {
				lost++
			}
			for _, state := range s {
				if strings.HasPrefix(state, "error ") {
					errs++
				}
			}
			if len(s) != procs || count(s, first) != 1 || count(s, rest) != procs-1 {
				if wrong++; wrong <= 3 {
					t.Errorf("network %d, round %d: %v", i, round+1, s)
				}
			}
		}
		t.Logf("round %d: %d processes deciding on %d networks beside %d compactions and %d expired records: "+
			"%d networks %s more than once (a write lost), %d decisions failed, %d compactions or expiries failed",
			round+1, procs, nets, compactions, expired, lost, first, errs, failed)
		if wrong > 0 || failed > 0 {
			t.FailNow()
		}
	}
	checkFile(t, db)
	store := openBolt(t, db, greylist.BoltOptions{})
	p, _ := newPolicy(t, store)
	for i := range nets {
		n, _ := p.Network(helperAddr(i))
		r, err := store.Get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if want := (greylist.Record{FirstSeen: base, LastPass: base.Add(6 * time.Minute)}); !r.Equal(want) {
			t.Fatalf("network %v: record %+v, want %+v", n, r, want)
		}
	}
	if st, err := store.Stats(ctx); err != nil || st.Records != nets || totalExpired != abandoned {
		t.Fatalf("Stats = %+v, %v; want %d records; %d expired, want %d", st, err, nets, totalExpired, abandoned)
	}
	t.Logf("%d compactions in all; every one of %d networks recorded once and passed once", totalCompactions, nets)
}

// A compaction waits for the one under way (it holds the lock of the
// file's directory) and gives up after LockTimeout with ErrLocked, while
// decisions go on beside it.
func TestBoltCompactionsTakeTurns(t *testing.T) {
	db := dbPath(t)
	populateAt(t, db, 0, 10, base)
	dir, err := os.Open(filepath.Dir(db))
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	// The test plays the compaction under way.
	if err := syscall.Flock(int(dir.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	store := openBolt(t, db, greylist.BoltOptions{LockTimeout: 200 * time.Millisecond})
	_, err = store.Compact(ctx)
	if !errors.Is(err, greylist.ErrLocked) || !strings.Contains(err.Error(), "another compaction") {
		t.Fatalf("Compact during another: %v, want ErrLocked saying why", err)
	}
	p, _ := newPolicy(t, store)
	if o := decide(t, p, "198.51.100.1"); o.State != greylist.New {
		t.Fatalf("a decision during a compaction: %v", o.State)
	}
	if err := syscall.Flock(int(dir.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Compact(ctx); err != nil {
		t.Fatalf("Compact after the other: %v", err)
	}
}

// Through a symbolic link, Compact replaces the file the link names, and
// the link stays: compactions through the link and through the file's
// own name take turns on the same directory.
func TestBoltCompactFollowsSymlink(t *testing.T) {
	top := t.TempDir()
	real := filepath.Join(top, "data", "greylist.db")
	if err := os.Mkdir(filepath.Dir(real), 0o700); err != nil {
		t.Fatal(err)
	}
	populateAt(t, real, 0, 100, base)
	link := filepath.Join(top, "greylist.db")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(real)
	store := openBolt(t, link, greylist.BoltOptions{})
	if _, err := store.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link after Compact: %v, %v", fi.Mode(), err)
	}
	after, _ := os.Stat(real)
	if os.SameFile(before, after) {
		t.Fatal("the file the link names was not replaced")
	}
	if st, err := store.Stats(ctx); err != nil || st.Records != 100 {
		t.Fatalf("through the link after Compact: %+v, %v", st, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(top, "*.compact-*"))
	if len(leftovers) != 0 {
		t.Fatalf("Compact left %v", leftovers)
	}
}
