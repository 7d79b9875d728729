package hardware

import "time"

// door is one simulated door: its latch and sensor, the person it may be expecting, and its
// faults. Its events (the end of an unlock pulse, the person opening, the person closing) are
// kept as instants so the simulator can step the physics to exactly when they happen.
type door struct {
	open    bool
	latched bool          // the bolt is out: a closed door is locked, an open one locks when it closes
	release time.Time     // when the current unlock pulse ends and the latch re-engages; zero if none
	openAt  time.Time     // when the person let in by an unlock tries the door; zero if nobody is coming
	hold    time.Duration // how long that person will keep the door open
	closeAt time.Time     // when the person holding the door open closes it; zero if nobody holds it
	unlocks int
	opens   uint64
	via     Access // how the latest opening was let in

	jammed, ajar, forced bool
}

func (d *door) state() DoorState {
	return DoorState{Open: d.open, Locked: d.latched && !d.open, Opens: d.opens, Via: d.via}
}

// unlock energises the lock for pulse and sends a person who arrives after delay and holds the
// door open for hold. A jammed latch stays engaged, so the person finds the door locked.
func (d *door) unlock(now time.Time, pulse, delay, hold time.Duration) {
	d.unlocks++
	if !d.jammed {
		d.latched = false
		if end := now.Add(pulse); end.After(d.release) {
			d.release = end
		}
	}
	if !d.open {
		d.openAt, d.hold = now.Add(delay), hold
	}
}

func (d *door) lock() {
	d.latched, d.release = true, time.Time{}
}

func (d *door) openByHand(now time.Time, hold time.Duration, via Access) {
	if !d.open {
		d.opened(via)
		d.closeAt = now.Add(hold)
	}
}

// opened swings the door open and counts it, as the sensor's edge counter does, noting how it
// was let in.
func (d *door) opened(via Access) {
	d.open = true
	d.opens++
	d.via = via
}

// setFault turns one of the per-door faults on or off.
func (d *door) setFault(f Fault, on bool) {
	switch f {
	case FaultJammed:
		d.jammed = on
	case FaultAjar:
		d.ajar = on // when cleared, a person who should already have closed the door does so at once
	case FaultForced:
		if on {
			if !d.open {
				d.opened(AccessUnknown)
			}
			d.openAt, d.closeAt = time.Time{}, time.Time{}
		} else if d.forced {
			d.open, d.latched = false, true // whoever forced it is gone: the door is shut and latches
		}
		d.forced = on
	}
}

// next returns when the door's next event happens, if any. A person holding an ajar door open
// has no event: they never close it.
func (d *door) next() (time.Time, bool) {
	closeAt := d.closeAt
	if d.ajar {
		closeAt = time.Time{}
	}
	var at time.Time
	for _, t := range [...]time.Time{d.release, d.openAt, closeAt} {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	return at, !at.IsZero()
}

// settle applies, in order, every event due at or before t.
func (d *door) settle(t time.Time) {
	for {
		at, ok := d.next()
		switch {
		case !ok || at.After(t):
			return
		case d.release.Equal(at): // first on a tie: a person arriving as the pulse ends finds it locked
			d.latched, d.release = true, time.Time{}
		case d.openAt.Equal(at):
			d.openAt = time.Time{}
			if !d.open && !d.latched { // finding the door locked, the person gives up
				d.opened(AccessRemote)
				d.closeAt = at.Add(d.hold)
			}
		default: // the person closes the door, which latches
			d.open, d.latched, d.closeAt = false, true, time.Time{}
		}
	}
}
