package agent

import (
	"context"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// codeUnlock is a door released for a pickup code: an opening before until is the code's.
type codeUnlock struct {
	parcel string
	until  time.Time
}

// applyCodes takes a CodeSet from the hub. The newest set wins, since QoS 1 and a reconnect may
// deliver an older one late; a new one is reported at once in a snapshot, so the hub stops
// resending it.
func (a *Agent) applyCodes(ctx context.Context, payload []byte) {
	set, err := wire.DecodeCodeSet(payload)
	if err != nil {
		a.log.Warn("code set dropped", "error", err)
		return
	}
	if _, ok := a.hw.(hardware.Keypad); !ok {
		a.log.Debug("code set ignored: this unit has no keypad", "version", set.Version)
		return
	}
	held := a.codes.Version()
	applied, err := a.codes.replace(set)
	if err != nil {
		// Applied in memory: the unit checks the new codes now and, should it restart before a
		// save succeeds, the hub resends the set until telemetry reports it.
		a.log.Error("save code set", "version", set.Version, "error", err)
	}
	if !applied {
		a.log.Debug("code set ignored: not newer than the one held", "version", set.Version, "held", held)
		return
	}
	a.log.Info("code set applied", "version", set.Version, "codes", len(set.Codes))
	select {
	case a.snapshots <- make(chan struct{}):
	case <-ctx.Done():
	}
}

// keypadLoop checks the codes typed at the unit's keypad, one at a time.
func (a *Agent) keypadLoop(ctx context.Context, kp hardware.Keypad) {
	for {
		select {
		case <-ctx.Done():
			return
		case entry := <-kp.Entries():
			a.keypadEntry(entry)
		}
	}
}

// keypadEntry acts on one entry and reports it. The code itself is never logged nor sent.
func (a *Agent) keypadEntry(entry string) {
	v, err := a.codes.enter(entry, a.now())
	if err != nil {
		a.log.Error("save keypad state", "error", err)
	}
	if v.ignored {
		a.log.Debug("keypad entry ignored: locked out")
		return
	}
	ev := wire.Event{Kind: wire.EventKeypad, Keypad: v.result, Parcel: v.code.Parcel, Failures: v.failures, LockedUntil: v.lockedUntil}
	if v.result == wire.KeypadAccepted {
		if st, open := a.doorStanding(v.code.Door); open {
			// Nothing to release: the resident has the compartment now, as the sensor says. The
			// door will not open again to confirm it, so the code is used at once and the door
			// reported as open by the code, or the hub would never learn of the pickup.
			a.log.Info("keypad entry", "result", v.result, "parcel", v.code.Parcel, "door", v.code.Door, "already_open", true)
			if err := a.codes.markUsed(v.code.Parcel); err != nil {
				a.log.Error("save used code", "parcel", v.code.Parcel, "error", err)
			}
			ev.Door = v.code.Door
			a.emitEvent(ev)
			a.emitEvent(wire.Event{Kind: wire.EventDoor, Door: v.code.Door, Open: true, Locked: st.Locked, Cause: wire.CauseCode, Parcel: v.code.Parcel})
			return
		}
		if !a.releaseForCode(v.code) {
			return
		}
		ev.Door = v.code.Door
	}
	a.log.Info("keypad entry", "result", v.result, "parcel", v.code.Parcel, "door", ev.Door, "failures", v.failures)
	a.emitEvent(ev)
}

// doorStanding returns what door n's sensors say, and whether it stands open.
func (a *Agent) doorStanding(n int) (hardware.DoorState, bool) {
	st, err := a.hw.Read()
	if err != nil || n < 1 || n > len(st.Doors) {
		return hardware.DoorState{}, false // a failed read leaves the unlock to find out
	}
	return st.Doors[n-1], st.Doors[n-1].Open
}

// releaseForCode unlocks the door of an accepted code and reports whether it did. A code
// entered again while its door is released does nothing new.
func (a *Agent) releaseForCode(c wire.Code) bool {
	window := a.cfg.Unlock.ConfirmWindow
	a.unlockMu.Lock()
	if p, ok := a.codeUnlocks[c.Door]; ok && p.parcel == c.Parcel && time.Now().Before(p.until) {
		a.unlockMu.Unlock()
		a.log.Debug("keypad entry ignored: its door is released already", "parcel", c.Parcel, "door", c.Door)
		return false
	}
	// Registered before the pulse, so that no opening can come before the agent knows whose it is.
	a.codeUnlocks[c.Door] = codeUnlock{parcel: c.Parcel, until: time.Now().Add(window)}
	a.unlockMu.Unlock()
	if err := a.hw.Unlock(c.Door, a.cfg.Unlock.Pulse); err != nil {
		a.unlockMu.Lock()
		delete(a.codeUnlocks, c.Door)
		a.unlockMu.Unlock()
		a.log.Error("unlock for a pickup code", "parcel", c.Parcel, "door", c.Door, "error", err)
		return false
	}
	return true
}

// openedByCode returns the parcel whose code released door, if an opening now is that code's,
// and marks the code used: it is dead once its door is sensor-confirmed open. A door that does
// not open within the window leaves the code live, so the resident may try again.
func (a *Agent) openedByCode(door int) string {
	a.unlockMu.Lock()
	p, ok := a.codeUnlocks[door]
	delete(a.codeUnlocks, door)
	a.unlockMu.Unlock()
	if !ok || !time.Now().Before(p.until) {
		return ""
	}
	if err := a.codes.markUsed(p.parcel); err != nil {
		a.log.Error("save used code", "parcel", p.parcel, "error", err)
	}
	return p.parcel
}
