package influx

import (
	"strconv"
	"strings"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// tagEscaper escapes what line protocol treats specially in tag keys and values. Our tag values
// are validated ids and fixed words, so this is defence in depth.
var tagEscaper = strings.NewReplacer(`,`, `\,`, ` `, `\ `, `=`, `\=`)

// fieldEscaper escapes what line protocol treats specially inside a string field value.
var fieldEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// lineBuilder writes line-protocol points for one device. It appends to one buffer sized for
// a typical snapshot: this runs for every message the hub takes in.
type lineBuilder struct {
	b    []byte
	tags string // ",device=...,kind=...,site=...": the device's tags, before the point's own
	ts   int64  // timestamp in milliseconds
	n    int    // points written
}

func newLineBuilder(d *fleet.Device, tsMillis int64, points int) lineBuilder {
	tags := "," + tagDevice + "=" + tagEscaper.Replace(d.ID) + "," + tagKind + "=" + tagEscaper.Replace(string(d.Kind)) +
		"," + tagSite + "=" + tagEscaper.Replace(d.Site)
	return lineBuilder{b: make([]byte, 0, points*(len(tags)+64)), tags: tags, ts: tsMillis}
}

// point starts a point: measurement, the device tags, then extra tags given as key, value
// pairs with keys in sorted order after "site".
func (l *lineBuilder) point(measurement string, extraTags ...string) *lineBuilder {
	if l.n > 0 {
		l.b = append(l.b, '\n')
	}
	l.n++
	l.b = append(append(l.b, measurement...), l.tags...)
	for i := 0; i+1 < len(extraTags); i += 2 {
		l.b = append(append(append(append(l.b, ','), extraTags[i]...), '='), tagEscaper.Replace(extraTags[i+1])...)
	}
	l.b = append(l.b, ' ')
	return l
}

// key starts a field: a comma unless it is the first, the key and "=".
func (l *lineBuilder) key(first bool, key string) {
	if !first {
		l.b = append(l.b, ',')
	}
	l.b = append(append(l.b, key...), '=')
}

func (l *lineBuilder) bool(first bool, key string, v bool) *lineBuilder {
	l.key(first, key)
	l.b = strconv.AppendBool(l.b, v)
	return l
}

func (l *lineBuilder) float(first bool, key string, v float64) *lineBuilder {
	l.key(first, key)
	l.b = strconv.AppendFloat(l.b, v, 'f', -1, 64)
	return l
}

func (l *lineBuilder) uint(first bool, key string, v uint64) *lineBuilder {
	l.key(first, key)
	l.b = append(strconv.AppendUint(l.b, v, 10), 'i')
	return l
}

func (l *lineBuilder) int(first bool, key string, v int64) *lineBuilder {
	l.key(first, key)
	l.b = append(strconv.AppendInt(l.b, v, 10), 'i')
	return l
}

// str writes a string field. Our string values are validated ids, so escaping is defence in
// depth, as for tags.
func (l *lineBuilder) str(first bool, key, v string) *lineBuilder {
	l.key(first, key)
	l.b = append(append(append(l.b, '"'), fieldEscaper.Replace(v)...), '"')
	return l
}

func (l *lineBuilder) end() {
	l.b = strconv.AppendInt(append(l.b, ' '), l.ts, 10)
}

// DoorSet is a set of door numbers, 1..wire.MaxDoors, one bit each.
type DoorSet uint64

// AllDoors holds every door.
const AllDoors = ^DoorSet(0)

// With returns s with door added.
func (s DoorSet) With(door int) DoorSet { return s | 1<<(door-1) }

// Has reports whether door is in s.
func (s DoorSet) Has(door int) bool { return s&(1<<(door-1)) != 0 }

// TelemetryLines encodes a snapshot of device d as line protocol with millisecond timestamps:
// one point per temperature sensor, for the heater or compressor, one for the unit itself, and
// a door point for each of the snapshot's doors in doors (the door state the caller decided to
// store; see docs/telemetry.md). It returns the lines, separated by newlines, and their number.
func TelemetryLines(d *fleet.Device, t wire.Telemetry, doors DoorSet) ([]byte, int) {
	points := 4 // at most two sensors, an actuator and the unit
	for _, door := range t.Doors {
		if doors.Has(door.Door) {
			points++
		}
		if door.TempC != nil {
			points++
		}
	}
	// Sized for what is written: between keyframes, a bank's snapshot has few door points.
	l := newLineBuilder(d, t.TS, points)
	for _, door := range t.Doors {
		n := strconv.Itoa(door.Door)
		if doors.Has(door.Door) {
			l.point(measDoor, tagDoor, n).bool(true, fieldOpen, door.Open).bool(false, fieldLocked, door.Locked).end()
		}
		if door.TempC != nil {
			l.point(measTemperature, tagDoor, n, tagSensor, sensorCompartment).float(true, fieldCelsius, *door.TempC).end()
		}
	}
	for _, s := range []struct {
		name string
		c    *float64
	}{{sensorAmbient, t.AmbientC}, {sensorEnclosure, t.EnclosureC}} {
		if s.c != nil {
			l.point(measTemperature, tagSensor, s.name).float(true, fieldCelsius, *s.c).end()
		}
	}
	for _, a := range []struct {
		name string
		th   *wire.Thermal
	}{{actuatorCompressor, t.Compressor}, {actuatorHeater, t.Heater}} {
		if a.th != nil {
			l.point(measThermal, tagActuator, a.name).bool(true, fieldOn, a.th.On).
				float(false, fieldSetpointC, a.th.SetpointC).float(false, fieldDuty, a.th.Duty).end()
		}
	}
	l.point(measUnit).uint(true, fieldSeq, t.Seq).uint(false, fieldOutboxDropped, t.Dropped).end()
	return l.b, l.n
}

// EventLines encodes an event of device d as one line of line protocol, like TelemetryLines:
// a door event as a door_event point (with the parcel of a door a pickup code opened), a
// keypad event as a keypad point, which carries no door state.
func EventLines(d *fleet.Device, e wire.Event) ([]byte, int) {
	l := newLineBuilder(d, e.TS, 1)
	if e.Kind == wire.EventKeypad {
		l.point(measKeypad, tagResult, string(e.Keypad)).uint(true, fieldSeq, e.Seq)
		if e.Door != 0 {
			l.int(false, fieldDoor, int64(e.Door))
		}
		if e.Parcel != "" {
			l.str(false, fieldParcel, e.Parcel)
		}
		if e.Failures != 0 {
			l.int(false, fieldFailures, int64(e.Failures))
		}
		if e.LockedUntil != 0 {
			l.int(false, fieldLockedUntil, e.LockedUntil)
		}
		l.end()
		return l.b, l.n
	}
	cause := string(e.Cause)
	if cause == "" {
		cause = causeNone
	}
	l.point(measDoorEvent, tagCause, cause, tagDoor, strconv.Itoa(e.Door)).
		bool(true, fieldOpen, e.Open).bool(false, fieldLocked, e.Locked).uint(false, fieldSeq, e.Seq)
	if e.Parcel != "" {
		l.str(false, fieldParcel, e.Parcel)
	}
	l.end()
	return l.b, l.n
}
