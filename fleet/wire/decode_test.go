package wire

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// decodeCase is a payload and what its decoder must make of it. The same
// tables seed the fuzz targets.
type decodeCase struct {
	name    string
	payload string
	reason  Reason // "" for a valid payload
	errText string // part of the error message, naming the field and the problem
}

// edit returns s with the first old replaced by new. It panics if s lacks
// old, so that a case cannot silently test the unedited payload.
func edit(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic(fmt.Sprintf("edit: %q not in %s", old, s))
	}
	return strings.Replace(s, old, new, 1)
}

// framingCases are the cases every decoder shares, built from a valid
// payload of the given kind that starts with {"v":1,.
func framingCases(kind, valid string) []decodeCase {
	padTo := func(n int) string { return "{" + strings.Repeat(" ", n-len(valid)) + valid[1:] }
	return []decodeCase{
		{"padded to the limit", padTo(MaxPayloadBytes), "", ""},
		{"surrounding whitespace", " \r\n\t" + valid + "\n", "", ""},
		{"unknown fields", edit(valid, `"v":1`, `"v":1,"future":{"x":[1,"a",null]},"V2":true`), "", ""},
		{"one byte over the limit", padTo(MaxPayloadBytes + 1), ReasonTooLarge,
			"wire: oversized " + kind + ": 16385 bytes, limit 16384"},
		{"empty", "", ReasonMalformed, "wire: malformed " + kind + ": not a JSON object"},
		{"not JSON", "hello", ReasonMalformed, "not a JSON object"},
		{"null", "null", ReasonMalformed, "not a JSON object"},
		{"array", "[" + valid + "]", ReasonMalformed, "not a JSON object"},
		{"string", `"{}"`, ReasonMalformed, "not a JSON object"},
		{"truncated", valid[:len(valid)-1], ReasonMalformed, "unexpected end of JSON input"},
		{"trailing object", valid + "{}", ReasonMalformed, "after top-level value"},
		{"trailing garbage", valid + " x", ReasonMalformed, "after top-level value"},
		{"invalid UTF-8", edit(valid, `"v":1`, `"v":1,"note":"`+"\xff"+`"`), ReasonMalformed, "not valid UTF-8"},
		{"v as string", edit(valid, `"v":1`, `"v":"1"`), ReasonMalformed, "cannot unmarshal string"},
		{"v as fraction", edit(valid, `"v":1`, `"v":1.0`), ReasonMalformed, "cannot unmarshal number 1.0"},
		{"v missing", edit(valid, `"v":1,`, ""), ReasonVersion, "v: 0, want 1"},
		{"empty object", "{}", ReasonVersion, "v: 0, want 1"},
		{"v 2", edit(valid, `"v":1`, `"v":2`), ReasonVersion,
			"wire: unsupported " + kind + ": v: 2, want 1"},
		{"v -1", edit(valid, `"v":1`, `"v":-1`), ReasonVersion, "v: -1, want 1"},
	}
}

const (
	telemetryBank = `{"v":1,"seq":42,"ts":1767225600000,` +
		`"doors":[{"door":1,"open":false,"locked":true},{"door":2,"open":true,"locked":false,"temp_c":4.5}],` +
		`"ambient_c":-3.25,"enclosure_c":12,"heater":{"on":true,"setpoint_c":5,"duty":0.4},"dropped":3}`
	telemetryFridge = `{"v":1,"seq":7,"ts":1767225600000,"doors":[{"door":1,"open":false,"locked":true,"temp_c":3.9}],` +
		`"compressor":{"on":false,"setpoint_c":4,"duty":0.35}}`
)

// doorsJSON returns n doors numbered from 1.
func doorsJSON(n int) string {
	doors := make([]string, n)
	for i := range doors {
		doors[i] = fmt.Sprintf(`{"door":%d,"open":false,"locked":true}`, i+1)
	}
	return "[" + strings.Join(doors, ",") + "]"
}

var telemetryCases = append(framingCases("telemetry", telemetryBank), []decodeCase{
	{"locker bank", telemetryBank, "", ""},
	{"fridge", telemetryFridge, "", ""},
	{"minimal", `{"v":1,"seq":1,"ts":1,"doors":[{"door":1,"open":false,"locked":false}]}`, "", ""},
	{"unknown door field", edit(telemetryBank, `{"door":1,`, `{"door":1,"reed":"ok",`), "", ""},
	{"null sensor", edit(telemetryBank, `"ambient_c":-3.25`, `"ambient_c":null`), "", ""},
	{"zero temperature", edit(telemetryBank, `"temp_c":4.5`, `"temp_c":0`), "", ""},
	{"exponent", edit(telemetryBank, `"ambient_c":-3.25`, `"ambient_c":-3.25e0`), "", ""},
	{"temperature limits", edit(edit(telemetryBank, `"temp_c":4.5`, `"temp_c":-100`), `"enclosure_c":12`, `"enclosure_c":150`), "", ""},
	{"duty limits", edit(edit(telemetryFridge, `"duty":0.35`, `"duty":1`), `"on":false`, `"on":true`), "", ""},
	{"64 doors", edit(telemetryFridge, `[{"door":1,"open":false,"locked":true,"temp_c":3.9}]`, doorsJSON(64)), "", ""},
	{"largest seq", edit(telemetryBank, `"seq":42`, `"seq":18446744073709551615`), "", ""},
	{"code set version", edit(telemetryBank, `"dropped":3`, `"dropped":3,"codes":12`), "", ""},
	{"largest code set version", edit(telemetryFridge, `"doors"`, `"codes":18446744073709551615,"doors"`), "", ""},
	{"codes negative", edit(telemetryBank, `"dropped":3`, `"dropped":3,"codes":-1`), ReasonMalformed, "Telemetry.codes"},
	{"codes as string", edit(telemetryBank, `"dropped":3`, `"dropped":3,"codes":"12"`), ReasonMalformed, "Telemetry.codes"},

	{"seq 0", edit(telemetryBank, `"seq":42`, `"seq":0`), ReasonInvalid, "wire: invalid telemetry: seq: 0 must be >= 1"},
	{"seq missing", edit(telemetryBank, `"seq":42,`, ""), ReasonInvalid, "seq: 0 must be >= 1"},
	{"ts 0", edit(telemetryBank, `"ts":1767225600000`, `"ts":0`), ReasonInvalid, "ts: 0 must be > 0"},
	{"ts negative", edit(telemetryBank, `"ts":1767225600000`, `"ts":-1`), ReasonInvalid, "ts: -1 must be > 0"},
	{"no doors", edit(telemetryFridge, `[{"door":1,"open":false,"locked":true,"temp_c":3.9}]`, `[]`), ReasonInvalid, "doors: 0 entries, want 1..64"},
	{"doors missing", `{"v":1,"seq":1,"ts":1}`, ReasonInvalid, "doors: 0 entries"},
	{"doors null", edit(telemetryFridge, `[{"door":1,"open":false,"locked":true,"temp_c":3.9}]`, `null`), ReasonInvalid, "doors: 0 entries"},
	{"65 doors", edit(telemetryFridge, `[{"door":1,"open":false,"locked":true,"temp_c":3.9}]`, doorsJSON(65)), ReasonInvalid, "doors: 65 entries, want 1..64"},
	{"door 0", edit(telemetryBank, `"door":1`, `"door":0`), ReasonInvalid, "doors[0].door: 0 out of range 1..64"},
	{"door missing", edit(telemetryBank, `"door":1,`, ""), ReasonInvalid, "doors[0].door: 0 out of range"},
	{"door 99", edit(telemetryBank, `"door":2`, `"door":99`), ReasonInvalid,
		"wire: invalid telemetry: doors[1].door: 99 out of range 1..64"},
	{"door repeated", edit(telemetryBank, `"door":2`, `"door":1`), ReasonInvalid, "doors[1].door: 1 repeated"},
	{"door temperature high", edit(telemetryBank, `"temp_c":4.5`, `"temp_c":150.5`), ReasonInvalid, "doors[1].temp_c: 150.5 out of range -100..150"},
	{"ambient low", edit(telemetryBank, `"ambient_c":-3.25`, `"ambient_c":-101`), ReasonInvalid, "ambient_c: -101 out of range -100..150"},
	{"enclosure huge", edit(telemetryBank, `"enclosure_c":12`, `"enclosure_c":1e300`), ReasonInvalid, "enclosure_c: 1e+300 out of range"},
	{"heater duty high", edit(telemetryBank, `"duty":0.4`, `"duty":1.5`), ReasonInvalid, "heater.duty: 1.5 out of range 0..1"},
	{"heater duty negative", edit(telemetryBank, `"duty":0.4`, `"duty":-0.1`), ReasonInvalid, "heater.duty: -0.1 out of range 0..1"},
	{"heater setpoint", edit(telemetryBank, `"setpoint_c":5`, `"setpoint_c":151`), ReasonInvalid, "heater.setpoint_c: 151 out of range -100..150"},
	{"compressor duty", edit(telemetryFridge, `"duty":0.35`, `"duty":2`), ReasonInvalid, "compressor.duty: 2 out of range 0..1"},

	{"seq as string", edit(telemetryBank, `"seq":42`, `"seq":"42"`), ReasonMalformed, "Telemetry.seq"},
	{"seq negative", edit(telemetryBank, `"seq":42`, `"seq":-1`), ReasonMalformed, "Telemetry.seq"},
	{"seq overflow", edit(telemetryBank, `"seq":42`, `"seq":18446744073709551616`), ReasonMalformed, "Telemetry.seq"},
	{"ts fraction", edit(telemetryBank, `"ts":1767225600000`, `"ts":1767225600000.5`), ReasonMalformed, "Telemetry.ts"},
	{"ts overflow", edit(telemetryBank, `"ts":1767225600000`, `"ts":1e30`), ReasonMalformed, "Telemetry.ts"},
	{"door fraction", edit(telemetryBank, `"door":1`, `"door":1.0`), ReasonMalformed, "doors.door"},
	{"door as string", edit(telemetryBank, `"door":1`, `"door":"1"`), ReasonMalformed, "doors.door"},
	{"open as number", edit(telemetryBank, `"open":false`, `"open":0`), ReasonMalformed, "doors.open"},
	{"doors as object", edit(telemetryFridge, `[{"door":1,"open":false,"locked":true,"temp_c":3.9}]`, `{}`), ReasonMalformed, "Telemetry.doors"},
	{"heater as array", edit(telemetryBank, `{"on":true,"setpoint_c":5,"duty":0.4}`, `[]`), ReasonMalformed, "Telemetry.heater"},
	{"temperature overflow", edit(telemetryBank, `"ambient_c":-3.25`, `"ambient_c":-1e400`), ReasonMalformed, "Telemetry.ambient_c"},
	{"NaN", edit(telemetryBank, `"ambient_c":-3.25`, `"ambient_c":NaN`), ReasonMalformed, "invalid character 'N'"},

	{"v 2 with other types", edit(edit(telemetryBank, `"v":1`, `"v":2`), `"door":1`, `"door":"A1"`), ReasonVersion, "v: 2, want 1"},
}...)

const event = `{"v":1,"seq":43,"ts":1767225601000,"kind":"door","door":3,"open":true,"locked":false,"cause":"remote"}`

// Keypad events, one of each shape: the fields each result carries and no others.
const (
	keypadAccepted  = `{"v":1,"seq":44,"ts":1767225601000,"kind":"keypad","door":3,"open":false,"locked":false,"parcel":"p-1","keypad":"accepted"}`
	keypadExpired   = `{"v":1,"seq":44,"ts":1767225601000,"kind":"keypad","door":0,"open":false,"locked":false,"parcel":"p-1","keypad":"expired"}`
	keypadWrong     = `{"v":1,"seq":45,"ts":1767225601000,"kind":"keypad","door":0,"open":false,"locked":false,"keypad":"wrong","failures":3}`
	keypadLockedOut = `{"v":1,"seq":46,"ts":1767225601000,"kind":"keypad","door":0,"open":false,"locked":false,"keypad":"locked-out","failures":5,"locked_until":1767225631000}`
)

var eventCases = append(framingCases("event", event), []decodeCase{
	{"remote unlock", event, "", ""},
	{"no cause", edit(event, `,"cause":"remote"`, ""), "", ""},
	{"empty cause", edit(event, `"cause":"remote"`, `"cause":""`), "", ""},
	{"local", edit(event, `"cause":"remote"`, `"cause":"local"`), "", ""},
	{"local via keypad", edit(event, `"cause":"remote"`, `"cause":"local","via":"keypad"`), "", ""},
	{"local via service", edit(event, `"cause":"remote"`, `"cause":"local","via":"service"`), "", ""},
	{"via unknown", edit(event, `"cause":"remote"`, `"cause":"local","via":"crowbar"`), ReasonInvalid, `via: "crowbar" unknown`},
	{"via on a remote opening", edit(event, `"cause":"remote"`, `"cause":"remote","via":"key"`), ReasonInvalid, `via "key": only with cause "local"`},
	{"via without a cause", edit(event, `,"cause":"remote"`, `,"via":"key"`), ReasonInvalid, `via "key": only with cause "local"`},
	{"door 64", edit(event, `"door":3`, `"door":64`), "", ""},

	{"seq 0", edit(event, `"seq":43`, `"seq":0`), ReasonInvalid, "wire: invalid event: seq: 0 must be >= 1"},
	{"ts 0", edit(event, `"ts":1767225601000`, `"ts":0`), ReasonInvalid, "ts: 0 must be > 0"},
	{"kind unknown", edit(event, `"kind":"door"`, `"kind":"motion"`), ReasonInvalid, `kind: "motion" unknown`},
	{"kind missing", edit(event, `"kind":"door",`, ""), ReasonInvalid, "kind: missing"},
	{"door 0", edit(event, `"door":3`, `"door":0`), ReasonInvalid, "door: 0 out of range 1..64"},
	{"door 65", edit(event, `"door":3`, `"door":65`), ReasonInvalid, "door: 65 out of range 1..64"},
	{"cause unknown", edit(event, `"cause":"remote"`, `"cause":"magic"`), ReasonInvalid, `cause: "magic" unknown`},

	{"opened by a code", edit(event, `"cause":"remote"`, `"cause":"code","parcel":"p-1"`), "", ""},
	{"code without parcel", edit(event, `"cause":"remote"`, `"cause":"code"`), ReasonInvalid, "parcel: 0 bytes, want 1..64"},
	{"code with a bad parcel", edit(event, `"cause":"remote"`, `"cause":"code","parcel":"p/1"`), ReasonInvalid, `parcel: '/' not allowed`},
	{"code with via", edit(event, `"cause":"remote"`, `"cause":"code","parcel":"p-1","via":"keypad"`), ReasonInvalid, `via "keypad": only with cause "local"`},
	{"parcel on a remote opening", edit(event, `"cause":"remote"`, `"cause":"remote","parcel":"p-1"`), ReasonInvalid, `parcel: only with cause "code"`},
	{"parcel without a cause", edit(event, `,"cause":"remote"`, `,"parcel":"p-1"`), ReasonInvalid, `parcel: only with cause "code"`},
	{"door event with keypad", edit(event, `"cause":"remote"`, `"cause":"remote","keypad":"accepted"`), ReasonInvalid, "keypad: not allowed for door"},
	{"door event with failures", edit(event, `"cause":"remote"`, `"cause":"remote","failures":1`), ReasonInvalid, "failures: not allowed for door"},
	{"door event with locked_until", edit(event, `"cause":"remote"`, `"cause":"remote","locked_until":1`), ReasonInvalid, "locked_until: not allowed for door"},

	{"keypad accepted", keypadAccepted, "", ""},
	{"keypad expired", keypadExpired, "", ""},
	{"keypad used", edit(keypadExpired, `"expired"`, `"used"`), "", ""},
	{"keypad wrong", keypadWrong, "", ""},
	{"keypad wrong at the limit", edit(keypadWrong, `"failures":3`, `"failures":1000`), "", ""},
	{"keypad locked out", keypadLockedOut, "", ""},
	{"accepted without door", edit(keypadAccepted, `"door":3,`, ""), ReasonInvalid, "wire: invalid event: door: 0 out of range 1..64"},
	{"accepted door 65", edit(keypadAccepted, `"door":3`, `"door":65`), ReasonInvalid, "door: 65 out of range 1..64"},
	{"accepted without parcel", edit(keypadAccepted, `,"parcel":"p-1"`, ""), ReasonInvalid, "parcel: 0 bytes, want 1..64"},
	{"accepted with failures", edit(keypadAccepted, `"keypad":"accepted"`, `"keypad":"accepted","failures":2`), ReasonInvalid, "failures: not allowed for accepted"},
	{"expired with door", edit(keypadExpired, `"door":0`, `"door":2`), ReasonInvalid, "door: not allowed for expired"},
	{"expired without parcel", edit(keypadExpired, `,"parcel":"p-1"`, ""), ReasonInvalid, "parcel: 0 bytes"},
	{"used without parcel", edit(edit(keypadExpired, `"expired"`, `"used"`), `,"parcel":"p-1"`, ""), ReasonInvalid, "parcel: 0 bytes"},
	{"used with locked_until", edit(edit(keypadExpired, `"expired"`, `"used"`), `"keypad":`, `"locked_until":5,"keypad":`), ReasonInvalid, "locked_until: not allowed for used"},
	{"wrong without failures", edit(keypadWrong, `,"failures":3`, ""), ReasonInvalid, "failures: 0 out of range 1..1000"},
	{"wrong past the limit", edit(keypadWrong, `"failures":3`, `"failures":1001`), ReasonInvalid, "failures: 1001 out of range 1..1000"},
	{"wrong with parcel", edit(keypadWrong, `"keypad":`, `"parcel":"p-1","keypad":`), ReasonInvalid, "parcel: not allowed for wrong"},
	{"wrong with door", edit(keypadWrong, `"door":0`, `"door":1`), ReasonInvalid, "door: not allowed for wrong"},
	{"wrong with locked_until", edit(keypadWrong, `"failures":3`, `"failures":3,"locked_until":5`), ReasonInvalid, "locked_until: not allowed for wrong"},
	{"locked out without locked_until", edit(keypadLockedOut, `,"locked_until":1767225631000`, ""), ReasonInvalid, "locked_until: 0 must be > 0"},
	{"locked out without failures", edit(keypadLockedOut, `"failures":5,`, ""), ReasonInvalid, "failures: 0 out of range"},
	{"locked out with parcel", edit(keypadLockedOut, `"keypad":`, `"parcel":"p-1","keypad":`), ReasonInvalid, "parcel: not allowed for locked-out"},
	{"keypad result unknown", edit(keypadWrong, `"wrong"`, `"maybe"`), ReasonInvalid, `keypad: "maybe" unknown`},
	{"keypad result missing", edit(keypadWrong, `"keypad":"wrong",`, ""), ReasonInvalid, "keypad: missing"},
	{"keypad with open", edit(keypadAccepted, `"open":false`, `"open":true`), ReasonInvalid, "keypad: open, locked, cause and via not allowed"},
	{"keypad with locked", edit(keypadWrong, `"locked":false`, `"locked":true`), ReasonInvalid, "keypad: open, locked, cause and via not allowed"},
	{"keypad with cause", edit(keypadAccepted, `"keypad":`, `"cause":"code","keypad":`), ReasonInvalid, "keypad: open, locked, cause and via not allowed"},
	{"keypad with via", edit(keypadWrong, `"keypad":`, `"via":"keypad","keypad":`), ReasonInvalid, "keypad: open, locked, cause and via not allowed"},
	{"keypad seq 0", edit(keypadWrong, `"seq":45`, `"seq":0`), ReasonInvalid, "seq: 0 must be >= 1"},

	{"open as string", edit(event, `"open":true`, `"open":"yes"`), ReasonMalformed, "Event.open"},
	{"failures as string", edit(keypadWrong, `"failures":3`, `"failures":"3"`), ReasonMalformed, "Event.failures"},
	{"cause as number", edit(event, `"cause":"remote"`, `"cause":1`), ReasonMalformed, "Event.cause"},
	{"v 2 with other types", edit(edit(event, `"v":1`, `"v":2`), `"door":3`, `"door":[3]`), ReasonVersion, "v: 2, want 1"},
}...)

const (
	statusHub  = `{"v":1,"ts":1767225600500,"online":true,"since":1767225600000,"remote":"203.0.113.7:51234"}`
	statusWill = `{"v":1,"ts":1767225600000,"online":false}`
)

var statusCases = append(framingCases("status", statusHub), []decodeCase{
	{"hub online", statusHub, "", ""},
	{"hub offline", edit(statusHub, `"online":true`, `"online":false`), "", ""},
	{"will", statusWill, "", ""},
	{"device online", `{"v":1,"ts":1767225600500,"online":true,"since":1767225600000,"agent":"1.4.2"}`, "", ""},
	{"agent at limit", edit(statusWill, `"online":false`, `"online":false,"agent":"`+strings.Repeat("é", 32)+`"`), "", ""},
	{"escaped surrogate", edit(statusWill, `"online":false`, `"online":false,"agent":"\ud800"`), "", ""},
	{"remote at limit", edit(statusHub, `203.0.113.7:51234`, strings.Repeat("1", 128)), "", ""},

	{"ts 0", edit(statusWill, `"ts":1767225600000`, `"ts":0`), ReasonInvalid, "wire: invalid status: ts: 0 must be > 0"},
	{"ts missing", `{"v":1,"online":false}`, ReasonInvalid, "ts: 0 must be > 0"},
	{"since negative", edit(statusHub, `"since":1767225600000`, `"since":-1`), ReasonInvalid, "since: -1 must be > 0"},
	{"agent too long", edit(statusWill, `"online":false`, `"online":false,"agent":"`+strings.Repeat("a", 65)+`"`), ReasonInvalid, "agent: 65 bytes, limit 64"},
	{"remote too long", edit(statusHub, `203.0.113.7:51234`, strings.Repeat("1", 129)), ReasonInvalid, "remote: 129 bytes, limit 128"},

	{"online as string", edit(statusWill, `"online":false`, `"online":"false"`), ReasonMalformed, "Status.online"},
	{"since fraction", edit(statusHub, `"since":1767225600000`, `"since":1.5`), ReasonMalformed, "Status.since"},
	{"agent invalid UTF-8", edit(statusWill, `"online":false`, `"online":false,"agent":"1.`+"\xc3"+`"`), ReasonMalformed, "not valid UTF-8"},
}...)

const (
	cmdUnlock   = `{"v":1,"id":"c-7f3a","type":"unlock","door":3,"pulse_ms":800,"issued":1767225600000,"expires":1767225630000}`
	cmdLock     = `{"v":1,"id":"c-7f3b","type":"lock","door":3,"issued":1767225600000,"expires":1767225630000}`
	cmdSetpoint = `{"v":1,"id":"c-7f3c","type":"setpoint","target":"compressor","setpoint_c":4,"issued":1767225600000,"expires":1767225630000}`
	cmdSnapshot = `{"v":1,"id":"c-7f3d","type":"snapshot","issued":1767225600000,"expires":1767225630000}`
)

var commandCases = append(framingCases("command", cmdUnlock), []decodeCase{
	{"unlock", cmdUnlock, "", ""},
	{"lock", cmdLock, "", ""},
	{"setpoint", cmdSetpoint, "", ""},
	{"snapshot", cmdSnapshot, "", ""},
	{"unlock default pulse", edit(cmdUnlock, `"pulse_ms":800,`, ""), "", ""},
	{"pulse min", edit(cmdUnlock, `"pulse_ms":800`, `"pulse_ms":100`), "", ""},
	{"pulse max", edit(cmdUnlock, `"pulse_ms":800`, `"pulse_ms":30000`), "", ""},
	{"heater setpoint", edit(edit(cmdSetpoint, `"compressor"`, `"heater"`), `"setpoint_c":4`, `"setpoint_c":-40`), "", ""},
	{"setpoint 40", edit(cmdSetpoint, `"setpoint_c":4`, `"setpoint_c":40`), "", ""},
	{"setpoint 0", edit(cmdSetpoint, `"setpoint_c":4`, `"setpoint_c":0`), "", ""},
	{"longest TTL", edit(cmdSnapshot, `"expires":1767225630000`, `"expires":1767226200000`), "", ""},
	{"longest id", edit(cmdSnapshot, `"c-7f3d"`, `"`+strings.Repeat("x", 64)+`"`), "", ""},
	{"id alphabet", edit(cmdSnapshot, `"c-7f3d"`, `"AZaz09_-"`), "", ""},

	{"id empty", edit(cmdUnlock, `"c-7f3a"`, `""`), ReasonInvalid, "wire: invalid command: id: 0 bytes, want 1..64"},
	{"id too long", edit(cmdUnlock, `"c-7f3a"`, `"`+strings.Repeat("x", 65)+`"`), ReasonInvalid, "id: 65 bytes, want 1..64"},
	{"id with space", edit(cmdUnlock, `"c-7f3a"`, `"c 1"`), ReasonInvalid, `id: ' ' not allowed`},
	{"id with slash", edit(cmdUnlock, `"c-7f3a"`, `"c/1"`), ReasonInvalid, `id: '/' not allowed`},
	{"id not ASCII", edit(cmdUnlock, `"c-7f3a"`, `"ç"`), ReasonInvalid, `id: 'ç' not allowed`},
	{"type unknown", edit(cmdUnlock, `"unlock"`, `"reboot"`), ReasonInvalid, `type: "reboot" unknown`},
	{"type missing", edit(cmdSnapshot, `"type":"snapshot",`, ""), ReasonInvalid, "type: missing"},
	{"unlock without door", edit(cmdUnlock, `"door":3,`, ""), ReasonInvalid, "door: 0 out of range 1..64"},
	{"lock door 65", edit(cmdLock, `"door":3`, `"door":65`), ReasonInvalid, "door: 65 out of range 1..64"},
	{"pulse short", edit(cmdUnlock, `"pulse_ms":800`, `"pulse_ms":99`), ReasonInvalid, "pulse_ms: 99 out of range 100..30000"},
	{"pulse long", edit(cmdUnlock, `"pulse_ms":800`, `"pulse_ms":30001`), ReasonInvalid, "pulse_ms: 30001 out of range 100..30000"},
	{"lock with pulse", edit(cmdLock, `"door":3`, `"door":3,"pulse_ms":800`), ReasonInvalid, "pulse_ms: not allowed for lock"},
	{"unlock with target", edit(cmdUnlock, `"door":3`, `"door":3,"target":"heater"`), ReasonInvalid, "target: not allowed for unlock"},
	{"snapshot with door", edit(cmdSnapshot, `"type":"snapshot"`, `"type":"snapshot","door":1`), ReasonInvalid, "door: not allowed for snapshot"},
	{"snapshot with setpoint", edit(cmdSnapshot, `"type":"snapshot"`, `"type":"snapshot","setpoint_c":0`), ReasonInvalid, "setpoint_c: not allowed for snapshot"},
	{"setpoint with door", edit(cmdSetpoint, `"setpoint_c":4`, `"setpoint_c":4,"door":2`), ReasonInvalid, "door: not allowed for setpoint"},
	{"setpoint missing", edit(cmdSetpoint, `"setpoint_c":4,`, ""), ReasonInvalid, "setpoint_c: missing"},
	{"setpoint null", edit(cmdSetpoint, `"setpoint_c":4`, `"setpoint_c":null`), ReasonInvalid, "setpoint_c: missing"},
	{"setpoint high", edit(cmdSetpoint, `"setpoint_c":4`, `"setpoint_c":40.5`), ReasonInvalid, "setpoint_c: 40.5 out of range -40..40"},
	{"target unknown", edit(cmdSetpoint, `"compressor"`, `"fan"`), ReasonInvalid, `target: "fan" unknown`},
	{"target missing", edit(cmdSetpoint, `"target":"compressor",`, ""), ReasonInvalid, "target: missing"},
	{"issued 0", edit(cmdUnlock, `"issued":1767225600000`, `"issued":0`), ReasonInvalid, "issued: 0 must be > 0"},
	{"expires missing", edit(cmdUnlock, `,"expires":1767225630000`, ""), ReasonInvalid, "expires: 0 must be after issued 1767225600000"},
	{"expires at issued", edit(cmdUnlock, `"expires":1767225630000`, `"expires":1767225600000`), ReasonInvalid, "must be after issued"},
	{"TTL too long", edit(cmdUnlock, `"expires":1767225630000`, `"expires":1767226200001`), ReasonInvalid, "expires: 600001 ms after issued, limit 600000"},

	{"door as string", edit(cmdUnlock, `"door":3`, `"door":"3"`), ReasonMalformed, "Command.door"},
	{"pulse fraction", edit(cmdUnlock, `"pulse_ms":800`, `"pulse_ms":800.5`), ReasonMalformed, "Command.pulse_ms"},
	{"setpoint as string", edit(cmdSetpoint, `"setpoint_c":4`, `"setpoint_c":"4"`), ReasonMalformed, "Command.setpoint_c"},
	{"id as number", edit(cmdUnlock, `"c-7f3a"`, `7`), ReasonMalformed, "Command.id"},
	{"v 2 with other types", edit(edit(cmdUnlock, `"v":1`, `"v":2`), `"door":3`, `"door":{"bank":1,"door":3}`), ReasonVersion, "v: 2, want 1"},
}...)

const result = `{"v":1,"id":"c-7f3a","seq":44,"ts":1767225600900,"outcome":"opened"}`

var resultCases = append(framingCases("result", result), []decodeCase{
	{"opened", result, "", ""},
	{"already-open", edit(result, `"opened"`, `"already-open"`), "", ""},
	{"jammed", edit(result, `"opened"`, `"jammed"`), "", ""},
	{"locked", edit(result, `"opened"`, `"locked"`), "", ""},
	{"ok", edit(result, `"opened"`, `"ok"`), "", ""},
	{"expired", edit(result, `"opened"`, `"expired"`), "", ""},
	{"invalid", edit(result, `"opened"`, `"invalid"`), "", ""},
	{"failed with detail", edit(result, `"opened"`, `"failed","detail":"motor current 2.1 A \u003e 1.5 A"`), "", ""},
	{"detail at limit", edit(result, `"opened"`, `"failed","detail":"`+strings.Repeat("ü", 128)+`"`), "", ""},

	{"id empty", edit(result, `"c-7f3a"`, `""`), ReasonInvalid, "wire: invalid result: id: 0 bytes, want 1..64"},
	{"id bad", edit(result, `"c-7f3a"`, `"c.1"`), ReasonInvalid, `id: '.' not allowed`},
	{"seq 0", edit(result, `"seq":44`, `"seq":0`), ReasonInvalid, "seq: 0 must be >= 1"},
	{"ts 0", edit(result, `"ts":1767225600900`, `"ts":0`), ReasonInvalid, "ts: 0 must be > 0"},
	{"outcome unknown", edit(result, `"opened"`, `"exploded"`), ReasonInvalid, `outcome: "exploded" unknown`},
	{"outcome missing", edit(result, `,"outcome":"opened"`, ""), ReasonInvalid, "outcome: missing"},
	{"detail too long", edit(result, `"opened"`, `"failed","detail":"`+strings.Repeat("x", 257)+`"`), ReasonInvalid, "detail: 257 bytes, limit 256"},

	{"seq as string", edit(result, `"seq":44`, `"seq":"44"`), ReasonMalformed, "Result.seq"},
	{"detail as number", edit(result, `"opened"`, `"failed","detail":5`), ReasonMalformed, "Result.detail"},
}...)

// codeSalt and codeHash are a code's salt (the bytes 0..15) and the hash of 12345678 under it,
// standard base64; codeHashOther is 32 other bytes (32..63).
const (
	codeSalt      = "AAECAwQFBgcICQoLDA0ODw=="
	codeHash      = "gcUnOIFnnZOPCCnzd+sVi7EhPwnVmoGhQNNCoWTQ77Q="
	codeHashOther = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
	codeSet       = `{"v":1,"version":7,"issued":1767225600000,"codes":[` +
		`{"parcel":"p-1","door":3,"salt":"` + codeSalt + `","hash":"` + codeHash + `","expires":1767312000000},` +
		`{"parcel":"p-2","door":4,"salt":"` + codeSalt + `","hash":"` + codeHashOther + `","expires":1767312000000}]}`
)

// codesJSON returns n codes for parcels p-1.. on doors 1.. in turn.
func codesJSON(n int) string {
	codes := make([]string, n)
	for i := range codes {
		codes[i] = fmt.Sprintf(`{"parcel":"p-%d","door":%d,"salt":"%s","hash":"%s","expires":1767312000000}`, i+1, i%MaxDoors+1, codeSalt, codeHash)
	}
	return "[" + strings.Join(codes, ",") + "]"
}

var codeSetCases = append(framingCases("codes", codeSet), []decodeCase{
	{"two codes", codeSet, "", ""},
	{"no codes", edit(codeSet, codeSet[strings.Index(codeSet, "["):len(codeSet)-1], `[]`), "", ""},
	{"codes missing", `{"v":1,"version":1,"issued":1}`, "", ""},
	{"most codes", edit(codeSet, codeSet[strings.Index(codeSet, "["):len(codeSet)-1], codesJSON(MaxCodes)), "", ""},
	{"longest parcel", edit(codeSet, `"p-1"`, `"`+strings.Repeat("P", 64)+`"`), "", ""},
	{"door 64", edit(codeSet, `"door":3`, `"door":64`), "", ""},
	{"largest version", edit(codeSet, `"version":7`, `"version":18446744073709551615`), "", ""},
	{"two parcels on one door", edit(codeSet, `"door":4`, `"door":3`), "", ""},

	{"version 0", edit(codeSet, `"version":7`, `"version":0`), ReasonInvalid, "wire: invalid codes: version: 0 must be >= 1"},
	{"version missing", edit(codeSet, `"version":7,`, ""), ReasonInvalid, "version: 0 must be >= 1"},
	{"issued 0", edit(codeSet, `"issued":1767225600000`, `"issued":0`), ReasonInvalid, "issued: 0 must be > 0"},
	{"too many codes", edit(codeSet, codeSet[strings.Index(codeSet, "["):len(codeSet)-1], codesJSON(MaxCodes+1)), ReasonInvalid,
		fmt.Sprintf("codes: %d entries, limit %d", MaxCodes+1, MaxCodes)},
	{"parcel repeated", edit(codeSet, `"p-2"`, `"p-1"`), ReasonInvalid, `codes[1].parcel: "p-1" repeated`},
	{"parcel empty", edit(codeSet, `"p-1"`, `""`), ReasonInvalid, "codes[0].parcel: 0 bytes, want 1..64"},
	{"parcel too long", edit(codeSet, `"p-1"`, `"`+strings.Repeat("P", 65)+`"`), ReasonInvalid, "codes[0].parcel: 65 bytes, want 1..64"},
	{"parcel with slash", edit(codeSet, `"p-2"`, `"p/2"`), ReasonInvalid, `codes[1].parcel: '/' not allowed`},
	{"door 0", edit(codeSet, `"door":3`, `"door":0`), ReasonInvalid, "codes[0].door: 0 out of range 1..64"},
	{"door 65", edit(codeSet, `"door":4`, `"door":65`), ReasonInvalid, "codes[1].door: 65 out of range 1..64"},
	{"salt not base64", edit(codeSet, `"salt":"`+codeSalt, `"salt":"!!!!`+codeSalt[4:]), ReasonInvalid, "codes[0].salt: not standard base64"},
	{"salt unpadded", edit(codeSet, `"salt":"`+codeSalt, `"salt":"`+strings.TrimRight(codeSalt, "=")), ReasonInvalid, "codes[0].salt: not standard base64"},
	{"hash in the URL alphabet", edit(codeSet, codeHashOther, strings.NewReplacer("+", "-", "/", "_").Replace(codeHash)), ReasonInvalid, "codes[1].hash: not standard base64"},
	{"salt short", edit(codeSet, `"salt":"`+codeSalt, `"salt":"AAECAwQFBgcICQoLDA0O`), ReasonInvalid, "codes[0].salt: 15 bytes, want 16"},
	{"salt empty", edit(codeSet, `"salt":"`+codeSalt, `"salt":"`), ReasonInvalid, "codes[0].salt: 0 bytes, want 16"},
	{"hash of a salt's length", edit(codeSet, `"hash":"`+codeHash, `"hash":"`+codeSalt), ReasonInvalid, "codes[0].hash: 16 bytes, want 32"},
	{"expires 0", edit(codeSet, `"expires":1767312000000}]`, `"expires":0}]`), ReasonInvalid, "codes[1].expires: 0 must be > 0"},
	{"expires missing", edit(codeSet, `,"expires":1767312000000}]`, `}]`), ReasonInvalid, "codes[1].expires: 0 must be > 0"},

	{"version negative", edit(codeSet, `"version":7`, `"version":-7`), ReasonMalformed, "CodeSet.version"},
	{"door as string", edit(codeSet, `"door":3`, `"door":"3"`), ReasonMalformed, "codes.door"},
	{"codes as object", `{"v":1,"version":1,"issued":1,"codes":{}}`, ReasonMalformed, "CodeSet.codes"},
	{"v 2 with other types", edit(edit(codeSet, `"v":1`, `"v":2`), `"door":3`, `"door":[3]`), ReasonVersion, "v: 2, want 1"},
}...)

func TestDecodeCodeSet(t *testing.T) {
	testDecode(t, ChannelCodes, DecodeCodeSet, codeSetCases)
}

func TestDecodeTelemetry(t *testing.T) {
	testDecode(t, ChannelTelemetry, DecodeTelemetry, telemetryCases)
}

func TestDecodeEvent(t *testing.T) {
	testDecode(t, ChannelEvents, DecodeEvent, eventCases)
}

func TestDecodeStatus(t *testing.T) {
	testDecode(t, ChannelStatus, DecodeStatus, statusCases)
}

func TestDecodeCommand(t *testing.T) {
	testDecode(t, ChannelCommand, DecodeCommand, commandCases)
}

func TestDecodeResult(t *testing.T) {
	testDecode(t, ChannelResult, DecodeResult, resultCases)
}

func testDecode[M Message](t *testing.T, ch Channel, decode func([]byte) (M, error), cases []decodeCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decode([]byte(tc.payload))
			if got := ReasonOf(err); got != tc.reason {
				t.Fatalf("reason %q, want %q; error: %v", got, tc.reason, err)
			}
			if err != nil {
				if _, ok := errors.AsType[*DecodeError](err); !ok {
					t.Errorf("error %v is a %T, want a *DecodeError", err, err)
				}
				if !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("error %q does not contain %q", err, tc.errText)
				}
			}
			// Only an invalid message comes back with its error, so that a
			// device can answer a command it refuses.
			var zero M
			switch tc.reason {
			case ReasonInvalid:
				if verr := m.Validate(); verr == nil || verr.Error() != err.Error() {
					t.Errorf("returned message validates to %v, want %v", verr, err)
				}
			case ReasonTooLarge, ReasonMalformed, ReasonVersion:
				if !reflect.DeepEqual(m, zero) {
					t.Errorf("returned %+v with %s error, want zero value", m, tc.reason)
				}
			}
			dm, derr := Decode(ch, []byte(tc.payload))
			if !reflect.DeepEqual(dm, Message(m)) || fmt.Sprint(derr) != fmt.Sprint(err) {
				t.Errorf("Decode(%q) = %+v, %v; want %+v, %v", ch, dm, derr, m, err)
			}
		})
	}
}

func TestDecodeUnknownChannel(t *testing.T) {
	m, err := Decode("cmd/response", []byte(cmdUnlock))
	if m != nil || ReasonOf(err) != ReasonMalformed {
		t.Errorf("Decode(cmd/response) = %v, %v; want nil, malformed", m, err)
	}
}

func TestReasonOf(t *testing.T) {
	_, invalid := DecodeEvent([]byte(edit(event, `"door":3`, `"door":0`)))
	for _, tc := range []struct {
		name string
		err  error
		want Reason
	}{
		{"nil", nil, ""},
		{"other error", errors.New("boom"), ReasonMalformed},
		{"decode error", invalid, ReasonInvalid},
		{"wrapped decode error", fmt.Errorf("device bank-1: %w", invalid), ReasonInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ReasonOf(tc.err); got != tc.want {
				t.Errorf("ReasonOf(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
	if errors.Unwrap(invalid) == nil {
		t.Error("DecodeError does not unwrap to its cause")
	}
}
