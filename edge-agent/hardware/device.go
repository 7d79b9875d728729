package hardware

import (
	"errors"
	"time"
)

// Kind is the kind of unit.
type Kind string

// The kinds of unit.
const (
	KindLockerBank Kind = "locker-bank" // heater keeps electronics and lock solenoids above freezing; no compartment temps
	KindFridge     Kind = "fridge"      // compressor keeps every compartment cold; one temperature per compartment (door)
)

// Errors a Device returns, possibly wrapped; test with errors.Is.
var (
	ErrNoSuchDoor  = errors.New("hardware: no such door")
	ErrUnsupported = errors.New("hardware: not supported by this unit") // e.g. SetHeater on a fridge
)

// Temp is one temperature sensor reading. OK is false when the sensor is missing or has failed
// (no reading).
type Temp struct {
	C  float64
	OK bool
}

// DoorState is what a door's sensors report.
type DoorState struct {
	Open, Locked bool
	// Opens counts the times the door has opened since the unit started (a door sensor's edge
	// counter, or an interrupt count in a real driver). A poller compares it to notice an
	// opening that began and ended between two polls.
	Opens uint64
}

// State is everything the sensors report at one moment.
type State struct {
	Doors        []DoorState // Doors[i] is door i+1
	Compartments []Temp      // fridges: Compartments[i] is compartment (door) i+1; nil for locker banks
	Ambient      Temp        // outside air
	Enclosure    Temp        // locker banks: inside the enclosure; OK=false for fridges
	Heater       bool        // heater energised (locker banks)
	Compressor   bool        // compressor energised (fridges)
}

// Device is the hardware of one unit. Implementations are safe for concurrent use.
type Device interface {
	Kind() Kind
	Doors() int
	Read() (State, error)
	// Unlock energises door n's lock for pulse: the latch is released for the pulse, and if the
	// door is opened meanwhile it stays unlocked until the door closes again, when it re-latches.
	// ErrNoSuchDoor for a bad n.
	Unlock(n int, pulse time.Duration) error
	// Lock re-engages door n's latch at once (a closed door becomes locked; an open one latches
	// when it closes).
	Lock(n int) error
	SetHeater(on bool) error     // ErrUnsupported on fridges
	SetCompressor(on bool) error // ErrUnsupported on locker banks
}
