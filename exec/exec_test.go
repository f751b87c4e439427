package exec

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// socketpair returns the child's end as a file and ours.
func socketpair(t *testing.T) (child, ours *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fds[0]), "child"), os.NewFile(uintptr(fds[1]), "ours")
}

func TestSpawnWaitStatus(t *testing.T) {
	for _, tc := range []struct{ script, want string }{
		{"echo hello; exit 3", "exit status 3"},
		{"kill -9 $$", "signal: killed"},
		{"exit 0", "exit status 0"},
	} {
		child, ours := socketpair(t)
		c, err := Spawn(child, os.Stderr, "/bin/sh", []string{"sh", "-c", tc.script}, []string{"PATH=/bin:/usr/bin"}, nil)
		child.Close()
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.Wait()
		ours.Close()
		if err != nil || st.String() != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.script, st, err, tc.want)
		}
	}
	if _, err := Spawn(os.Stdin, os.Stderr, "/nonexistent/prog", []string{"prog"}, nil, nil); err == nil ||
		!strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing PROGRAM: %v", err)
	}
}

func threads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatal("no Threads: line")
	return 0
}

// Waiting for running children holds no thread each (serve mode would run
// out of threads at a few thousand): while 200 children run and are
// waited for, the process's thread count stays near where it was.
func TestWaitHoldsNoThread(t *testing.T) {
	const n = 200
	before := threads(t)
	var ours []*os.File
	var wg sync.WaitGroup
	statuses := make(chan string, n)
	for i := 0; i < n; i++ {
		child, our := socketpair(t)
		// The child waits for its stdin to close.
		c, err := Spawn(child, os.Stderr, "/bin/sh", []string{"sh", "-c", "read x; exit 7"}, nil, nil)
		child.Close()
		if err != nil {
			t.Fatal(err)
		}
		ours = append(ours, our)
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := c.Wait()
			if err != nil {
				statuses <- err.Error()
				return
			}
			statuses <- st.String()
		}()
	}
	// A thread per waiter would show within this second; none may.
	most := before
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		most = max(most, threads(t))
	}
	for _, f := range ours {
		f.Close()
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != "exit status 7" {
			t.Errorf("a child ended with %q", st)
		}
	}
	if most > before+20 {
		t.Errorf("threads went from %d to %d while %d children were waited for", before, most, n)
	}
}
