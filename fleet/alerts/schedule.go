package alerts

import (
	"container/heap"
	"sync"
	"time"
)

// schedule holds the engine's deadlines: every watched unit at most once, at the time its
// rules must next be evaluated. It has its own lock, taken after a unit's and never before, so
// that a unit can be rescheduled while it is held.
type schedule struct {
	mu    sync.Mutex
	units dueHeap
	// wake tells Run that the earliest deadline moved earlier than the one it sleeps until.
	wake chan struct{}
}

func newSchedule() *schedule {
	return &schedule{wake: make(chan struct{}, 1)}
}

// dueBy makes u due at t at the latest: an earlier deadline it has stands.
func (s *schedule) dueBy(u *lockedUnit, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.slot >= 0 && !t.Before(u.due) {
		return
	}
	s.put(u, t)
}

// set makes u due at t exactly, or not at all for a zero t: after an evaluation, whatever was
// due before it has been seen.
func (s *schedule) set(u *lockedUnit, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.IsZero() {
		if u.slot >= 0 {
			heap.Remove(&s.units, u.slot)
		}
		return
	}
	s.put(u, t)
}

// put schedules u at t; the caller holds s.mu.
func (s *schedule) put(u *lockedUnit, t time.Time) {
	u.due = t
	if u.slot >= 0 {
		heap.Fix(&s.units, u.slot)
	} else {
		heap.Push(&s.units, u)
	}
	if u.slot == 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// remove forgets u, a unit no longer watched.
func (s *schedule) remove(u *lockedUnit) { s.set(u, time.Time{}) }

// popDue takes the units due at now out of the schedule and appends them to out.
func (s *schedule) popDue(now time.Time, out []*lockedUnit) []*lockedUnit {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.units) > 0 && !s.units[0].due.After(now) {
		out = append(out, heap.Pop(&s.units).(*lockedUnit))
	}
	return out
}

// next returns the earliest deadline; false when nothing is scheduled.
func (s *schedule) next() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.units) == 0 {
		return time.Time{}, false
	}
	return s.units[0].due, true
}

// dueHeap is a min-heap of units by due time; each unit knows its slot in it (-1: not in it).
type dueHeap []*lockedUnit

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].slot, h[j].slot = i, j
}

func (h *dueHeap) Push(x any) {
	u := x.(*lockedUnit)
	u.slot = len(*h)
	*h = append(*h, u)
}

func (h *dueHeap) Pop() any {
	old := *h
	u := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	u.slot = -1
	return u
}

// earliest returns the earlier of two deadlines, a zero one meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}
