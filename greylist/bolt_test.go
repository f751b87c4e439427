package greylist_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/mxfront/mxfront/greylist"
)

// Helper processes: the test binary re-executed with GREYLIST_HELPER set
// plays a chain-mode mxfront process on a shared file.
func TestMain(m *testing.M) {
	if h := os.Getenv("GREYLIST_HELPER"); h != "" {
		if err := helper(h); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func envInt(name string) int {
	v, err := strconv.Atoi(os.Getenv(name))
	if err != nil {
		panic(name + ": " + err.Error())
	}
	return v
}

// helperAddr is the address a helper uses for network i.
func helperAddr(i int) netip.Addr {
	if i%2 == 0 {
		return netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(1 + i%200)})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 15: 1})
}

// helper runs one helper role, printing one line per decision:
// "NETWORK-INDEX STATE" or "NETWORK-INDEX error MESSAGE"; or, for the
// roles compact and expire, see maintain.
func helper(role string) error {
	store, err := greylist.OpenBolt(os.Getenv("GREYLIST_DB"), greylist.BoltOptions{
		LockTimeout: time.Duration(envInt("GREYLIST_LOCK_MS")) * time.Millisecond,
	})
	if err != nil {
		return err
	}
	at := time.Unix(int64(envInt("GREYLIST_AT")), 0)
	p, err := greylist.NewPolicy(store, greylist.Config{Now: func() time.Time { return at }})
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	nets := envInt("GREYLIST_NETS")
	order := rand.Perm(nets)
	switch role {
	case "decide":
	case "crash":
		// Decide for ever on new networks, reporting each as soon as it is
		// recorded; the test kills the process at some point.
		out = bufio.NewWriterSize(os.Stdout, 1)
		order = order[:0]
		for i := range nets {
			order = append(order, i)
		}
	case "full":
		// Writes past the file's present size fail with EFBIG, as on a
		// full disk; SIGXFSZ would kill the process instead.
		signal.Ignore(syscall.SIGXFSZ)
		fi, err := os.Stat(os.Getenv("GREYLIST_DB"))
		if err != nil {
			return err
		}
		lim := &syscall.Rlimit{Cur: uint64(fi.Size()), Max: uint64(fi.Size())}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, lim); err != nil {
			return err
		}
	case "compact", "expire":
		return maintain(role, store, p)
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	for _, i := range order {
		o, err := p.Decide(ctx, helperAddr(i))
		if err != nil {
			fmt.Fprintf(out, "%d error %s\n", i, strings.ReplaceAll(err.Error(), "\n", " "))
			continue
		}
		fmt.Fprintf(out, "%d %s\n", i, o.State)
		if role == "crash" {
			out.Flush()
		}
	}
	return nil
}

func helperCmd(t *testing.T, role, db string, at time.Time, nets int, lock time.Duration) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		"GREYLIST_HELPER="+role,
		"GREYLIST_DB="+db,
		"GREYLIST_AT="+strconv.FormatInt(at.Unix(), 10),
		"GREYLIST_NETS="+strconv.Itoa(nets),
		"GREYLIST_LOCK_MS="+strconv.Itoa(int(lock/time.Millisecond)),
	)
	cmd.Stderr = os.Stderr
	return cmd
}

// results parses a helper's output into network index → states.
func results(t *testing.T, out []byte, into map[int][]string) {
	t.Helper()
	for line := range strings.Lines(string(out)) {
		i, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.Atoi(i)
		if !ok || err != nil {
			t.Fatalf("helper said %q", line)
		}
		into[n] = append(into[n], rest)
	}
}

// checkFile fails t unless the file passes bbolt's consistency check.
func checkFile(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		t.Fatalf("%s is inconsistent: %v", path, err)
	}
}

// runRound starts procs helpers deciding for nets networks at the same
// instant on one file and returns what each network got.
func runRound(t *testing.T, db string, at time.Time, procs, nets int) map[int][]string {
	t.Helper()
	cmds := make([]*exec.Cmd, procs)
	outs := make([]*bytes.Buffer, procs)
	for i := range cmds {
		cmds[i] = helperCmd(t, "decide", db, at, nets, 30*time.Second)
		outs[i] = new(bytes.Buffer)
		cmds[i].Stdout = outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	got := map[int][]string{}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("helper %d: %v", i, err)
		}
		results(t, outs[i].Bytes(), got)
	}
	return got
}

func count(states []string, s string) int {
	n := 0
	for _, x := range states {
		if x == s {
			n++
		}
	}
	return n
}

func TestBoltManyProcesses(t *testing.T) {
	procs, nets := 50, 60
	if testing.Short() {
		procs, nets = 10, 20
	}
	db := dbPath(t)
	// Round one: every process sees every network for the first time at
	// the same instant. Exactly one of them may record it as new.
	got := runRound(t, db, base, procs, nets)
	for i := range nets {
		s := got[i]
		if len(s) != procs || count(s, "new") != 1 || count(s, "early") != procs-1 {
			t.Fatalf("network %d, round one: %v", i, s)
		}
	}
	checkFile(t, db)
	// Round two, after the delay: exactly one records the pass.
	got = runRound(t, db, base.Add(6*time.Minute), procs, nets)
	for i := range nets {
		s := got[i]
		if len(s) != procs || count(s, "passed") != 1 || count(s, "known") != procs-1 {
			t.Fatalf("network %d, round two: %v", i, s)
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
		want := greylist.Record{FirstSeen: base, LastPass: base.Add(6 * time.Minute)}
		if !r.Equal(want) {
			t.Fatalf("network %v: record %+v, want %+v", n, r, want)
		}
	}
	if st, err := store.Stats(ctx); err != nil || st.Records != nets {
		t.Fatalf("Stats = %+v, %v; want %d records", st, err, nets)
	}
}

func TestBoltLockedWriterBoundsReaders(t *testing.T) {
	db := dbPath(t)
	p, _ := newPolicy(t, openBolt(t, db, greylist.BoltOptions{}))
	decide(t, p, "192.0.2.1")
	holder, err := bolt.Open(db, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()

	const bound = 300 * time.Millisecond
	store := openBolt(t, db, greylist.BoltOptions{LockTimeout: bound})
	p, _ = newPolicy(t, store)
	for name, op := range map[string]func() error{
		"Get": func() error {
			_, err := store.Get(ctx, netip.MustParsePrefix("192.0.2.0/24"))
			return err
		},
		"Decide": func() error {
			_, err := p.Decide(ctx, netip.MustParseAddr("192.0.2.1"))
			return err
		},
		"Scan": func() error { return p.List(ctx, func(greylist.Entry) error { return nil }) },
		"Compact": func() error {
			_, err := store.Compact(ctx)
			return err
		},
	} {
		// The holder never lets go: an answer at all proves the wait is
		// bounded, and it must not come before the bound. How long after
		// it is the scheduler's business on a loaded machine; the hang
		// guard only catches a wait for ever (bbolt's Timeout 0).
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- op() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(time.Minute):
			t.Fatalf("%s still waiting after a minute, bound %v", name, bound)
		}
		took := time.Since(start)
		if !errors.Is(err, greylist.ErrLocked) {
			t.Errorf("%s while a writer holds the file: %v, want ErrLocked", name, err)
		}
		if took < bound {
			t.Errorf("%s gave up after %v, before its bound %v", name, took, bound)
		}
	}
}

func TestBoltReadersShareWritersWait(t *testing.T) {
	db := dbPath(t)
	p, _ := newPolicy(t, openBolt(t, db, greylist.BoltOptions{}))
	decide(t, p, "192.0.2.1")
	reader, err := bolt.Open(db, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	store := openBolt(t, db, greylist.BoltOptions{LockTimeout: 200 * time.Millisecond})
	p, clk := newPolicy(t, store)
	clk.t = base.Add(time.Minute)
	// An early retry only reads: it goes on beside another reader.
	if o, err := p.Decide(ctx, netip.MustParseAddr("192.0.2.1")); err != nil || o.State != greylist.Early {
		t.Fatalf("early retry beside a reader: %v, %v", o.State, err)
	}
	// A new network must write, and waits for the reader in vain.
	if _, err := p.Decide(ctx, netip.MustParseAddr("203.0.113.1")); !errors.Is(err, greylist.ErrLocked) {
		t.Fatalf("new network beside a reader: %v, want ErrLocked", err)
	}
	reader.Close()
	if o, err := p.Decide(ctx, netip.MustParseAddr("203.0.113.1")); err != nil || o.State != greylist.New {
		t.Fatalf("new network alone: %v, %v", o.State, err)
	}
}

func TestBoltKeepOpenHoldsTheFile(t *testing.T) {
	db := dbPath(t)
	held := openBolt(t, db, greylist.BoltOptions{KeepOpen: true})
	p, clk := newPolicy(t, held)
	decide(t, p, "192.0.2.1")
	other := openBolt(t, db, greylist.BoltOptions{LockTimeout: 100 * time.Millisecond})
	if _, err := other.Get(ctx, netip.MustParsePrefix("192.0.2.0/24")); !errors.Is(err, greylist.ErrLocked) {
		t.Fatalf("another process beside a KeepOpen store: %v, want ErrLocked", err)
	}
	if _, err := held.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	clk.t = base.Add(6 * time.Minute)
	if o := decide(t, p, "192.0.2.1"); o.State != greylist.Passed {
		t.Fatalf("after Compact: %v", o.State)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := other.Get(ctx, netip.MustParsePrefix("192.0.2.0/24"))
	if err != nil || r.LastPass.IsZero() {
		t.Fatalf("after Close, another process reads %+v, %v", r, err)
	}
}

func TestBoltKillDuringWrites(t *testing.T) {
	db := dbPath(t)
	rounds := 6
	if testing.Short() {
		rounds = 2
	}
	// Each round's helper runs through the networks from the first: it
	// reads those already recorded (early retries) and writes new ones.
	recorded := map[int]bool{}
	for round := range rounds {
		cmd := helperCmd(t, "crash", db, base, 1_000_000, 5*time.Second)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		// Let it record a few networks, then kill it at a moment that
		// varies round to round, likely inside a commit.
		want := 5 + round*7
		seen := 0
		for seen < want && lines.Scan() {
			i, state, _ := strings.Cut(lines.Text(), " ")
			if state == "new" {
				n, _ := strconv.Atoi(i)
				recorded[n] = true
			}
			seen++
		}
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		cmd.Process.Kill()
		for lines.Scan() {
			i, state, _ := strings.Cut(lines.Text(), " ")
			if state == "new" {
				n, _ := strconv.Atoi(i)
				recorded[n] = true
			}
		}
		cmd.Wait()
		checkFile(t, db)
	}
	store := openBolt(t, db, greylist.BoltOptions{})
	p, _ := newPolicy(t, store)
	for i := range recorded {
		n, _ := p.Network(helperAddr(i))
		r, err := store.Get(ctx, n)
		if err != nil || !r.FirstSeen.Equal(base) {
			t.Fatalf("network %v reported recorded before the kill: %+v, %v", n, r, err)
		}
	}
	if len(recorded) == 0 {
		t.Fatal("the helper recorded nothing")
	}
	// The file still takes writes.
	if o := decide(t, p, "198.51.100.1"); o.State != greylist.New {
		t.Fatalf("after kills: %v", o.State)
	}
}

func TestBoltFullDisk(t *testing.T) {
	db := dbPath(t)
	p, _ := newPolicy(t, openBolt(t, db, greylist.BoltOptions{}))
	decide(t, p, "192.0.2.1")
	before, _ := os.Stat(db)
	cmd := helperCmd(t, "full", db, base, 3000, 5*time.Second)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper on a full disk: %v (a panic or a signal?)", err)
	}
	got := map[int][]string{}
	results(t, out, got)
	var errs, news int
	var firstErr string
	for _, s := range got {
		switch {
		case strings.HasPrefix(s[0], "error "):
			errs++
			if firstErr == "" {
				firstErr = s[0]
			}
		case s[0] == "new":
			news++
		default:
			t.Fatalf("on a full disk a new network was %q", s[0])
		}
	}
	if errs == 0 {
		t.Fatalf("no write failed; %d recorded", news)
	}
	if !strings.Contains(firstErr, "file too large") {
		t.Errorf("error %q does not say the file could not grow", firstErr)
	}
	t.Logf("full disk: %d recorded, %d errors, e.g. %s", news, errs, firstErr)
	after, _ := os.Stat(db)
	if after.Size() != before.Size() {
		t.Errorf("file grew from %d to %d bytes past the limit", before.Size(), after.Size())
	}
	checkFile(t, db)
	store := openBolt(t, db, greylist.BoltOptions{})
	p, _ = newPolicy(t, store)
	for i, s := range got {
		n, _ := p.Network(helperAddr(i))
		r, err := store.Get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if (s[0] == "new") != !r.IsZero() {
			t.Fatalf("network %v: helper said %q, file has %+v", n, s[0], r)
		}
	}
	// With room again, the file takes writes.
	if o := decide(t, p, "198.51.100.1"); o.State != greylist.New {
		t.Fatalf("after the disk full: %v", o.State)
	}
}

// everyOp runs every operation of the store and a policy over it, and
// returns their errors; any panic fails the test by itself.
func everyOp(t *testing.T, store *greylist.Bolt) map[string]error {
	t.Helper()
	p, _ := newPolicy(t, store)
	errs := map[string]error{}
	for i := range 300 {
		if _, err := p.Decide(ctx, helperAddr(i)); err != nil {
			errs["Decide"] = err
		}
	}
	_, errs["Peek"] = p.Peek(ctx, netip.MustParseAddr("192.0.2.1"))
	errs["Allow"] = p.Allow(ctx, netip.MustParsePrefix("192.0.2.0/24"))
	_, errs["Remove"] = p.Remove(ctx, netip.MustParsePrefix("192.0.2.0/24"))
	errs["List"] = p.List(ctx, func(greylist.Entry) error { return nil })
	_, errs["Expire"] = p.Expire(ctx)
	_, errs["Stats"] = p.Stats(ctx)
	_, errs["Compact"] = store.Compact(ctx)
	return errs
}

func TestBoltGarbageFile(t *testing.T) {
	db := dbPath(t)
	garbage := make([]byte, 64<<10)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(garbage)
	if err := os.WriteFile(db, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	for op, err := range everyOp(t, openBolt(t, db, greylist.BoltOptions{})) {
		if !errors.Is(err, greylist.ErrDamaged) {
			t.Errorf("%s on garbage: %v, want ErrDamaged", op, err)
		}
	}
	if _, err := greylist.OpenBolt(db, greylist.BoltOptions{KeepOpen: true}); !errors.Is(err, greylist.ErrDamaged) {
		t.Errorf("KeepOpen on garbage: %v, want ErrDamaged", err)
	}
}

func TestBoltDamagedPages(t *testing.T) {
	defer greylist.SetChunks(7, 11)()
	db := dbPath(t)
	populate(t, db, 1000, 1, 0)
	// Overwrite the pages after the two meta pages with garbage: the
	// file opens, and what it holds is nonsense.
	f, err := os.OpenFile(db, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	garbage := make([]byte, fi.Size()-2*4096)
	rand.NewChaCha8([32]byte{2}).Read(garbage)
	if _, err := f.WriteAt(garbage, 2*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	errs := everyOp(t, openBolt(t, db, greylist.BoltOptions{}))
	for _, op := range []string{"Decide", "List", "Stats"} {
		if errs[op] == nil {
			t.Errorf("%s on damaged pages gave no error", op)
		}
	}
	// No failure may leave the file locked.
	f, err = os.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("the damaged file is left locked: %v", err)
	}
	t.Logf("errors: %v", errs)
}

func TestBoltUnreadable(t *testing.T) {
	// The tests run as root, whom file permissions do not stop: a
	// directory where the file should be cannot be read as one by anybody.
	db := dbPath(t)
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	for op, err := range everyOp(t, openBolt(t, db, greylist.BoltOptions{})) {
		if err == nil {
			t.Errorf("%s on a directory: no error", op)
		}
	}
	if _, err := greylist.OpenBolt(db, greylist.BoltOptions{KeepOpen: true}); err == nil {
		t.Error("KeepOpen on a directory: no error")
	}
}

func TestBoltCompact(t *testing.T) {
	db := dbPath(t)
	const nets = 4000
	populate(t, db, nets, 1, 0)
	// Half the networks pass, the others are abandoned and expired.
	populate(t, db, nets, 2, 6*time.Minute)
	if err := os.Chmod(db, 0o640); err != nil {
		t.Fatal(err)
	}
	store := openBolt(t, db, greylist.BoltOptions{})
	p, clk := newPolicy(t, store)
	clk.t = base.Add(25 * time.Hour)
	if e, err := p.Expire(ctx); err != nil || e.Abandoned != nets/2 {
		t.Fatalf("Expire = %+v, %v", e, err)
	}
	c, err := store.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compacted %d to %d bytes", c.Before, c.After)
	fi, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	if c.After >= c.Before || fi.Size() != c.After {
		t.Fatalf("Compact: %+v, file now %d bytes", c, fi.Size())
	}
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("Compact changed the mode to %v", fi.Mode())
	}
	leftovers, _ := filepath.Glob(db + ".compact-*")
	if len(leftovers) != 0 {
		t.Fatalf("Compact left %v", leftovers)
	}
	checkFile(t, db)
	for i := range nets {
		o, err := p.Peek(ctx, helperAddr(i))
		if err != nil {
			t.Fatal(err)
		}
		if want := []greylist.State{greylist.Known, greylist.New}[i%2]; o.State != want {
			t.Fatalf("network %d after Compact: %v, want %v", i, o.State, want)
		}
	}
}

func TestBoltCompactWhileWriting(t *testing.T) {
	db := dbPath(t)
	populate(t, db, 2000, 1, 0)
	p, _ := newPolicy(t, greylist.NewMemory())
	var recorded atomic.Int64
	// Writers record new networks, each through its own store as separate
	// processes would, while the file is compacted again and again. Every
	// write that reported success must be in the final file.
	const writers = 3
	stop := make(chan struct{})
	done := make(chan []int, writers)
	for w := range writers {
		go func() {
			store, _ := greylist.OpenBolt(db, greylist.BoltOptions{LockTimeout: 5 * time.Second})
			p, _ := greylist.NewPolicy(store, greylist.Config{Now: func() time.Time { return base }})
			var ok []int
			for i := 10000 + w; ; i += writers {
				select {
				case <-stop:
					done <- ok
					return
				default:
				}
				if o, err := p.Decide(ctx, helperAddr(i)); err == nil && o.State == greylist.New {
					ok = append(ok, i)
					recorded.Add(1)
				}
			}
		}()
	}
	compactor := openBolt(t, db, greylist.BoltOptions{LockTimeout: 5 * time.Second})
	compactions := 0
	for ; compactions < 5 || recorded.Load() < 50 && compactions < 500; compactions++ {
		if _, err := compactor.Compact(ctx); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	var written []int
	for range writers {
		written = append(written, <-done...)
	}
	if len(written) == 0 {
		t.Fatal("no writer recorded anything")
	}
	checkFile(t, db)
	store := openBolt(t, db, greylist.BoltOptions{})
	for _, i := range written {
		n, _ := p.Network(helperAddr(i))
		if r, err := store.Get(ctx, n); err != nil || r.IsZero() {
			t.Fatalf("network %v, recorded during compaction, is lost: %+v, %v", n, r, err)
		}
	}
	t.Logf("%d networks recorded during %d compactions", len(written), compactions)
}

// populate has every every-th of nets networks decided at base+at, as a busy serve-mode
// process would, through a KeepOpen store written to by several goroutines.
func populate(t testing.TB, db string, nets, every int, at time.Duration) {
	t.Helper()
	store := openBolt(t, db, greylist.BoltOptions{KeepOpen: true})
	defer store.Close()
	p, err := greylist.NewPolicy(store, greylist.Config{Now: func() time.Time { return base.Add(at) }})
	if err != nil {
		t.Fatal(err)
	}
	const workers = 32
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w * every; i < nets; i += workers * every {
				if _, err := p.Decide(ctx, helperAddr(i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A writer is not kept out by readers whose shared locks overlap without
// end (flock alone gives a waiting writer no priority): readers that pass
// the turnstile, as a store's reads do, let a waiting writer in once
// those in the file are done.
func TestBoltWriterNotStarvedByReaders(t *testing.T) {
	db := dbPath(t)
	p, _ := newPolicy(t, openBolt(t, db, greylist.BoltOptions{}))
	decide(t, p, "192.0.2.1") // the file exists
	var stop atomic.Bool
	var wg sync.WaitGroup
	held := make(chan struct{}, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := true; !stop.Load(); first = false {
				f, err := os.Open(db)
				if err != nil {
					t.Error(err)
					return
				}
				if err := greylist.Lock(f, false, time.Now().Add(time.Minute)); err != nil {
					f.Close()
					t.Error(err)
					return
				}
				if first {
					held <- struct{}{}
				}
				// Each reader holds the shared lock a while, and the
				// three are staggered: the file is never unlocked.
				time.Sleep(time.Duration(20+5*i) * time.Millisecond)
				f.Close()
			}
		}()
	}
	for range 3 {
		<-held
	}
	w, _ := newPolicy(t, openBolt(t, db, greylist.BoltOptions{LockTimeout: 20 * time.Second}))
	_, err := w.Decide(ctx, netip.MustParseAddr("198.51.100.1")) // a new network: a write
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("a writer among overlapping readers: %v", err)
	}
}
