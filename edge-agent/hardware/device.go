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

// Access says how a door's opening was let in, as far as the unit's hardware can tell.
type Access string

// The ways a door opens. A driver that cannot tell reports AccessUnknown for every opening, and
// the agent then treats the opening as it always did (remote if an unlock is pending, else
// unattributed); a door forced open is AccessUnknown too.
const (
	AccessUnknown Access = ""        // the hardware cannot tell, or nothing authorized it (forced)
	AccessRemote  Access = "remote"  // the latch was released by Unlock
	AccessKeypad  Access = "keypad"  // a code entered at the unit's own keypad
	AccessKey     Access = "key"     // a mechanical or electronic key
	AccessService Access = "service" // the unit's service mode, used by a technician on site
)

// Local reports whether a is an authorized action at the unit itself (keypad, key, service).
func (a Access) Local() bool {
	return a == AccessKeypad || a == AccessKey || a == AccessService
}

// DoorState is what a door's sensors report.
type DoorState struct {
	Open, Locked bool
	// Opens counts the times the door has opened since the unit started (a door sensor's edge
	// counter, or an interrupt count in a real driver). A poller compares it to notice an
	// opening that began and ended between two polls.
	Opens uint64
	// Via is how the latest opening counted by Opens was let in. It changes only together with
	// Opens, so a poller reads it with the opening it belongs to.
	Via Access
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

// Keypad is implemented by a Device whose unit has a keypad for pickup codes. The agent checks
// each code against the unit's code set itself and releases the door with Unlock, so the
// hardware only reports what was typed.
type Keypad interface {
	// Entries delivers each code as typed at the keypad, unchecked, once the resident confirms
	// it. The channel stays open for the life of the Device.
	Entries() <-chan string
}
