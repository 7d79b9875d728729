package alerts

import "time"

// tracker follows one (rule, door) of one unit through pending -> firing -> resolved. Time is
// accumulated between evaluations according to the state seen at the previous one: a condition
// that became true at this evaluation has held for no time yet.
type tracker struct {
	prev    state
	last    time.Time     // hub time of the previous evaluation
	held    time.Duration // how long the condition has held, suppressed time not counted
	cleared time.Duration // how long the clear condition has held
	firing  bool
	alertID int64   // the open alert in the store; 0 while firing but not stored yet
	shown   float64 // the count the stored alert says, for a rule that counts events
}

// step takes the condition's state at now and says whether the alert fires or resolves. While
// waiting (a pull-down in progress) an active condition is counted but does not fire, so that
// it fires at once when the wait ends. Rules whose condition a person must clear never resolve
// by themselves.
func (t *tracker) step(now time.Time, c cond, r *Rule) (fire, resolve bool) {
	s := c.state
	if !t.last.IsZero() && now.After(t.last) {
		dt := now.Sub(t.last)
		switch {
		case t.prev == active, t.prev == band && !t.firing:
			t.held += dt
		case t.prev == clear:
			t.cleared += dt
		}
	}
	t.last, t.prev = now, s
	switch s {
	case active:
		t.cleared = 0
		if !c.began.IsZero() {
			t.held = max(t.held, now.Sub(c.began))
		}
	case clear:
		t.held = 0
	case band:
		// Inside the hysteresis band a pending alert goes on counting: the condition has not
		// cleared, and a reading that dips just under the threshold must not restart the
		// window. It fires only on a reading that is above it. A firing alert stays, and its
		// clear count starts over.
		t.cleared = 0
	}
	switch {
	case !t.firing && s == active && !c.waiting && t.held >= r.For:
		t.firing = true
		return true, false
	case t.firing && s == clear && t.cleared >= r.ClearFor:
		return false, true
	}
	return false, false
}

// due returns when the tracker's count reaches its rule's window if the condition stays as c
// says: a pending alert fires once it has held for For, a firing one resolves once it has
// cleared for ClearFor. Zero when nothing counts towards either.
func (t *tracker) due(now time.Time, c cond, r *Rule) time.Time {
	switch {
	case !t.firing && c.state == active && !c.waiting:
		return now.Add(r.For - t.held)
	case t.firing && c.state == clear:
		return now.Add(r.ClearFor - t.cleared)
	}
	return time.Time{}
}
