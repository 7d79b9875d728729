package influx

// The schema of the points the hub stores, as documented in docs/telemetry.md. The line
// protocol (lines.go) writes with these names and the history and cold-chain queries read with
// them, so that a tag or field renamed on one side cannot leave the other reading nothing.

// Measurements.
const (
	measDoor        = "door"
	measTemperature = "temperature"
	measThermal     = "thermal"
	measUnit        = "unit"
	measDoorEvent   = "door_event"
	measKeypad      = "keypad"
)

// Tag keys. Every point carries the device's tags (device, kind, site, in this order); a
// measurement's own tags follow, sorted, as InfluxDB prefers.
const (
	tagDevice   = "device"
	tagKind     = "kind"
	tagSite     = "site"
	tagActuator = "actuator"
	tagCause    = "cause"
	tagDoor     = "door"
	tagResult   = "result"
	tagSensor   = "sensor"
)

// Values of the sensor, actuator and cause tags.
const (
	sensorCompartment  = "compartment"
	sensorAmbient      = "ambient"
	sensorEnclosure    = "enclosure"
	actuatorCompressor = "compressor"
	actuatorHeater     = "heater"
	causeNone          = "none" // a door event without a cause: tags cannot be empty
)

// Field keys.
const (
	fieldOpen          = "open"
	fieldLocked        = "locked"
	fieldCelsius       = "celsius"
	fieldOn            = "on"
	fieldSetpointC     = "setpoint_c"
	fieldDuty          = "duty"
	fieldSeq           = "seq"
	fieldOutboxDropped = "outbox_dropped"
	fieldParcel        = "parcel"       // door_event (cause code), keypad: the parcel's id
	fieldDoor          = "door"         // keypad: the door an accepted code opened
	fieldFailures      = "failures"     // keypad: wrong codes in a row (wrong, locked-out)
	fieldLockedUntil   = "locked_until" // keypad: end of a lockout, ms since the epoch
)

// series maps a history field (fleet.HistoryFields) to where it is stored; boolean fields
// average as the fraction of true. door_open is read from measDoor and measDoorEvent together
// (history.go).
var series = map[string]struct {
	measurement, field string
	tags               map[string]string
	boolean            bool
}{
	"ambient_c":       {measTemperature, fieldCelsius, map[string]string{tagSensor: sensorAmbient}, false},
	"enclosure_c":     {measTemperature, fieldCelsius, map[string]string{tagSensor: sensorEnclosure}, false},
	"compartment_c":   {measTemperature, fieldCelsius, map[string]string{tagSensor: sensorCompartment}, false},
	"door_open":       {measDoor, fieldOpen, nil, true},
	"heater_on":       {measThermal, fieldOn, map[string]string{tagActuator: actuatorHeater}, true},
	"heater_duty":     {measThermal, fieldDuty, map[string]string{tagActuator: actuatorHeater}, false},
	"compressor_on":   {measThermal, fieldOn, map[string]string{tagActuator: actuatorCompressor}, true},
	"compressor_duty": {measThermal, fieldDuty, map[string]string{tagActuator: actuatorCompressor}, false},
}
