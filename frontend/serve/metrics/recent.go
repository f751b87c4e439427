package metrics

import (
	"sort"
	"sync/atomic"
)

// recentRefusals is how many refusals the status page lists.
const recentRefusals = 50

// recent keeps the last refusals without a lock: a writer takes a number
// and stores its refusal in that slot; a reader keeps the slots whose
// numbers are among the last ones.
type recent struct {
	next  atomic.Uint64
	slots [recentRefusals]atomic.Pointer[refusal]
}

func (r *recent) add(x *refusal) {
	x.seq = r.next.Add(1)
	r.put(x)
}

// put stores x in its slot unless a newer refusal holds it already: a
// goroutine delayed between numbering its refusal and storing it must not
// overwrite the refusal numbered recentRefusals after it.
func (r *recent) put(x *refusal) {
	slot := &r.slots[x.seq%recentRefusals]
	for {
		old := slot.Load()
		if old != nil && old.seq > x.seq || slot.CompareAndSwap(old, x) {
			return
		}
	}
}

// list returns the refusals kept, the newest first.
func (r *recent) list() []*refusal {
	n := r.next.Load()
	var out []*refusal
	for i := range r.slots {
		x := r.slots[i].Load()
		if x != nil && x.seq+recentRefusals > n {
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq > out[j].seq })
	return out
}
