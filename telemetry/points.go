package telemetry

import (
	"strconv"
	"strings"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// Measurements, as documented in docs/telemetry.md.
const (
	measDoor        = "door"
	measTemperature = "temperature"
	measThermal     = "thermal"
	measUnit        = "unit"
	measDoorEvent   = "door_event"
)

// tagEscaper escapes what line protocol treats specially in tag keys and values. Our tag values
// are validated ids and fixed words, so this is defence in depth.
var tagEscaper = strings.NewReplacer(`,`, `\,`, ` `, `\ `, `=`, `\=`)

// lineBuilder writes line-protocol points for one device. It appends to one buffer sized for
// a typical snapshot: this runs for every message the hub takes in.
type lineBuilder struct {
	b    []byte
	tags string // ",device=...,kind=...,site=..." (sorted keys before per-point tags)
	ts   int64  // timestamp in milliseconds
	n    int    // points written
}

func newLineBuilder(d *fleet.Device, tsMillis int64, points int) *lineBuilder {
	tags := ",device=" + tagEscaper.Replace(d.ID) + ",kind=" + tagEscaper.Replace(string(d.Kind)) + ",site=" + tagEscaper.Replace(d.Site)
	return &lineBuilder{b: make([]byte, 0, points*(len(tags)+64)), tags: tags, ts: tsMillis}
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

func (l *lineBuilder) end() {
	l.b = strconv.AppendInt(append(l.b, ' '), l.ts, 10)
}

// telemetryLines encodes a snapshot: one point per door, per temperature sensor, for the
// heater or compressor, and one for the unit itself.
func telemetryLines(d *fleet.Device, t wire.Telemetry) ([]byte, int) {
	l := newLineBuilder(d, t.TS, len(t.Doors)+4)
	for _, door := range t.Doors {
		n := strconv.Itoa(door.Door)
		l.point(measDoor, "door", n).bool(true, "open", door.Open).bool(false, "locked", door.Locked).end()
		if door.TempC != nil {
			l.point(measTemperature, "door", n, "sensor", "compartment").float(true, "celsius", *door.TempC).end()
		}
	}
	for _, s := range []struct {
		name string
		c    *float64
	}{{"ambient", t.AmbientC}, {"enclosure", t.EnclosureC}} {
		if s.c != nil {
			l.point(measTemperature, "sensor", s.name).float(true, "celsius", *s.c).end()
		}
	}
	for _, a := range []struct {
		name string
		th   *wire.Thermal
	}{{"compressor", t.Compressor}, {"heater", t.Heater}} {
		if a.th != nil {
			l.point(measThermal, "actuator", a.name).bool(true, "on", a.th.On).
				float(false, "setpoint_c", a.th.SetpointC).float(false, "duty", a.th.Duty).end()
		}
	}
	l.point(measUnit).uint(true, "seq", t.Seq).uint(false, "outbox_dropped", t.Dropped).end()
	return l.b, l.n
}

// eventLines encodes a door event.
func eventLines(d *fleet.Device, e wire.Event) ([]byte, int) {
	l := newLineBuilder(d, e.TS, 1)
	cause := string(e.Cause)
	if cause == "" {
		cause = "none"
	}
	l.point(measDoorEvent, "cause", cause, "door", strconv.Itoa(e.Door)).
		bool(true, "open", e.Open).bool(false, "locked", e.Locked).uint(false, "seq", e.Seq).end()
	return l.b, l.n
}
