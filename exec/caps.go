package exec

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// An unprivileged serve given CAP_SETUID and CAP_SETGID as ambient
// capabilities (systemd's AmbientCapabilities=) starts PROGRAM as another
// user with them. Left alone, PROGRAM would inherit them: capabilities
// survive a change between two non-root users, and ambient ones survive
// exec. So every Spawn of such a process runs on one OS thread whose
// inheritable capabilities, and with them its ambient ones, are dropped
// (capabilities belong to a thread, and a child is forked from the thread
// that asks): its children keep what they need until exec, and PROGRAM
// starts with none.

var spawner struct {
	once sync.Once
	run  chan func()
}

// inheritsCaps reports whether this process would hand capabilities to
// PROGRAM across exec: any in its inheritable or ambient sets.
func inheritsCaps() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		for _, set := range []string{"CapInh:", "CapAmb:"} {
			if v, ok := strings.CutPrefix(line, set); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && n != 0 {
					return true
				}
			}
		}
	}
	return false
}

// onSpawnThread runs fn on the spawning thread, when this process has
// capabilities to keep from PROGRAM; otherwise where it is.
func onSpawnThread(fn func()) {
	spawner.once.Do(func() {
		if !inheritsCaps() {
			return
		}
		spawner.run = make(chan func())
		ready := make(chan struct{})
		go func() {
			runtime.LockOSThread() // for good: this thread is the spawner
			dropInheritable()
			close(ready)
			for f := range spawner.run {
				f()
			}
		}()
		<-ready
	})
	if spawner.run == nil {
		fn()
		return
	}
	done := make(chan struct{})
	spawner.run <- func() { fn(); close(done) }
	<-done
}

// dropInheritable empties the calling thread's inheritable and ambient
// capability sets, keeping its permitted and effective ones.
func dropInheritable() {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) == nil {
		data[0].Inheritable, data[1].Inheritable = 0, 0
		_ = unix.Capset(&hdr, &data[0])
	}
	_ = unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
}
