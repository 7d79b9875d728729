package influx

import (
	"strings"
	"testing"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// The line protocol is the schema docs/telemetry.md documents and the history and cold-chain
// queries read.
func TestLines(t *testing.T) {
	d := &fleet.Device{ID: "fridge-1", Kind: fleet.KindFridge, Site: "elm street"}
	temp, ambient := 3.5, -2.25
	lines, n := TelemetryLines(d, wire.Telemetry{V: 1, Seq: 7, TS: 1767225600000, AmbientC: &ambient, Dropped: 2,
		Doors:      []wire.DoorState{{Door: 1, Open: true, TempC: &temp}, {Door: 2, Locked: true}},
		Compressor: &wire.Thermal{On: true, SetpointC: 4, Duty: 0.5}}, AllDoors)
	want := []string{
		`door,device=fridge-1,kind=fridge,site=elm\ street,door=1 open=true,locked=false 1767225600000`,
		`temperature,device=fridge-1,kind=fridge,site=elm\ street,door=1,sensor=compartment celsius=3.5 1767225600000`,
		`door,device=fridge-1,kind=fridge,site=elm\ street,door=2 open=false,locked=true 1767225600000`,
		`temperature,device=fridge-1,kind=fridge,site=elm\ street,sensor=ambient celsius=-2.25 1767225600000`,
		`thermal,device=fridge-1,kind=fridge,site=elm\ street,actuator=compressor on=true,setpoint_c=4,duty=0.5 1767225600000`,
		`unit,device=fridge-1,kind=fridge,site=elm\ street seq=7i,outbox_dropped=2i 1767225600000`,
	}
	if got := strings.Split(string(lines), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") || n != len(want) {
		t.Errorf("telemetry lines (%d points):\n%s\nwant (%d):\n%s", n, lines, len(want), strings.Join(want, "\n"))
	}
	// A snapshot whose door 1 state is not stored keeps door 1's temperature.
	lines, n = TelemetryLines(d, wire.Telemetry{V: 1, Seq: 7, TS: 1767225600000, AmbientC: &ambient, Dropped: 2,
		Doors:      []wire.DoorState{{Door: 1, Open: true, TempC: &temp}, {Door: 2, Locked: true}},
		Compressor: &wire.Thermal{On: true, SetpointC: 4, Duty: 0.5}}, DoorSet(0).With(2))
	if got, want := strings.Split(string(lines), "\n"), append(want[1:2:2], want[2:]...); strings.Join(got, "\n") != strings.Join(want, "\n") || n != len(want) {
		t.Errorf("telemetry lines with door 2 only (%d points):\n%s\nwant (%d):\n%s", n, lines, len(want), strings.Join(want, "\n"))
	}
	ev, n := EventLines(d, wire.Event{V: 1, Seq: 8, TS: 1767225600001, Door: 2, Open: true, Cause: wire.CauseRemote})
	if want := `door_event,device=fridge-1,kind=fridge,site=elm\ street,cause=remote,door=2 open=true,locked=false,seq=8i 1767225600001`; string(ev) != want || n != 1 {
		t.Errorf("event line %q (%d points), want %q", ev, n, want)
	}
	for _, tc := range []struct {
		e    wire.Event
		want string
	}{
		{wire.Event{V: 1, Seq: 9, TS: 1767225600002, Kind: wire.EventDoor, Door: 1, Open: true, Cause: wire.CauseCode, Parcel: "p-7"},
			`door_event,device=fridge-1,kind=fridge,site=elm\ street,cause=code,door=1 open=true,locked=false,seq=9i,parcel="p-7" 1767225600002`},
		{wire.Event{V: 1, Seq: 10, TS: 1767225600003, Kind: wire.EventKeypad, Keypad: wire.KeypadAccepted, Door: 2, Parcel: "p-8"},
			`keypad,device=fridge-1,kind=fridge,site=elm\ street,result=accepted seq=10i,door=2i,parcel="p-8" 1767225600003`},
		{wire.Event{V: 1, Seq: 11, TS: 1767225600004, Kind: wire.EventKeypad, Keypad: wire.KeypadLockedOut, Failures: 5, LockedUntil: 1767225900004},
			`keypad,device=fridge-1,kind=fridge,site=elm\ street,result=locked-out seq=11i,failures=5i,locked_until=1767225900004i 1767225600004`},
		// Escaped though the wire contract refuses such an id: a string field cannot end early.
		{wire.Event{V: 1, Seq: 12, TS: 1767225600005, Kind: wire.EventKeypad, Keypad: wire.KeypadUsed, Parcel: `a"b\`},
			`keypad,device=fridge-1,kind=fridge,site=elm\ street,result=used seq=12i,parcel="a\"b\\" 1767225600005`},
	} {
		if ev, n := EventLines(d, tc.e); string(ev) != tc.want || n != 1 {
			t.Errorf("event line %q (%d points), want %q", ev, n, tc.want)
		}
	}
}

func BenchmarkTelemetryLines(b *testing.B) {
	d := &fleet.Device{ID: "bank-1", Kind: fleet.KindLockerBank, Site: "elm-street"}
	ambient, enclosure := -5.5, 12.25
	m := wire.Telemetry{V: 1, Seq: 7, TS: 1767225600000, AmbientC: &ambient, EnclosureC: &enclosure,
		Heater: &wire.Thermal{On: true, SetpointC: 5, Duty: 0.3}}
	for i := range 16 {
		m.Doors = append(m.Doors, wire.DoorState{Door: i + 1, Locked: true})
	}
	for b.Loop() {
		TelemetryLines(d, m, AllDoors)
	}
}
