package greylist

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Holder is a process that holds the lock of a Bolt file.
type Holder struct {
	PID       int
	Exclusive bool   // the writer's lock (a KeepOpen store holds it for its life)
	Command   string // its command line, as /proc tells it (empty if hidden)
}

func (h Holder) String() string {
	if h.Command == "" {
		return fmt.Sprintf("process %d", h.PID)
	}
	return fmt.Sprintf("process %d (%s)", h.PID, h.Command)
}

// LockHolders returns the processes that hold the flock(2) lock of the
// file at path now, as Linux's /proc/locks tells them (processes of
// another PID namespace are not seen). It never fails: nil means none
// seen.
func LockHolders(path string) []Holder {
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return nil
	}
	defer f.Close()
	// "1: FLOCK  ADVISORY  WRITE 1234 fe:00:9995194 0 EOF"; a waiter's
	// line has "->" after the number.
	dev := fmt.Sprintf("%02x:%02x:%d", major(uint64(st.Dev)), minor(uint64(st.Dev)), st.Ino)
	var out []Holder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[1] != "FLOCK" || fs[5] != dev {
			continue
		}
		pid, err := strconv.Atoi(fs[4])
		if err != nil {
			continue
		}
		out = append(out, Holder{PID: pid, Exclusive: fs[3] == "WRITE", Command: cmdline(pid)})
	}
	return out
}

func major(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func minor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }

// cmdline is a process's command line, printable and bounded.
func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	s := strings.TrimRight(string(b), "\x00")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == 0:
			return ' '
		case r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
