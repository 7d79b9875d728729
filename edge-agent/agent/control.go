package agent

import (
	"context"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// control is the unit's local loop: it polls the doors and reports every change at once, runs
// the thermostat, and takes the periodic snapshot. It never waits for the hub, so the unit keeps
// its temperature and records its doors through any outage.
func (a *Agent) control(ctx context.Context) {
	now := time.Now()
	var th *thermostat
	switch a.hw.Kind() {
	case hardware.KindFridge:
		th = newThermostat(true, a.cfg.Thermostat.CompressorSetpointC, a.cfg.Thermostat.HysteresisC, now)
	case hardware.KindLockerBank:
		th = newThermostat(false, a.cfg.Thermostat.HeaterSetpointC, a.cfg.Thermostat.HysteresisC, now)
	}
	doors, thermo, telemetry := time.NewTicker(doorPollInterval), time.NewTicker(a.cfg.Thermostat.Period), time.NewTicker(a.cfg.TelemetryInterval)
	defer doors.Stop()
	defer thermo.Stop()
	defer telemetry.Stop()

	var last []hardware.DoorState
	a.regulate(th) // at once: a unit that just booted must not wait a period to start its heater
	for {
		var snapshot chan struct{}
		select {
		case <-ctx.Done():
			return
		case <-doors.C:
			last = a.reportDoors(last)
			continue
		case <-thermo.C:
			a.regulate(th)
			continue
		case <-telemetry.C:
			if a.telemetryPaused.Load() {
				continue
			}
		case snapshot = <-a.snapshots:
		}
		lane := LaneTelemetry
		if snapshot != nil {
			lane = LaneEvents // asked for by a command: sent before its result, never dropped
		}
		if err := a.emitSnapshot(lane, th); err != nil {
			a.log.Error("snapshot", "error", err)
		}
		if snapshot != nil {
			close(snapshot)
		}
	}
}

// regulate runs one thermostat step on the control temperature: the enclosure for a locker
// bank, the warmest compartment for a fridge (the food most at risk decides).
func (a *Agent) regulate(th *thermostat) {
	st, err := a.hw.Read()
	if err != nil {
		a.log.Error("read hardware", "error", err)
		return
	}
	cooling := a.hw.Kind() == hardware.KindFridge
	def := a.cfg.Thermostat.HeaterSetpointC
	if cooling {
		def = a.cfg.Thermostat.CompressorSetpointC
	}
	th.setpoint = a.state.setpoint(cooling, def)
	temp, ok := st.Enclosure.C, st.Enclosure.OK
	if cooling {
		temp, ok = warmest(st.Compartments)
	}
	on := th.decide(time.Now(), temp, ok)
	if cooling {
		err = a.hw.SetCompressor(on)
	} else {
		err = a.hw.SetHeater(on)
	}
	if err != nil {
		a.log.Error("switch thermal actuator", "on", on, "error", err)
	}
}

func warmest(ts []hardware.Temp) (c float64, ok bool) {
	for _, t := range ts {
		if t.OK && (!ok || t.C > c) {
			c, ok = t.C, true
		}
	}
	return c, ok
}

// reportDoors emits an event for every door whose state differs from last and returns the new
// state. The first call only records the state: a snapshot reports where doors stand.
func (a *Agent) reportDoors(last []hardware.DoorState) []hardware.DoorState {
	st, err := a.hw.Read()
	if err != nil {
		a.log.Error("read hardware", "error", err)
		return last
	}
	if last == nil {
		return st.Doors
	}
	for i, d := range st.Doors {
		if d == last[i] {
			continue
		}
		door := i + 1
		if d.Opens > last[i].Opens && !d.Open && !last[i].Open {
			// The door opened and closed again between two polls: report the opening too, or
			// a quick forced entry would leave no trace.
			a.doorEvent(door, hardware.DoorState{Open: true, Via: d.Via}, true)
		}
		a.doorEvent(door, d, d.Open && !last[i].Open)
	}
	return st.Doors
}

// doorEvent emits a door event. An opening is attributed to a pickup code or a remote unlock
// when one is pending for that door, else to the authorized local action the hardware reports
// (keypad, key, service mode); anything else, a forced door or hardware that cannot tell, has no
// cause and is the hub's to judge.
func (a *Agent) doorEvent(door int, d hardware.DoorState, opening bool) {
	ev := wire.Event{Kind: wire.EventDoor, Door: door, Open: d.Open, Locked: d.Locked}
	if opening {
		if ev.Parcel = a.openedByCode(door); ev.Parcel != "" {
			ev.Cause = wire.CauseCode
		} else if a.openedByRemoteUnlock(door) {
			ev.Cause = wire.CauseRemote
		} else if d.Via.Local() {
			ev.Cause, ev.Via = wire.CauseLocal, wire.Via(d.Via) // hardware.Access and wire.Via share their local names
		}
	}
	a.emitEvent(ev)
}

// emitEvent numbers ev and puts it in the outbox.
func (a *Agent) emitEvent(ev wire.Event) {
	err := a.emit(LaneEvents, wire.ChannelEvents, func(seq uint64, ts int64) wire.Message {
		ev.V, ev.Seq, ev.TS = wire.Version, seq, ts
		return ev
	})
	if err != nil {
		a.log.Error("emit event", "kind", ev.Kind, "door", ev.Door, "error", err)
	}
}

func (a *Agent) openedByRemoteUnlock(door int) bool {
	a.unlockMu.Lock()
	defer a.unlockMu.Unlock()
	return time.Now().Before(a.remoteUnlock[door])
}

// emitSnapshot puts a full telemetry snapshot in the outbox.
func (a *Agent) emitSnapshot(lane Lane, th *thermostat) error {
	st, err := a.hw.Read()
	if err != nil {
		return err
	}
	doors := make([]wire.DoorState, len(st.Doors))
	for i, d := range st.Doors {
		doors[i] = wire.DoorState{Door: i + 1, Open: d.Open, Locked: d.Locked}
		if i < len(st.Compartments) {
			doors[i].TempC = reading(st.Compartments[i])
		}
	}
	// On is what the hardware reads back, not what the thermostat asked for: a relay welded on
	// (or one that failed to pull in) is exactly what the hub's heater rules look for.
	on := st.Heater
	if a.hw.Kind() == hardware.KindFridge {
		on = st.Compressor
	}
	thermal := &wire.Thermal{On: on, SetpointC: th.setpoint, Duty: th.duty(time.Now())}
	return a.emit(lane, wire.ChannelTelemetry, func(seq uint64, ts int64) wire.Message {
		t := wire.Telemetry{V: wire.Version, Seq: seq, TS: ts, Doors: doors,
			AmbientC: reading(st.Ambient), EnclosureC: reading(st.Enclosure), Dropped: a.outbox.TakeDropped(), Codes: a.codes.Version()}
		if a.hw.Kind() == hardware.KindFridge {
			t.Compressor = thermal
		} else {
			t.Heater = thermal
		}
		return t
	})
}

func reading(t hardware.Temp) *float64 {
	if !t.OK {
		return nil
	}
	c := t.C
	return &c
}
