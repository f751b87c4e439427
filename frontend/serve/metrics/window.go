package metrics

import (
	"context"
	"sort"
	"sync/atomic"
	"time"
)

// The status page's windows: a snapshot of every count each minute for
// the last hour and each hour for the last day. The count over a window is
// the count now less the newest snapshot at least that old, or since start
// while serve has run less than that: a window of D covers D to D plus one
// snapshot interval (a minute; an hour for the day). Memory stays bounded:
// minuteSnapshots+hourSnapshots arrays of nCounts numbers.
const (
	minuteSnapshots = 62
	hourSnapshots   = 26
)

type snapshot struct {
	at time.Time
	v  [nCounts]uint64
}

// ring is a fixed number of snapshots, the oldest overwritten.
type ring struct {
	s    []snapshot
	next int // where the next one goes
	n    int // how many there are
}

func newRing(size int) ring { return ring{s: make([]snapshot, size)} }

func (r *ring) push(at time.Time, v *[nCounts]uint64) {
	r.s[r.next].at, r.s[r.next].v = at, *v
	r.next = (r.next + 1) % len(r.s)
	r.n = min(r.n+1, len(r.s))
}

// at returns the i-th snapshot, 0 the oldest.
func (r *ring) at(i int) *snapshot { return &r.s[(r.next-r.n+i+len(r.s))%len(r.s)] }

// base is the newest snapshot taken at or before t, else the oldest.
func (r *ring) base(t time.Time) *snapshot {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).at.After(t) })
	if i == 0 {
		return r.at(0)
	}
	return r.at(i - 1)
}

type windows struct {
	minutes, hours ring
	lastHour       time.Time
}

func (w *windows) init(start time.Time) {
	w.minutes, w.hours = newRing(minuteSnapshots), newRing(hourSnapshots)
	var zero [nCounts]uint64
	w.minutes.push(start, &zero)
	w.hours.push(start, &zero)
	w.lastHour = start
}

// take adds a snapshot of v taken at now (every minute), and an hourly
// one when an hour has passed since the last.
func (w *windows) take(now time.Time, v *[nCounts]uint64) {
	w.minutes.push(now, v)
	if now.Sub(w.lastHour) >= time.Hour {
		w.hours.push(now, v)
		w.lastHour = now
	}
}

// base is the snapshot a window of d ending at now starts from.
func (w *windows) base(now time.Time, d time.Duration) *snapshot {
	if d > time.Hour {
		return w.hours.base(now.Add(-d))
	}
	return w.minutes.base(now.Add(-d))
}

// load reads every count now.
func load(c *[nCounts]atomic.Uint64) *[nCounts]uint64 {
	var v [nCounts]uint64
	for i := range c {
		v[i] = c[i].Load()
	}
	return &v
}

// tick takes the minute's snapshot.
func (m *Metrics) tick(now time.Time) {
	v := load(&m.counts)
	m.mu.Lock()
	m.windows.take(now, v)
	m.mu.Unlock()
}

// Run takes the per-minute snapshots of the status page's windows, and
// counts the greylist store every few minutes, until ctx is done.
func (m *Metrics) Run(ctx context.Context) {
	if m.store != nil {
		go m.store.run(ctx, m.now)
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.tick(m.now())
		}
	}
}

// The page's windows.
var windowSpans = []struct {
	name string
	d    time.Duration
}{{"last minute", time.Minute}, {"last hour", time.Hour}, {"last day", 24 * time.Hour}}

// counted is every count now and over each window, for the page.
type counted struct {
	now   *[nCounts]uint64
	since [3]*[nCounts]uint64 // the bases of windowSpans
}

// over is count i in window w (-1: since start).
func (c counted) over(w, i int) uint64 {
	if w < 0 {
		return c.now[i]
	}
	return c.now[i] - c.since[w][i]
}

func (m *Metrics) counted(now time.Time) counted {
	c := counted{now: load(&m.counts)}
	m.mu.Lock()
	defer m.mu.Unlock()
	for w, s := range windowSpans {
		b := m.windows.base(now, s.d).v // a copy: the ring moves on
		c.since[w] = &b
	}
	return c
}
