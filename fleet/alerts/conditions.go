package alerts

import (
	"fmt"
	"slices"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// state is what a rule's condition says at one evaluation.
type state int

const (
	// band: neither the condition nor its clear condition holds (inside the hysteresis band,
	// or a condition that only a person clears). A pending alert goes on counting, but fires
	// only on an active reading; a firing one stays.
	band state = iota
	// active: the condition holds.
	active
	// clear: the clear condition holds.
	clear
	// suppressed: the rule cannot judge now (no reading, a door open for a pickup). Nothing
	// is counted and nothing is reset: the count goes on when it ends.
	suppressed
)

// cond is one evaluation of a rule for one scope (the unit, or one door).
type cond struct {
	door    int
	state   state
	summary string   // what a person should read when it fires
	value   *float64 // the reading behind it, if any
	waiting bool     // active, but a pull-down is in progress: counted, not fired
	// began is when an active condition began by the unit's own evidence, if that is earlier
	// than the evaluation that could first tell (a frozen reading began when it was first
	// read, a snapshot before its first repeat); the rule's for counts from then.
	began time.Time
	// next is the earliest time after the evaluation at which the condition could say
	// otherwise without a new message (a silence becomes offline or stale, a pickup's grace
	// or a pull-down ends, a failed unlock ages out of its window); zero for none.
	next time.Time
}

// env is what conditions may look at besides the unit.
type env struct {
	now    time.Time
	online bool
	since  time.Time // when the unit's current connection (or absence) began
	change time.Time // offline: when it began to count as offline
	// judging is when this hub began to judge the units (it started, or started to lead):
	// what happened before, it did not see.
	judging time.Time
	cfg     *Config
	buf     *[]cond // scratch space for conditions, reused across units and evaluations
}

// conditions evaluates rule r on unit u and appends the results to out (a buffer reused across
// units and evaluations: evaluating a healthy unit allocates next to nothing).
func (u *unit) conditions(r *Rule, e env, out []cond) []cond {
	switch r.Kind {
	case KindOffline:
		if e.online {
			return append(out, cond{state: clear}) // its heartbeat deadline is the engine's (Evaluate)
		}
		// Counted from when it began to count as offline, however late the hub looks (a unit
		// whose disconnect nothing told is seen at its heartbeat deadline), but not from
		// before this hub judged the units: a hub that just started to lead gives a unit that
		// was away the whole of the rule's for to come back, as one that just started does.
		began := e.change
		if began.Before(e.judging) {
			began = e.judging
		}
		return append(out, cond{state: active, began: began, summary: "offline since " + e.since.UTC().Format(time.RFC3339)})
	case KindStale:
		return append(out, u.stale(r, e))
	case KindDoorOpen, KindForcedEntry, KindUnlockFailed, KindTempAbove:
		for n := 1; n <= u.dev.Doors; n++ {
			if c, ok := u.doorCondition(r, e, n); ok {
				out = append(out, c)
			}
		}
		return out
	case KindHeaterFailure, KindHeaterStuck, KindCompressorIneffective:
		return append(out, u.thermal(r, e.now))
	case KindSensorImplausible:
		return append(out, u.implausible(r))
	case KindSensorStuck:
		return u.stuck(e, out)
	case KindParcelOverdue, KindPerishableOverdue:
		return u.parcels(r, e, out)
	case KindKeypadLockout:
		return append(out, u.lockout(e))
	case KindSequenceGap:
		if u.lost > 0 {
			// A loss is an event, active at the evaluation that takes it up: the next one,
			// a tick later, starts the count of the time without a new loss.
			return append(out, cond{state: active, next: e.now.Add(e.cfg.Tick),
				summary: fmt.Sprintf("%d readings lost on the way to the hub", u.lost)})
		}
		return append(out, cond{state: clear})
	}
	return out
}

func (u *unit) stale(r *Rule, e env) cond {
	if !e.online {
		return cond{state: suppressed} // the offline rule speaks for a unit that is gone
	}
	interval := u.interval
	limit := time.Duration(r.Intervals * float64(interval))
	last := u.snapAt
	if last.Before(e.since) {
		last = e.since // nothing is due before the connection is a few intervals old
	}
	if silent := e.now.Sub(last); silent > limit {
		return cond{state: active, summary: fmt.Sprintf("no telemetry for %s (expected every %s)", silent.Round(time.Second), interval.Round(time.Second))}
	}
	return cond{state: clear, next: last.Add(limit + time.Nanosecond)}
}

// doorCondition evaluates a door or compartment rule on door n; false when there is nothing
// to say about that door.
func (u *unit) doorCondition(r *Rule, e env, n int) (cond, bool) {
	d := u.doors[n]
	if d == nil {
		return cond{}, false
	}
	c := cond{door: n}
	switch r.Kind {
	case KindDoorOpen:
		if !d.known {
			return c, false
		}
		c.state = clear
		if d.open {
			c.state = active
			c.summary = fmt.Sprintf("door %d open for %s", n, e.now.Sub(d.openedAt).Round(time.Second))
		}
	case KindForcedEntry:
		c.state = band // cleared by a person only
		if d.forced != nil {
			c.state = active
			c.summary = fmt.Sprintf("door %d opened at %s without an unlock command or authorized local action", n,
				time.UnixMilli(d.forced.ts).UTC().Format(time.RFC3339))
			if d.forced.cause != "" {
				c.summary += fmt.Sprintf(" (the unit said %q)", d.forced.cause)
			}
		}
	case KindUnlockFailed:
		c.next = d.failureExpires(e.now, r.Window)
		switch k := d.failuresWithin(e.now, r.Window); {
		case len(d.failures) == 0:
			c.state = clear
		case k >= r.Count:
			c.state, c.value = active, f64(float64(k))
			c.summary = fmt.Sprintf("door %d did not open after %d unlock commands within %s", n, k, r.Window)
		default:
			c.state = band
		}
	case KindTempAbove:
		return u.compartment(r, e, d, n), true
	}
	return c, true
}

// compartment evaluates a temperature rule on the compartment behind door n.
func (u *unit) compartment(r *Rule, e env, d *door, n int) cond {
	c := cond{door: n, state: suppressed}
	t := u.compartmentTemp(n)
	if t == nil {
		return c
	}
	if d.open && e.now.Sub(d.openedAt) < e.cfg.PickupGrace {
		c.next = d.openedAt.Add(e.cfg.PickupGrace)
		return c // a pickup in progress: warm air in is expected
	}
	switch {
	case *t > r.Threshold:
		c.state = active
		c.summary = fmt.Sprintf("compartment %d at %.1f °C, above %.1f °C", n, *t, r.Threshold)
		c.value = t
		c.waiting, c.next = u.pullingDown(n, e.now)
	case *t <= r.ClearThreshold:
		c.state = clear
	default:
		c.state = band
	}
	return c
}

func (u *unit) compartmentTemp(n int) *float64 {
	if u.snap == nil {
		return nil
	}
	for _, d := range u.snap.Doors {
		if d.Door == n {
			return d.TempC
		}
	}
	return nil
}

// thermal evaluates the heater and compressor rules at now. The summary, which only an alert
// that fires or grows reads, is written only while the condition holds: a healthy unit's
// evaluation, which every message causes, formats nothing.
func (u *unit) thermal(r *Rule, now time.Time) cond {
	c := cond{state: suppressed}
	if u.snap == nil {
		return c
	}
	s := u.snap
	switch r.Kind {
	case KindHeaterFailure:
		if s.Heater == nil || s.EnclosureC == nil {
			return c
		}
		t := *s.EnclosureC
		c.state = hysteresis(s.Heater.On && t < r.Threshold, t > r.ClearThreshold)
		if c.state == active {
			c.summary = fmt.Sprintf("enclosure at %.1f °C with the heater on", t)
		}
		c.value = s.EnclosureC
	case KindHeaterStuck:
		if s.Heater == nil || s.EnclosureC == nil {
			return c
		}
		t, sp := *s.EnclosureC, s.Heater.SetpointC
		c.state = hysteresis(s.Heater.On && t > sp+r.Threshold, !s.Heater.On || t < sp+r.ClearThreshold)
		if c.state == active {
			c.summary = fmt.Sprintf("heater on with the enclosure at %.1f °C, setpoint %.1f °C", t, sp)
		}
		c.value = s.EnclosureC
	case KindCompressorIneffective:
		door, t := u.warmestCompartment()
		if s.Compressor == nil || t == nil {
			return c
		}
		c.waiting, c.next = u.pullingDown(door, now) // the warmest is still cooling as a starting unit does
		sp := s.Compressor.SetpointC
		c.state = hysteresis(s.Compressor.Duty >= r.Duty && *t > sp+r.Threshold, *t <= sp+r.ClearThreshold)
		if c.state == active {
			c.summary = fmt.Sprintf("compressor running %.0f%% of the time, warmest compartment %.1f °C, setpoint %.1f °C",
				100*s.Compressor.Duty, *t, sp)
		}
		c.value = t
	}
	return c
}

// warmestCompartment returns the door of the warmest compartment and its reading; nil when no
// compartment has one.
func (u *unit) warmestCompartment() (int, *float64) {
	var door int
	var warmest *float64
	for _, d := range u.snap.Doors {
		if d.TempC != nil && (warmest == nil || *d.TempC > *warmest) {
			door, warmest = d.Door, d.TempC
		}
	}
	return door, warmest
}

// hysteresis turns a condition and its clear condition into a state.
func hysteresis(fire, clearing bool) state {
	switch {
	case fire:
		return active
	case clearing:
		return clear
	}
	return band
}

// implausible names the sensors that give no reading or an impossible one.
func (u *unit) implausible(r *Rule) cond {
	if u.snap == nil {
		return cond{state: suppressed}
	}
	var bad []string
	u.forEachReading(*u.snap, func(name string, v *float64) {
		switch {
		case v == nil:
			bad = append(bad, name+": no reading")
		case *v < r.Min || *v > r.Max:
			bad = append(bad, fmt.Sprintf("%s: %.1f °C outside %.0f..%.0f °C", name, *v, r.Min, r.Max))
		}
	})
	if len(bad) == 0 {
		return cond{state: clear}
	}
	slices.Sort(bad)
	return cond{state: active, summary: "implausible temperature readings: " + joinMax(bad, 4)}
}

// stuck appends a condition for each compartment's sensor (door n) and one for the unit's own
// sensors (door 0: enclosure, ambient), active while the reading is exactly repeated; the
// rule's For is how long that must last.
func (u *unit) stuck(e env, out []cond) []cond {
	if u.dev.Kind == fleet.KindFridge {
		for n := 1; n <= u.dev.Doors; n++ {
			c := cond{door: n, state: clear}
			if s := u.sensors[compartmentName(n)]; s != nil && s.repeated {
				c.state, c.value, c.began = active, f64(s.value), s.since
				c.summary = fmt.Sprintf("compartment %d has read exactly %.2f °C for %s: its sensor is stuck, and its temperature is unknown",
					n, s.value, e.now.Sub(s.since).Round(time.Minute))
			}
			out = append(out, c)
		}
	}
	var names []string
	var began time.Time
	for _, name := range []string{"enclosure", "ambient"} {
		if s := u.sensors[name]; s != nil && s.repeated {
			names = append(names, fmt.Sprintf("%s at exactly %.2f °C for %s", name, s.value, e.now.Sub(s.since).Round(time.Minute)))
			if began.IsZero() || s.since.Before(began) {
				began = s.since
			}
		}
	}
	if len(names) == 0 {
		return append(out, cond{state: clear})
	}
	return append(out, cond{state: active, began: began, summary: "temperature reading not changing at all, the sensor is stuck: " + joinMax(names, 2)})
}

func f64(v float64) *float64 { return &v }

// joinMax joins at most n items and says how many more there are.
func joinMax(items []string, n int) string {
	s := ""
	for i, it := range items {
		if i == n {
			return s + fmt.Sprintf(" and %d more", len(items)-n)
		}
		if i > 0 {
			s += ", "
		}
		s += it
	}
	return s
}
