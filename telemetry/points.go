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

// lineBuilder writes line-protocol points for one device.
type lineBuilder struct {
	b    strings.Builder
	tags string // ",device=...,kind=...,site=..." (sorted keys before per-point tags)
	ts   string // timestamp in milliseconds
	n    int    // points written
}

func newLineBuilder(d *fleet.Device, tsMillis int64) *lineBuilder {
	return &lineBuilder{
		tags: ",device=" + tagEscaper.Replace(d.ID) + ",kind=" + tagEscaper.Replace(string(d.Kind)) + ",site=" + tagEscaper.Replace(d.Site),
		ts:   strconv.FormatInt(tsMillis, 10),
	}
}

// point starts a point: measurement, the device tags, then extra tags given as key, value
// pairs with keys in sorted order after "site".
func (l *lineBuilder) point(measurement string, extraTags ...string) *lineBuilder {
	if l.n > 0 {
		l.b.WriteByte('\n')
	}
	l.n++
	l.b.WriteString(measurement)
	l.b.WriteString(l.tags)
	for i := 0; i+1 < len(extraTags); i += 2 {
		l.b.WriteByte(',')
		l.b.WriteString(extraTags[i])
		l.b.WriteByte('=')
		l.b.WriteString(tagEscaper.Replace(extraTags[i+1]))
	}
	l.b.WriteByte(' ')
	return l
}

func (l *lineBuilder) field(first bool, key string, value string) *lineBuilder {
	if !first {
		l.b.WriteByte(',')
	}
	l.b.WriteString(key)
	l.b.WriteByte('=')
	l.b.WriteString(value)
	return l
}

func (l *lineBuilder) end() {
	l.b.WriteByte(' ')
	l.b.WriteString(l.ts)
}

func fbool(v bool) string     { return strconv.FormatBool(v) }
func ffloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
func fint(v uint64) string    { return strconv.FormatUint(v, 10) + "i" }

// telemetryLines encodes a snapshot: one point per door, per temperature sensor, for the
// heater or compressor, and one for the unit itself.
func telemetryLines(d *fleet.Device, t wire.Telemetry) (string, int) {
	l := newLineBuilder(d, t.TS)
	for _, door := range t.Doors {
		n := strconv.Itoa(door.Door)
		l.point(measDoor, "door", n).field(true, "open", fbool(door.Open)).field(false, "locked", fbool(door.Locked)).end()
		if door.TempC != nil {
			l.point(measTemperature, "door", n, "sensor", "compartment").field(true, "celsius", ffloat(*door.TempC)).end()
		}
	}
	for _, s := range []struct {
		name string
		c    *float64
	}{{"ambient", t.AmbientC}, {"enclosure", t.EnclosureC}} {
		if s.c != nil {
			l.point(measTemperature, "sensor", s.name).field(true, "celsius", ffloat(*s.c)).end()
		}
	}
	for _, a := range []struct {
		name string
		th   *wire.Thermal
	}{{"compressor", t.Compressor}, {"heater", t.Heater}} {
		if a.th != nil {
			l.point(measThermal, "actuator", a.name).field(true, "on", fbool(a.th.On)).
				field(false, "setpoint_c", ffloat(a.th.SetpointC)).field(false, "duty", ffloat(a.th.Duty)).end()
		}
	}
	l.point(measUnit).field(true, "seq", fint(t.Seq)).field(false, "outbox_dropped", fint(t.Dropped)).end()
	return l.b.String(), l.n
}

// eventLines encodes a door event.
func eventLines(d *fleet.Device, e wire.Event) (string, int) {
	l := newLineBuilder(d, e.TS)
	cause := string(e.Cause)
	if cause == "" {
		cause = "none"
	}
	l.point(measDoorEvent, "cause", cause, "door", strconv.Itoa(e.Door)).
		field(true, "open", fbool(e.Open)).field(false, "locked", fbool(e.Locked)).field(false, "seq", fint(e.Seq)).end()
	return l.b.String(), l.n
}
