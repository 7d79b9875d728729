package telemetry

import (
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/telemetry/influx"
)

// doorWrites decides which door points a snapshot stores (docs/telemetry.md, "Door state:
// changes and keyframes"): a door whose state differs from the last one stored for it, or
// every door in a keyframe. Door states rarely change, so between keyframes a 16-door bank's
// snapshot stores its temperatures, actuators and unit point and no door at all; any point in
// time still reads as the latest door or door_event point at or before it.
//
// It remembers, per unit, what it last stored. The memory must never claim a state InfluxDB
// will not hold: whatever makes it unsure (a message it cannot order, a failed spool write, a
// changed registry record) forgets the unit, and its next snapshot is a keyframe.
type doorWrites struct {
	interval int64    // keyframe interval in ms of edge time; 0: every snapshot is a keyframe
	units    sync.Map // device id -> *unitDoors
}

// unitDoors is what was stored last for one unit's doors: three bits per door (wire.MaxDoors
// is 64) and two timestamps: with its map entry about 180 bytes, 9 MiB for 50,000 units.
type unitDoors struct {
	mu       sync.Mutex
	dev      *fleet.Device  // the registry record the points were stored under
	known    influx.DoorSet // doors whose state below was stored
	open     influx.DoorSet // of the known doors, the open ones
	locked   influx.DoorSet // of the known doors, the locked ones
	keyframe int64          // edge time of the last keyframe, ms
	latest   int64          // edge time of the newest message decided, ms
	gone     bool           // forgotten: a new unitDoors takes its place
}

func newDoorWrites(interval time.Duration) *doorWrites {
	return &doorWrites{interval: interval.Milliseconds()}
}

// snapshot returns the doors whose points snapshot m of device d stores, and remembers them
// as stored; the caller must forget the unit if they do not reach the spool.
func (w *doorWrites) snapshot(d *fleet.Device, m wire.Telemetry) influx.DoorSet {
	if w.interval == 0 {
		return influx.AllDoors
	}
	u := w.unit(d)
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.gone:
		// Forgotten between the lookup and the lock: a concurrent failure; the next snapshot
		// finds a fresh memory and is a keyframe.
		return influx.AllDoors
	case u.dev != nil && m.TS < u.latest:
		// Older than a message already decided (a resend after a session take-over): its
		// points would stand in for states the newer message did not store. Stored whole, it
		// is right at its own time; forgetting makes the next snapshot right from then on.
		w.forgetLocked(d.ID, u)
		return influx.AllDoors
	case u.dev == nil || u.dev.Registration != d.Registration || u.dev.Site != d.Site || u.dev.Kind != d.Kind ||
		m.TS-u.keyframe >= w.interval:
		u.dev, u.known, u.open, u.locked, u.keyframe = d, 0, 0, 0, m.TS
		for _, s := range m.Doors {
			u.set(s.Door, s.Open, s.Locked)
		}
		u.latest = m.TS
		return influx.AllDoors
	}
	var doors influx.DoorSet
	for _, s := range m.Doors {
		if !u.known.Has(s.Door) || u.open.Has(s.Door) != s.Open || u.locked.Has(s.Door) != s.Locked {
			doors = doors.With(s.Door)
			u.set(s.Door, s.Open, s.Locked)
		}
	}
	u.latest = m.TS
	return doors
}

// event remembers the door state a door event of device d stores, so that the next snapshot
// stores the door only if it differs from the event.
func (w *doorWrites) event(d *fleet.Device, e wire.Event) {
	if w.interval == 0 {
		return
	}
	v, ok := w.units.Load(d.ID)
	if !ok {
		return // the next snapshot is a keyframe anyway
	}
	u := v.(*unitDoors)
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.gone || u.dev == nil:
	case e.TS < u.latest || u.dev.Registration != d.Registration:
		// An event older than a snapshot already decided can hide that snapshot's state of
		// the door from a reader: only a keyframe puts it right.
		w.forgetLocked(d.ID, u)
	default:
		u.set(e.Door, e.Open, e.Locked)
		u.latest = e.TS
	}
}

// forget drops what is remembered of device id: its stored points are in doubt (the spool
// refused or failed them), so its next snapshot is a keyframe.
func (w *doorWrites) forget(id string) {
	if w.interval == 0 {
		return
	}
	if v, ok := w.units.Load(id); ok {
		u := v.(*unitDoors)
		u.mu.Lock()
		w.forgetLocked(id, u)
		u.mu.Unlock()
	}
}

// forgetLocked drops u, the memory of device id, locked by the caller.
func (w *doorWrites) forgetLocked(id string, u *unitDoors) {
	if !u.gone {
		u.gone = true
		w.units.CompareAndDelete(id, u)
	}
}

// keep forgets every unit whose registration is not current[id] (removed, or registered
// again), so that memory follows the registry.
func (w *doorWrites) keep(current map[string]string) {
	w.units.Range(func(k, v any) bool {
		id, u := k.(string), v.(*unitDoors)
		u.mu.Lock()
		if reg, ok := current[id]; !ok || u.dev == nil || reg != u.dev.Registration {
			w.forgetLocked(id, u)
		}
		u.mu.Unlock()
		return true
	})
}

// unit returns the memory of device d, made empty on first use.
func (w *doorWrites) unit(d *fleet.Device) *unitDoors {
	if v, ok := w.units.Load(d.ID); ok {
		return v.(*unitDoors)
	}
	v, _ := w.units.LoadOrStore(d.ID, &unitDoors{})
	return v.(*unitDoors)
}

// set remembers door's state as stored.
func (u *unitDoors) set(door int, open, locked bool) {
	bit := influx.DoorSet(0).With(door)
	u.known |= bit
	u.open, u.locked = u.open&^bit, u.locked&^bit
	if open {
		u.open |= bit
	}
	if locked {
		u.locked |= bit
	}
}
