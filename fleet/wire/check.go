package wire

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"
)

// Limits that Validate enforces. They are not exported: peers enforce them
// through Validate, and docs/protocol.md lists them for firmware.
const (
	minTempC, maxTempC         = -100, 150 // any temperature, measured or set
	minSetpointC, maxSetpointC = -40, 40   // what a setpoint command may ask for
	minPulseMS, maxPulseMS     = 100, 30000
	maxIDLen                   = 64
	maxAgentLen                = 64
	maxRemoteLen               = 128 // an IPv6 address with zone and port fits
	maxDetailLen               = 256
	maxKeypadFailures          = 1000 // wrong codes in a row; a device stops counting there
)

// verdict turns the first rule a message of the given kind breaks into the
// error its Validate returns.
func verdict(kind string, err error) error {
	if err == nil {
		return nil
	}
	reason := ReasonInvalid
	if _, ok := err.(versionError); ok {
		reason = ReasonVersion
	}
	return &DecodeError{Kind: kind, Reason: reason, Err: err}
}

// versionError is the schema version a message carries instead of Version.
// It has its own type so that verdict can tell a peer speaking another
// version, which is counted apart, from a broken one.
type versionError int

func (v versionError) Error() string {
	return fmt.Sprintf("v: %d, want %d", int(v), Version)
}

func checkVersion(v int) error {
	if v != Version {
		return versionError(v)
	}
	return nil
}

// checkHeader checks the fields that lead every message a device numbers.
func checkHeader(v int, seq uint64, ts int64) error {
	if err := checkVersion(v); err != nil {
		return err
	}
	if seq == 0 {
		return errors.New("seq: 0 must be >= 1")
	}
	return checkTime("ts", ts)
}

func checkTime(field string, ms int64) error {
	if ms <= 0 {
		return fmt.Errorf("%s: %d must be > 0", field, ms)
	}
	return nil
}

// checkRange is written so that NaN, which compares false with everything,
// is out of range: that is how non-finite numbers are refused.
func checkRange[T int | float64](field string, v, lo, hi T) error {
	if v >= lo && v <= hi {
		return nil
	}
	return fmt.Errorf("%s: %v out of range %v..%v", field, v, lo, hi)
}

func checkDoor(door int) error {
	return checkRange("door", door, 1, MaxDoors)
}

// checkTemp checks an optional temperature.
func checkTemp(field string, c *float64) error {
	if c == nil {
		return nil
	}
	return checkRange(field, *c, minTempC, maxTempC)
}

func checkDoors(doors []DoorState) error {
	if n := len(doors); n < 1 || n > MaxDoors {
		return fmt.Errorf("doors: %d entries, want 1..%d", n, MaxDoors)
	}
	var seen [MaxDoors + 1]bool
	for i, d := range doors {
		if err := cmp.Or(checkDoor(d.Door), checkTemp("temp_c", d.TempC)); err != nil {
			return fmt.Errorf("doors[%d].%w", i, err)
		}
		if seen[d.Door] {
			return fmt.Errorf("doors[%d].door: %d repeated", i, d.Door)
		}
		seen[d.Door] = true
	}
	return nil
}

// checkThermal checks an optional heater or compressor.
func checkThermal(field string, t *Thermal) error {
	if t == nil {
		return nil
	}
	if err := cmp.Or(checkRange("setpoint_c", t.SetpointC, minTempC, maxTempC), checkRange("duty", t.Duty, 0, 1)); err != nil {
		return fmt.Errorf("%s.%w", field, err)
	}
	return nil
}

// checkText checks a free-form string. encoding/json would silently replace
// invalid UTF-8 when encoding, so Marshal must refuse it instead.
func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s: %d bytes, limit %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: not valid UTF-8", field)
	}
	return nil
}

func checkID(id string) error { return checkIdent("id", id) }

// checkIdent checks an identifier of the hub's own making: a command's or a parcel's id.
func checkIdent(field, id string) error {
	if len(id) == 0 || len(id) > maxIDLen {
		return fmt.Errorf("%s: %d bytes, want 1..%d", field, len(id), maxIDLen)
	}
	for _, r := range id {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("%s: %q not allowed, want [A-Za-z0-9_-]", field, r)
		}
	}
	return nil
}

func checkEnum[T ~string](field string, v T, valid ...T) error {
	if slices.Contains(valid, v) {
		return nil
	}
	return badEnum(field, v)
}

func badEnum[T ~string](field string, v T) error {
	if v == "" {
		return fmt.Errorf("%s: missing", field)
	}
	return fmt.Errorf("%s: %q unknown", field, v)
}

// checkParams checks the parameters of c's type. Parameters that the type
// does not take are refused rather than ignored: a device must never act on a
// command that is not exactly what the hub meant.
func (c Command) checkParams() error {
	switch c.Type {
	case CommandUnlock:
		var pulse error
		if c.PulseMS != 0 {
			pulse = checkRange("pulse_ms", c.PulseMS, minPulseMS, maxPulseMS)
		}
		return cmp.Or(checkDoor(c.Door), pulse, c.only("door", "pulse_ms"))
	case CommandLock:
		return cmp.Or(checkDoor(c.Door), c.only("door"))
	case CommandSetpoint:
		if c.SetpointC == nil {
			return errors.New("setpoint_c: missing")
		}
		return cmp.Or(checkEnum("target", c.Target, "heater", "compressor"),
			checkRange("setpoint_c", *c.SetpointC, minSetpointC, maxSetpointC), c.only("target", "setpoint_c"))
	case CommandSnapshot:
		return c.only()
	}
	return badEnum("type", c.Type)
}

// only refuses any parameter set on c other than the allowed ones.
func (c Command) only(allowed ...string) error {
	for _, p := range []struct {
		name string
		set  bool
	}{
		{"door", c.Door != 0},
		{"pulse_ms", c.PulseMS != 0},
		{"target", c.Target != ""},
		{"setpoint_c", c.SetpointC != nil},
	} {
		if p.set && !slices.Contains(allowed, p.name) {
			return fmt.Errorf("%s: not allowed for %s", p.name, c.Type)
		}
	}
	return nil
}

func checkExpiry(issued, expires int64) error {
	if expires <= issued {
		return fmt.Errorf("expires: %d must be after issued %d", expires, issued)
	}
	if ttl := expires - issued; ttl > MaxCommandTTL.Milliseconds() {
		return fmt.Errorf("expires: %d ms after issued, limit %d", ttl, MaxCommandTTL.Milliseconds())
	}
	return nil
}

// checkViaCause refuses a Via on anything but a local action: a keypad cannot open a door
// remotely, and a receiver must not have to decide which of the two to believe.
func checkViaCause(v Via, c Cause) error {
	if v != ViaNone && c != CauseLocal {
		return fmt.Errorf("via %q: only with cause %q", v, CauseLocal)
	}
	return nil
}

func (e Event) checkDoorEvent() error {
	var parcel error
	switch {
	case e.Cause == CauseCode:
		parcel = checkIdent("parcel", e.Parcel)
	case e.Parcel != "":
		parcel = fmt.Errorf("parcel: only with cause %q", CauseCode)
	}
	return cmp.Or(
		checkDoor(e.Door),
		checkEnum("cause", e.Cause, CauseNone, CauseRemote, CauseLocal, CauseCode),
		checkEnum("via", e.Via, ViaNone, ViaKeypad, ViaKey, ViaService),
		checkViaCause(e.Via, e.Cause),
		parcel,
		notFor("keypad", e.Keypad != "", true, EventDoor),
		notFor("failures", e.Failures != 0, true, EventDoor),
		notFor("locked_until", e.LockedUntil != 0, true, EventDoor),
	)
}

// checkKeypadEvent checks an EventKeypad: each result carries exactly the fields that say
// what happened, so that the hub never has to guess which door or parcel an attempt concerns.
func (e Event) checkKeypadEvent() error {
	if e.Open || e.Locked || e.Cause != CauseNone || e.Via != ViaNone {
		return errors.New("keypad: open, locked, cause and via not allowed")
	}
	var door, parcel, failures, until error
	switch e.Keypad {
	case KeypadAccepted:
		door, parcel = checkDoor(e.Door), checkIdent("parcel", e.Parcel)
	case KeypadExpired, KeypadUsed:
		parcel = checkIdent("parcel", e.Parcel)
	case KeypadWrong:
		failures = checkRange("failures", e.Failures, 1, maxKeypadFailures)
	case KeypadLockedOut:
		failures = checkRange("failures", e.Failures, 1, maxKeypadFailures)
		until = checkTime("locked_until", e.LockedUntil)
	default:
		return badEnum("keypad", e.Keypad)
	}
	return cmp.Or(door, parcel, failures, until,
		notFor("door", e.Door != 0, e.Keypad != KeypadAccepted, e.Keypad),
		notFor("parcel", e.Parcel != "", e.Keypad == KeypadWrong || e.Keypad == KeypadLockedOut, e.Keypad),
		notFor("failures", e.Failures != 0, e.Keypad != KeypadWrong && e.Keypad != KeypadLockedOut, e.Keypad),
		notFor("locked_until", e.LockedUntil != 0, e.Keypad != KeypadLockedOut, e.Keypad),
	)
}

// notFor refuses a field that is set where it does not belong.
func notFor[T ~string](field string, set, refused bool, what T) error {
	if set && refused {
		return fmt.Errorf("%s: not allowed for %s", field, what)
	}
	return nil
}
