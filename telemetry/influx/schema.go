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
)

// series maps a history field (fleet.HistoryFields) to where it is stored.
var series = map[string]struct {
	measurement, field string
	tags               map[string]string
}{
	"ambient_c":       {measTemperature, fieldCelsius, map[string]string{tagSensor: sensorAmbient}},
	"enclosure_c":     {measTemperature, fieldCelsius, map[string]string{tagSensor: sensorEnclosure}},
	"compartment_c":   {measTemperature, fieldCelsius, map[string]string{tagSensor: sensorCompartment}},
	"door_open":       {measDoor, fieldOpen, nil},
	"heater_on":       {measThermal, fieldOn, map[string]string{tagActuator: actuatorHeater}},
	"heater_duty":     {measThermal, fieldDuty, map[string]string{tagActuator: actuatorHeater}},
	"compressor_on":   {measThermal, fieldOn, map[string]string{tagActuator: actuatorCompressor}},
	"compressor_duty": {measThermal, fieldDuty, map[string]string{tagActuator: actuatorCompressor}},
}
