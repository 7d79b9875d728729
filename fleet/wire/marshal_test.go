package wire

import (
	"fmt"
	"go/build"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestMarshalRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		ch   Channel
		m    Message
	}{
		{"telemetry", ChannelTelemetry, Telemetry{
			V: Version, Seq: 42, TS: 1767225600000,
			Doors: []DoorState{
				{Door: 2, Open: true, TempC: ptr(0.0)},
				{Door: 1, Locked: true, TempC: ptr(-18.5)},
				{Door: 64, Locked: true},
			},
			AmbientC: ptr(-3.25), EnclosureC: ptr(1e-300),
			Heater:     &Thermal{On: true, SetpointC: 5, Duty: 0.4},
			Compressor: &Thermal{SetpointC: -20},
			Dropped:    math.MaxUint64, Codes: math.MaxUint64,
		}},
		{"event opened by a code", ChannelEvents, Event{V: Version, Seq: 45, TS: 1767225601000, Kind: EventDoor, Door: 2, Open: true, Cause: CauseCode, Parcel: "p-1"}},
		{"keypad accepted", ChannelEvents, Event{V: Version, Seq: 46, TS: 1767225601000, Kind: EventKeypad, Door: 2, Parcel: "p-1", Keypad: KeypadAccepted}},
		{"keypad locked out", ChannelEvents, Event{V: Version, Seq: 47, TS: 1767225601000, Kind: EventKeypad, Keypad: KeypadLockedOut, Failures: 10, LockedUntil: 1767225661000}},
		{"code set", ChannelCodes, CodeSet{V: Version, Version: 9, Issued: 1767225600000, Codes: []Code{
			{Parcel: "p-1", Door: 64, Salt: codeSalt, Hash: codeHash, Expires: math.MaxInt64},
			{Parcel: "P_2", Door: 1, Salt: codeSalt, Hash: codeHashOther, Expires: 1},
		}}},
		{"empty code set", ChannelCodes, CodeSet{V: Version, Version: 1, Issued: 1, Codes: []Code{}}},
		{"event", ChannelEvents, Event{V: Version, Seq: 43, TS: 1767225601000, Kind: EventDoor, Door: 3, Open: true, Cause: CauseRemote}},
		{"status", ChannelStatus, Status{V: Version, TS: 1767225600500, Online: true, Since: 1767225600000, Remote: "[2001:db8::1]:51234", Agent: "1.4.2 <ü>"}},
		{"unlock", ChannelCommand, Command{V: Version, ID: "c-1", Type: CommandUnlock, Door: 3, PulseMS: 800, Issued: 1767225600000, Expires: 1767225630000}},
		{"setpoint 0", ChannelCommand, Command{V: Version, ID: "c-2", Type: CommandSetpoint, Target: "heater", SetpointC: ptr(0.0), Issued: 1, Expires: 2}},
		{"result", ChannelResult, Result{V: Version, ID: "c-1", Seq: 44, TS: 1767225600900, Outcome: OutcomeFailed, Detail: "latch \"stuck\"\n\u2028"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Marshal(tc.m)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got, err := Decode(tc.ch, b)
			if err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			if !reflect.DeepEqual(got, tc.m) {
				t.Errorf("round trip through %s:\n got %+v\nwant %+v", b, got, tc.m)
			}
		})
	}
}

// TestMarshalFormat pins field names and the omission of absent optional
// fields, which docs/protocol.md promises firmware.
func TestMarshalFormat(t *testing.T) {
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{Telemetry{V: 1, Seq: 1, TS: 2, Doors: []DoorState{{Door: 1, TempC: ptr(0.0)}}},
			`{"v":1,"seq":1,"ts":2,"doors":[{"door":1,"open":false,"locked":false,"temp_c":0}]}`},
		{Event{V: 1, Seq: 1, TS: 2, Kind: EventDoor, Door: 1},
			`{"v":1,"seq":1,"ts":2,"kind":"door","door":1,"open":false,"locked":false}`},
		{Event{V: 1, Seq: 1, TS: 2, Kind: EventKeypad, Keypad: KeypadWrong, Failures: 1},
			`{"v":1,"seq":1,"ts":2,"kind":"keypad","door":0,"open":false,"locked":false,"keypad":"wrong","failures":1}`},
		{Event{V: 1, Seq: 1, TS: 2, Kind: EventDoor, Door: 1, Open: true, Cause: CauseCode, Parcel: "p"},
			`{"v":1,"seq":1,"ts":2,"kind":"door","door":1,"open":true,"locked":false,"cause":"code","parcel":"p"}`},
		{Telemetry{V: 1, Seq: 1, TS: 2, Doors: []DoorState{{Door: 1}}, Codes: 3},
			`{"v":1,"seq":1,"ts":2,"doors":[{"door":1,"open":false,"locked":false}],"codes":3}`},
		{CodeSet{V: 1, Version: 1, Issued: 2, Codes: []Code{{Parcel: "p", Door: 1, Salt: codeSalt, Hash: codeHash, Expires: 3}}},
			`{"v":1,"version":1,"issued":2,"codes":[{"parcel":"p","door":1,"salt":"` + codeSalt + `","hash":"` + codeHash + `","expires":3}]}`},
		{Status{V: 1, TS: 2},
			`{"v":1,"ts":2,"online":false}`},
		{Command{V: 1, ID: "c", Type: CommandSnapshot, Issued: 1, Expires: 2},
			`{"v":1,"id":"c","type":"snapshot","issued":1,"expires":2}`},
		{Result{V: 1, ID: "c", Seq: 1, TS: 2, Outcome: OutcomeOK},
			`{"v":1,"id":"c","seq":1,"ts":2,"outcome":"ok"}`},
	} {
		b, err := Marshal(tc.m)
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", tc.m, b, err, tc.want)
		}
	}
}

func TestMarshalRefuses(t *testing.T) {
	door := []DoorState{{Door: 1}}
	for _, tc := range []struct {
		name    string
		m       Message
		reason  Reason
		errText string
	}{
		{"zero telemetry", Telemetry{}, ReasonVersion, "wire: unsupported telemetry: v: 0, want 1"},
		{"NaN temperature", Telemetry{V: 1, Seq: 1, TS: 1, Doors: []DoorState{{Door: 1, TempC: ptr(math.NaN())}}}, ReasonInvalid,
			"wire: invalid telemetry: doors[0].temp_c: NaN out of range -100..150"},
		{"infinite ambient", Telemetry{V: 1, Seq: 1, TS: 1, Doors: door, AmbientC: ptr(math.Inf(1))}, ReasonInvalid, "ambient_c: +Inf out of range"},
		{"NaN duty", Telemetry{V: 1, Seq: 1, TS: 1, Doors: door, Heater: &Thermal{Duty: math.NaN()}}, ReasonInvalid, "heater.duty: NaN out of range 0..1"},
		{"nil doors", Telemetry{V: 1, Seq: 1, TS: 1}, ReasonInvalid, "doors: 0 entries"},
		{"event without kind", Event{V: 1, Seq: 1, TS: 1, Door: 1}, ReasonInvalid, "kind: missing"},
		{"agent not UTF-8", Status{V: 1, TS: 1, Agent: "1.\xff"}, ReasonInvalid, "wire: invalid status: agent: not valid UTF-8"},
		{"NaN setpoint", Command{V: 1, ID: "c", Type: CommandSetpoint, Target: "heater", SetpointC: ptr(math.NaN()), Issued: 1, Expires: 2},
			ReasonInvalid, "setpoint_c: NaN out of range -40..40"},
		{"command TTL", Command{V: 1, ID: "c", Type: CommandSnapshot, Issued: 1, Expires: 1 + time.Hour.Milliseconds()},
			ReasonInvalid, "expires: 3600000 ms after issued, limit 600000"},
		{"code set version 0", CodeSet{V: 1, Issued: 1}, ReasonInvalid, "wire: invalid codes: version: 0 must be >= 1"},
		{"keypad event without result", Event{V: 1, Seq: 1, TS: 1, Kind: EventKeypad}, ReasonInvalid, "keypad: missing"},
		{"detail not UTF-8", Result{V: 1, ID: "c", Seq: 1, TS: 1, Outcome: OutcomeFailed, Detail: "\xc3"}, ReasonInvalid, "detail: not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Marshal(tc.m)
			if b != nil || ReasonOf(err) != tc.reason || !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("Marshal = %q, %v; want nil, %s error containing %q", b, err, tc.reason, tc.errText)
			}
		})
	}
}

// TestLargestMessagesFit checks that the field limits keep every valid
// message under MaxPayloadBytes, even with the longest numbers and strings
// encoding/json escapes to six bytes a character.
func TestLargestMessagesFit(t *testing.T) {
	long := -1.2345678901234567e-300
	doors := make([]DoorState, MaxDoors)
	for i := range doors {
		doors[i] = DoorState{Door: i + 1, Open: true, Locked: true, TempC: &long}
	}
	thermal := &Thermal{On: true, SetpointC: long, Duty: -long}
	codes := make([]Code, MaxCodes)
	for i := range codes {
		codes[i] = Code{Parcel: fmt.Sprintf("%064d", i), Door: MaxDoors, Salt: codeSalt, Hash: codeHash, Expires: math.MaxInt64}
	}
	for _, m := range []Message{
		CodeSet{V: 1, Version: math.MaxUint64, Issued: math.MaxInt64, Codes: codes},
		Telemetry{V: 1, Seq: math.MaxUint64, TS: math.MaxInt64, Doors: doors, AmbientC: &long, EnclosureC: &long,
			Heater: thermal, Compressor: thermal, Dropped: math.MaxUint64, Codes: math.MaxUint64},
		Status{V: 1, TS: math.MaxInt64, Online: true, Since: math.MaxInt64,
			Remote: strings.Repeat("<", maxRemoteLen), Agent: strings.Repeat("\x01", maxAgentLen)},
		Result{V: 1, ID: strings.Repeat("x", maxIDLen), Seq: math.MaxUint64, TS: math.MaxInt64,
			Outcome: OutcomeExpired, Detail: strings.Repeat("&", maxDetailLen)},
	} {
		b, err := Marshal(m)
		if err != nil {
			t.Fatalf("Marshal(%T): %v", m, err)
		}
		t.Logf("largest %T: %d bytes", m, len(b))
	}
}

func TestCommandExpired(t *testing.T) {
	c := Command{Issued: 1767225600000, Expires: 1767225630000}
	for _, tc := range []struct {
		now  int64
		want bool
	}{
		{c.Issued, false},
		{c.Expires - 1, false},
		{c.Expires, true},
		{c.Expires + 1, true},
	} {
		if got := c.Expired(time.UnixMilli(tc.now)); got != tc.want {
			t.Errorf("Expired at %d = %v, want %v", tc.now, got, tc.want)
		}
	}
}

// TestStdlibOnly keeps the agent binary free of whatever the hub depends on.
func TestStdlibOnly(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range pkg.Imports {
		if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
			t.Errorf("imports %s; package wire may import only the standard library", path)
		}
	}
}
