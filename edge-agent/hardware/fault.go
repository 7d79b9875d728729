package hardware

import (
	"fmt"
	"slices"
)

// Fault is a failure the simulator can inject.
type Fault string

// The faults. Per-door faults take a door number; unit faults apply to the whole unit.
const (
	FaultJammed      Fault = "jammed"       // per door: unlock does not open it (latch stuck); the person gives up
	FaultAjar        Fault = "ajar"         // per door: once opened it is never closed by the person
	FaultForced      Fault = "forced"       // per door: forced open at once with no unlock; shuts and relatches when cleared
	FaultCompressor  Fault = "compressor"   // unit: compressor energised but does not cool
	FaultHeater      Fault = "heater"       // unit: heater energised but does not heat
	FaultHeaterStuck Fault = "heater-stuck" // unit: heater relay welded on, heating whatever SetHeater asks
	FaultStuckSensor Fault = "stuck-sensor" // unit: every temperature reading freezes at its value when set
	FaultDeadSensor  Fault = "dead-sensor"  // unit: every temperature reading is OK=false
)

// SetFault turns a fault on or off; door is 1..Doors for per-door faults and ignored (pass 0)
// for unit faults. It returns an error for an unknown fault, ErrNoSuchDoor for a bad door, and
// ErrUnsupported for a heater fault (failed or stuck) on a fridge or a compressor fault on a
// locker bank. A dead sensor hides a stuck one while both are set.
func (s *Simulator) SetFault(f Fault, door int, on bool) error {
	s.lockAndAdvance()
	defer s.mu.Unlock()
	switch f {
	case FaultJammed, FaultAjar, FaultForced:
		d, err := s.door(door)
		if err != nil {
			return fmt.Errorf("fault %s: %w", f, err)
		}
		d.setFault(f, on)
	case FaultHeater, FaultHeaterStuck, FaultCompressor:
		kind, flag := KindLockerBank, &s.heaterFailed
		switch f {
		case FaultHeaterStuck:
			flag = &s.heaterStuck
		case FaultCompressor:
			kind, flag = KindFridge, &s.compressorFailed
		}
		if s.cfg.Kind != kind {
			return fmt.Errorf("%w: fault %s on a %s", ErrUnsupported, f, s.cfg.Kind)
		}
		*flag = on
	case FaultStuckSensor:
		switch {
		case !on:
			s.frozen = nil
		case s.frozen == nil: // setting it again keeps the values it froze at first
			t := s.sense()
			s.frozen = &t
		}
	case FaultDeadSensor:
		s.dead = on
	default:
		return fmt.Errorf("hardware: unknown fault %q", f)
	}
	return nil
}

// AllFaults lists every fault SetFault knows, for callers that offer them by name.
var AllFaults = []Fault{FaultJammed, FaultAjar, FaultForced, FaultCompressor, FaultHeater, FaultHeaterStuck, FaultStuckSensor, FaultDeadSensor}

// DoorFault reports whether f is a per-door fault, which takes a door number.
func (f Fault) DoorFault() bool { return f == FaultJammed || f == FaultAjar || f == FaultForced }

// Faults returns the active faults, sorted, for logs: unit faults by name ("heater"), door
// faults with their door ("jammed:3").
func (s *Simulator) Faults() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	add := func(on bool, f Fault, door int) {
		switch {
		case !on:
		case door == 0:
			out = append(out, string(f))
		default:
			out = append(out, fmt.Sprintf("%s:%d", f, door))
		}
	}
	add(s.heaterFailed, FaultHeater, 0)
	add(s.heaterStuck, FaultHeaterStuck, 0)
	add(s.compressorFailed, FaultCompressor, 0)
	add(s.frozen != nil, FaultStuckSensor, 0)
	add(s.dead, FaultDeadSensor, 0)
	for i, d := range s.doors {
		add(d.jammed, FaultJammed, i+1)
		add(d.ajar, FaultAjar, i+1)
		add(d.forced, FaultForced, i+1)
	}
	slices.Sort(out)
	return out
}
