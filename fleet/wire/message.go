package wire

import (
	"cmp"
	"time"
)

// MaxDoors is the most doors a device has; doors are numbered 1..MaxDoors.
const MaxDoors = 64

// MaxCommandTTL bounds how long a Command stays valid. It also bounds how long
// an agent must remember command IDs to run each command at most once.
const MaxCommandTTL = 10 * time.Minute

// DoorState is one door of a Telemetry snapshot.
type DoorState struct {
	Door   int      `json:"door"` // 1..MaxDoors
	Open   bool     `json:"open"`
	Locked bool     `json:"locked"`
	TempC  *float64 `json:"temp_c,omitempty"` // compartment temperature (fridges); nil = no sensor or sensor failed
}

// Thermal is the state of a heater (locker banks) or compressor (fridges).
type Thermal struct {
	On        bool    `json:"on"`
	SetpointC float64 `json:"setpoint_c"`
	Duty      float64 `json:"duty"` // fraction of the last interval it ran, 0..1
}

// Telemetry is the snapshot a device publishes periodically on
// ChannelTelemetry. Optional sensors are pointers so that a missing or failed
// sensor is distinguishable from a reading of zero.
type Telemetry struct {
	V          int         `json:"v"`
	Seq        uint64      `json:"seq"`
	TS         int64       `json:"ts"`
	Doors      []DoorState `json:"doors"` // 1..MaxDoors entries, each door at most once
	AmbientC   *float64    `json:"ambient_c,omitempty"`
	EnclosureC *float64    `json:"enclosure_c,omitempty"`
	Heater     *Thermal    `json:"heater,omitempty"`
	Compressor *Thermal    `json:"compressor,omitempty"`
	Dropped    uint64      `json:"dropped,omitempty"` // snapshots the agent's outbox dropped since the last message
	Codes      uint64      `json:"codes,omitempty"`   // Version of the CodeSet the device holds; 0 = none yet, or no keypad
}

// Validate reports the first rule of the contract t breaks; see [Message].
func (t Telemetry) Validate() error {
	return verdict("telemetry", cmp.Or(
		checkHeader(t.V, t.Seq, t.TS),
		checkDoors(t.Doors),
		checkTemp("ambient_c", t.AmbientC),
		checkTemp("enclosure_c", t.EnclosureC),
		checkThermal("heater", t.Heater),
		checkThermal("compressor", t.Compressor),
	))
}

// EventKind says what an Event reports.
type EventKind string

// The kinds of Event.
const (
	// EventDoor reports that a door opened, closed, locked or unlocked.
	EventDoor EventKind = "door"
	// EventKeypad reports a code entered at the unit's keypad and what the device did with it
	// (Keypad). It carries no door state: Open and Locked are false, and Door is the door the
	// code opened (KeypadAccepted), else 0.
	EventKeypad EventKind = "keypad"
)

// Cause says why a door changed, when the device knows.
type Cause string

const (
	// CauseNone is a change the device cannot attribute, such as a door
	// being pushed shut.
	CauseNone Cause = ""
	// CauseRemote is a change caused by an unlock or lock Command.
	CauseRemote Cause = "remote"
	// CauseLocal is a change caused by an authorized local action, such as a
	// keypad code the device cannot tie to a parcel.
	CauseLocal Cause = "local"
	// CauseCode is a door opened by a pickup code of the unit's CodeSet: Parcel names the
	// code's parcel. The door's closing after it carries no cause.
	CauseCode Cause = "code"
)

// KeypadResult is what a device did with a code entered at its keypad (an EventKeypad).
type KeypadResult string

// The keypad results.
const (
	// KeypadAccepted: the code is the live code of Parcel; its Door was released. The code is
	// dead from then on, once the door opens (sensor-confirmed).
	KeypadAccepted KeypadResult = "accepted"
	// KeypadWrong: no code of the set, or not a code at all. Failures counts it.
	KeypadWrong KeypadResult = "wrong"
	// KeypadExpired: the code of Parcel, past its expiry. It opened nothing.
	KeypadExpired KeypadResult = "expired"
	// KeypadUsed: the code of Parcel, already used. It opened nothing.
	KeypadUsed KeypadResult = "used"
	// KeypadLockedOut: too many wrong codes in a row; the keypad takes no code until
	// LockedUntil. Sent once, when the lockout starts.
	KeypadLockedOut KeypadResult = "locked-out"
)

// Via says which authorized local action opened a door (an Event with CauseLocal), when the
// device can tell. Optional: a device that only knows "local" omits it.
type Via string

// The local actions.
const (
	ViaNone    Via = ""
	ViaKeypad  Via = "keypad"  // a code at the unit's own keypad
	ViaKey     Via = "key"     // a mechanical or electronic key
	ViaService Via = "service" // the unit's service mode, used by a technician on site
)

// Event is published on ChannelEvents as soon as a door changes, so the hub
// does not have to wait for the next Telemetry snapshot.
type Event struct {
	V      int       `json:"v"`
	Seq    uint64    `json:"seq"`
	TS     int64     `json:"ts"`
	Kind   EventKind `json:"kind"`
	Door   int       `json:"door"`
	Open   bool      `json:"open"`
	Locked bool      `json:"locked"`
	Cause  Cause     `json:"cause,omitempty"`
	Via    Via       `json:"via,omitempty"`    // only with CauseLocal
	Parcel string    `json:"parcel,omitempty"` // CauseCode; EventKeypad: the code's parcel (accepted, expired, used)

	// EventKeypad only.
	Keypad      KeypadResult `json:"keypad,omitempty"`
	Failures    int          `json:"failures,omitempty"`     // wrong codes in a row, this one included (wrong, locked-out)
	LockedUntil int64        `json:"locked_until,omitempty"` // ms (locked-out)
}

// Validate reports the first rule of the contract e breaks; see [Message].
func (e Event) Validate() error {
	var body error
	switch e.Kind {
	case EventDoor:
		body = e.checkDoorEvent()
	case EventKeypad:
		body = e.checkKeypadEvent()
	default:
		body = badEnum("kind", e.Kind)
	}
	return verdict("event", cmp.Or(checkHeader(e.V, e.Seq, e.TS), body))
}

// Status is the retained presence document on ChannelStatus.
type Status struct {
	V      int    `json:"v"`
	TS     int64  `json:"ts"`
	Online bool   `json:"online"`
	Since  int64  `json:"since,omitempty"`  // when the current connection started (online) or ended (offline)
	Remote string `json:"remote,omitempty"` // set by the hub: remote address of the connection
	Agent  string `json:"agent,omitempty"`  // agent version
}

// Validate reports the first rule of the contract s breaks; see [Message].
func (s Status) Validate() error {
	var since error
	if s.Since != 0 { // 0 means unknown: a will is written before its connection ends
		since = checkTime("since", s.Since)
	}
	return verdict("status", cmp.Or(
		checkVersion(s.V),
		checkTime("ts", s.TS),
		since,
		checkText("remote", s.Remote, maxRemoteLen),
		checkText("agent", s.Agent, maxAgentLen),
	))
}

// CommandType says what a Command asks a device to do.
type CommandType string

const (
	// CommandUnlock releases the lock of Door for PulseMS milliseconds, or
	// for the device's default pulse when PulseMS is 0.
	CommandUnlock CommandType = "unlock"
	// CommandLock locks Door.
	CommandLock CommandType = "lock"
	// CommandSetpoint sets the SetpointC of Target, "heater" or "compressor".
	CommandSetpoint CommandType = "setpoint"
	// CommandSnapshot asks for a Telemetry snapshot now.
	CommandSnapshot CommandType = "snapshot"
)

// Command is a request from the hub on ChannelCommand. The device answers
// every command it can identify with a Result carrying the same ID.
type Command struct {
	V         int         `json:"v"`
	ID        string      `json:"id"` // 1..64 characters of [A-Za-z0-9_-]
	Type      CommandType `json:"type"`
	Door      int         `json:"door,omitempty"`       // unlock, lock: 1..MaxDoors
	PulseMS   int         `json:"pulse_ms,omitempty"`   // unlock: 100..30000, 0 = device default
	Target    string      `json:"target,omitempty"`     // setpoint: "heater" or "compressor"
	SetpointC *float64    `json:"setpoint_c,omitempty"` // setpoint: -40..40, required
	Issued    int64       `json:"issued"`
	Expires   int64       `json:"expires"` // after Issued, by at most MaxCommandTTL
}

// Validate reports the first rule of the contract c breaks; see [Message].
// It does not look at the clock; see [Command.Expired].
func (c Command) Validate() error {
	return verdict("command", cmp.Or(
		checkVersion(c.V),
		checkID(c.ID),
		c.checkParams(),
		checkTime("issued", c.Issued),
		checkExpiry(c.Issued, c.Expires),
	))
}

// Expired reports whether c is void at now. A device refuses an expired
// command with OutcomeExpired, so that a command held up in a queue or by a
// reconnect cannot open a door long after someone asked for it.
func (c Command) Expired(now time.Time) bool {
	return now.UnixMilli() >= c.Expires
}

// Outcome is how a command ended.
type Outcome string

const (
	// OutcomeOpened means an unlock command released the door.
	OutcomeOpened Outcome = "opened"
	// OutcomeAlreadyOpen means an unlock command found its door open: there was nothing
	// to release, and the door is as accessible as an unlock would have made it.
	OutcomeAlreadyOpen Outcome = "already-open"
	// OutcomeJammed means the lock did not move as an unlock or lock command
	// asked, for example because the door is blocked.
	OutcomeJammed Outcome = "jammed"
	// OutcomeLocked means a lock command locked the door.
	OutcomeLocked Outcome = "locked"
	// OutcomeOK means a setpoint or snapshot command was carried out.
	OutcomeOK Outcome = "ok"
	// OutcomeExpired means the command arrived after it expired and was not
	// carried out.
	OutcomeExpired Outcome = "expired"
	// OutcomeInvalid means the device refused the command: an unknown door,
	// a bad parameter or a type it does not support.
	OutcomeInvalid Outcome = "invalid"
	// OutcomeFailed means the command was attempted and failed otherwise;
	// Detail says how.
	OutcomeFailed Outcome = "failed"
)

// Result is a device's answer to the Command with the same ID, on
// ChannelResult.
type Result struct {
	V       int     `json:"v"`
	ID      string  `json:"id"`
	Seq     uint64  `json:"seq"`
	TS      int64   `json:"ts"`
	Outcome Outcome `json:"outcome"`
	Detail  string  `json:"detail,omitempty"` // human-readable, at most 256 bytes
}

// Validate reports the first rule of the contract r breaks; see [Message].
func (r Result) Validate() error {
	return verdict("result", cmp.Or(
		checkHeader(r.V, r.Seq, r.TS),
		checkID(r.ID),
		checkEnum("outcome", r.Outcome, OutcomeOpened, OutcomeAlreadyOpen, OutcomeJammed, OutcomeLocked,
			OutcomeOK, OutcomeExpired, OutcomeInvalid, OutcomeFailed),
		checkText("detail", r.Detail, maxDetailLen),
	))
}
