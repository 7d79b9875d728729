package alerts

import (
	"slices"
	"strconv"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// unit is what the engine knows about one device: the part of its live stream the rules need,
// and a tracker per (rule, door). A message only updates it in the publisher's goroutine, so
// that ingesting stays cheap however many rules there are; the rules are evaluated on it
// afterwards, in Run.
type unit struct {
	dev   *fleet.Device
	rules []*Rule // the configured rules that apply to dev

	snap     *wire.Telemetry  // newest snapshot by edge time
	snapAt   time.Time        // hub time it arrived
	interval time.Duration    // the unit's snapshot interval as observed
	gaps     [5]time.Duration // the last gaps between snapshots, a ring
	ngaps    int              // how many gaps were seen
	doors    map[int]*door
	sensors  map[string]*sensor // by sensor name: "enclosure", "ambient", "compartment-3"
	lost     uint64             // telemetry lost since the last evaluation
	custody  *custody           // parcels inside and keypad lockouts; nil while it has none

	pulldown    Pulldown  // of the unit's class; zero for a locker bank
	connSince   time.Time // start of the connection the engine last saw
	pulldownDue bool      // the unit came online: its next snapshot starts a pull-down

	trackers map[trackerKey]*tracker
}

type trackerKey struct {
	rule string
	door int
}

// door is one door's state and the events its rules look at.
type door struct {
	known    bool
	open     bool
	locked   bool
	ts       int64     // edge time of the state
	openedAt time.Time // hub time it was last seen opening
	openings []opening // openings not yet checked against unlock commands
	unlocks  []time.Time
	failures []time.Time // unlock commands that ended jammed or failed, since it last opened
	forced   *opening    // the unauthorized opening behind a forced-entry alert
	pd       pulldown    // of the compartment behind the door
}

// pulldown follows one compartment cooling from room temperature (see Pulldown).
type pulldown struct {
	start   time.Time // hub time it began; zero for none
	checkAt time.Time // hub time of the last reading its cooling was measured from
	checkC  float64   // that reading
	over    bool      // it stopped cooling
}

// pulldownWindow is how long cooling is measured over: the compressor takes a few minutes to
// bite, and a reading's noise is a tenth of a degree, so shorter would call a fridge that is
// starting up one that does not cool.
const pulldownWindow = 15 * time.Minute

// pulldownNoise is how far above the reading cooling is measured from a compartment may read
// before it is warming: then its pull-down is over at once, without waiting for the window.
const pulldownNoise = 0.5 // °C

// opening is a door opening as the unit reported it.
type opening struct {
	at    time.Time // hub time the event arrived
	ts    int64     // edge time
	cause wire.Cause
}

// sensor follows one temperature sensor for the stuck-sensor rule.
type sensor struct {
	value    float64
	since    time.Time // hub time value was first read
	repeated bool      // a later snapshot read exactly value again
}

// Bounds on per-door memory: a door that is hammered with unlocks keeps only its latest.
const (
	maxUnlocks  = 32
	maxFailures = 32
)

func newUnit(d *fleet.Device, cfg *Config) *unit {
	u := &unit{interval: cfg.TelemetryInterval, doors: make(map[int]*door), sensors: make(map[string]*sensor), trackers: make(map[trackerKey]*tracker)}
	u.setDevice(d, cfg)
	return u
}

// setDevice applies registry attributes: which rules apply may change with the kind or labels.
func (u *unit) setDevice(d *fleet.Device, cfg *Config) {
	u.dev = d
	u.pulldown = Pulldown{}
	if d.Kind == fleet.KindFridge {
		u.pulldown = cfg.Pulldown.Of(fleet.ClassOf(d))
	}
	u.rules = u.rules[:0]
	for i := range cfg.Rules {
		if cfg.Rules[i].AppliesTo(d) {
			u.rules = append(u.rules, &cfg.Rules[i])
		}
	}
}

func (u *unit) door(n int) *door {
	d := u.doors[n]
	if d == nil {
		d = &door{}
		u.doors[n] = d
	}
	return d
}

// observe takes one stored message at hub time now.
func (u *unit) observe(msg wire.Message, lost uint64, now time.Time) {
	u.lost += lost
	switch m := msg.(type) {
	case wire.Telemetry:
		u.lost += m.Dropped
		if u.snap != nil && m.TS < u.snap.TS {
			return // a replayed old snapshot: the state is newer already
		}
		if u.snap != nil {
			if gap := time.Duration(m.TS-u.snap.TS) * time.Millisecond; gap > 0 && gap < time.Hour {
				u.learnInterval(gap)
			}
		}
		u.followPulldown(m, now)
		u.snap, u.snapAt = &m, now
		for _, ds := range m.Doors {
			u.door(ds.Door).set(ds.Open, ds.Locked, m.TS, now)
		}
		u.trackSensors(m, now)
	case wire.Event:
		if m.Kind == wire.EventKeypad {
			u.keypad(m, now) // a code entered: no door changed
			return
		}
		d := u.door(m.Door)
		if m.Open && (!d.known || !d.open || m.TS < d.ts) {
			// Every opening is checked, replayed ones too: a door forced while the unit was
			// offline is reported late but is still a forced door.
			d.openings = append(d.openings, opening{at: now, ts: m.TS, cause: m.Cause})
		}
		d.set(m.Open, m.Locked, m.TS, now)
	}
}

// followPulldown starts a pull-down of every compartment when the unit came online or its
// compressor started (unless one began less than Max ago: a compressor that keeps restarting
// must not keep its unit waiting), and measures how each in progress cools. It runs on each
// snapshot: the cost follows the messages.
func (u *unit) followPulldown(m wire.Telemetry, now time.Time) {
	p := u.pulldown
	if p.Max <= 0 {
		return
	}
	if u.pulldownDue {
		u.pulldownDue = false
		u.startPulldown(m, now, true)
		return
	}
	if u.snap != nil && m.Compressor != nil && m.Compressor.On && (u.snap.Compressor == nil || !u.snap.Compressor.On) {
		u.startPulldown(m, now, false)
	}
	for _, ds := range m.Doors {
		if ds.TempC == nil {
			continue
		}
		t, pd := *ds.TempC, &u.door(ds.Door).pd
		switch {
		case !pd.active(now, p.Max) || pd.start.Equal(now):
		case t > pd.checkC+pulldownNoise:
			pd.over = true
		case now.Sub(pd.checkAt) < pulldownWindow:
		case t <= pd.checkC-p.Rate*now.Sub(pd.checkAt).Hours():
			pd.checkAt, pd.checkC = now, t
		default:
			pd.over = true
		}
	}
}

// startPulldown starts a pull-down of every compartment m has a reading of, at now; unless
// force, not of one whose last pull-down began less than Max ago.
func (u *unit) startPulldown(m wire.Telemetry, now time.Time, force bool) {
	for _, ds := range m.Doors {
		if pd := &u.door(ds.Door).pd; ds.TempC != nil && (force || pd.start.IsZero() || now.Sub(pd.start) >= u.pulldown.Max) {
			*pd = pulldown{start: now, checkAt: now, checkC: *ds.TempC}
		}
	}
}

// active reports whether the pull-down is in progress at now: begun, still cooling, and
// begun less than max ago.
func (pd *pulldown) active(now time.Time, max time.Duration) bool {
	return !pd.start.IsZero() && !pd.over && now.Sub(pd.start) < max
}

// pullingDown reports whether the compartment behind door n is in a pull-down at now, and if
// so when it ends at the latest.
func (u *unit) pullingDown(n int, now time.Time) (bool, time.Time) {
	d := u.doors[n]
	if d == nil || !d.pd.active(now, u.pulldown.Max) {
		return false, time.Time{}
	}
	return true, d.pd.start.Add(u.pulldown.Max)
}

// set records a door's state if it is newer than what is known.
func (d *door) set(open, locked bool, ts int64, now time.Time) {
	if d.known && ts < d.ts {
		return
	}
	if open && (!d.known || !d.open) {
		d.openedAt = now
	}
	d.known, d.open, d.locked, d.ts = true, open, locked, ts
}

// learnInterval follows the unit's snapshot interval: the median of the last gaps between its
// snapshots, from the third gap on (the configured interval until then). Snapshots sent at
// once for a door change or a command come closer together than the unit's interval, and
// dropped ones further apart; the median ignores a few of either, and a unit's own interval
// replaces the configured guess within a few snapshots.
func (u *unit) learnInterval(gap time.Duration) {
	u.gaps[u.ngaps%len(u.gaps)] = gap
	u.ngaps++
	if u.ngaps < 3 {
		return
	}
	recent := u.gaps
	n := min(u.ngaps, len(recent))
	slices.Sort(recent[:n])
	u.interval = recent[n/2]
}

// trackSensors notes which readings changed, for the stuck-sensor rule. A real sensor is
// noisy: its reading moves by a hundredth of a degree from one snapshot to the next. One that
// reads exactly the same value again and again has stopped measuring, and the thermostat
// controlling on it no longer switches, so the reading itself is the only sign.
func (u *unit) trackSensors(m wire.Telemetry, now time.Time) {
	u.forEachReading(m, func(name string, v *float64) {
		if v == nil {
			delete(u.sensors, name)
			return
		}
		if s := u.sensors[name]; s != nil && s.value == *v {
			s.repeated = true
			return
		}
		u.sensors[name] = &sensor{value: *v, since: now}
	})
}

// forEachReading calls fn for every temperature sensor a snapshot has or should have: the
// enclosure of a locker bank and every compartment of a fridge even when they gave no reading,
// the ambient sensor when it did.
func (u *unit) forEachReading(m wire.Telemetry, fn func(name string, v *float64)) {
	if m.AmbientC != nil {
		fn("ambient", m.AmbientC)
	}
	switch u.dev.Kind {
	case fleet.KindLockerBank:
		fn("enclosure", m.EnclosureC)
	case fleet.KindFridge:
		for _, d := range m.Doors {
			fn(compartmentName(d.Door), d.TempC)
		}
	}
}

func compartmentName(door int) string { return "compartment " + strconv.Itoa(door) }

// authorize decides every pending opening: authorized when the unit reports an authorized
// local action or a parcel's pickup code (however late the event arrives: a pickup made while
// the unit was offline comes from its outbox), or when an unlock command for the door went out
// at most window before the opening arrived. An opening cannot be authorized by a command sent
// after it, and each unlock authorizes one opening: a door forced right after a courier's
// delivery is still forced.
func (d *door) authorize(window time.Duration) {
	for _, o := range d.openings {
		ok := o.cause == wire.CauseLocal || o.cause == wire.CauseCode
		if !ok {
			for i, t := range d.unlocks {
				if !o.at.Before(t) && o.at.Sub(t) <= window {
					d.unlocks = slices.Delete(d.unlocks, i, i+1)
					ok = true
					break
				}
			}
		}
		switch {
		case !ok && d.forced == nil:
			d.forced = &o
		case ok:
			d.failures = nil // the door opens again: whatever jammed it is gone
		}
	}
	d.openings = d.openings[:0]
}

// prune forgets unlock commands too old to authorize anything.
func (d *door) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(d.unlocks) && now.Sub(d.unlocks[i]) > window {
		i++
	}
	d.unlocks = d.unlocks[i:]
}

// failuresWithin counts failed unlocks within window before now.
func (d *door) failuresWithin(now time.Time, window time.Duration) int {
	n := 0
	for _, t := range d.failures {
		if now.Sub(t) <= window {
			n++
		}
	}
	return n
}

// failureExpires returns when the oldest failed unlock still within window before now leaves
// it; zero if none is.
func (d *door) failureExpires(now time.Time, window time.Duration) time.Time {
	var first time.Time
	for _, t := range d.failures {
		if now.Sub(t) <= window {
			first = earliest(first, t.Add(window+time.Nanosecond))
		}
	}
	return first
}

// appendBounded appends t, keeping at most max entries.
func appendBounded(s []time.Time, t time.Time, max int) []time.Time {
	if len(s) >= max {
		s = append(s[:0], s[len(s)-max+1:]...)
	}
	return append(s, t)
}
