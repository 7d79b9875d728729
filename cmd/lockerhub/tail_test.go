package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet/http/hubclient"
)

func TestTailPrinter(t *testing.T) {
	ts := time.Date(2026, 11, 25, 8, 0, 5, 0, time.Local)
	// Times as the wire (Unix milliseconds) and the API (RFC 3339) carry them.
	millis, rfc := strconv.FormatInt(ts.UnixMilli(), 10), ts.UTC().Format(time.RFC3339Nano)
	events := []hubclient.Event{
		{Name: "health", Data: `{"sites":[],"total":{}}`},
		{Name: "device", Data: `{"id":"f-1","kind":"fridge","enabled":true,"presence":{"online":true},"health":"ok","live":{"doors":[{"door":1,"open":false,"locked":true}]}}`},
		{Name: "device", Data: `{"id":"f-1","kind":"fridge","enabled":true,"presence":{"online":true},"health":"ok"}`},
		{Name: "telemetry", Data: `{"v":1,"seq":42,"ts":` + millis + `,"doors":[{"door":1,"open":false,"locked":true,"temp_c":3.14},{"door":2,"open":true,"locked":false,"temp_c":6}],"ambient_c":20.04,"compressor":{"on":true,"setpoint_c":3,"duty":0.42}}`},
		{Name: "door", Data: `{"v":1,"seq":43,"ts":` + millis + `,"kind":"door","door":1,"open":false,"locked":false,"cause":"remote"}`},
		{Name: "door", Data: `{"v":1,"seq":44,"ts":` + millis + `,"kind":"door","door":1,"open":true,"locked":false,"cause":"remote"}`},
		{Name: "door", Data: `{"v":1,"seq":45,"ts":` + millis + `,"kind":"door","door":3,"open":true,"locked":false}`},
		{Name: "keypad", Data: `{"v":1,"seq":46,"ts":` + millis + `,"kind":"keypad","door":0,"open":false,"locked":false,"keypad":"wrong","failures":2}`},
		{Name: "keypad", Data: `{"v":1,"seq":47,"ts":` + millis + `,"kind":"keypad","door":0,"open":false,"locked":false,"keypad":"locked-out","failures":5,"locked_until":` + millis + `}`},
		{Name: "keypad", Data: `{"v":1,"seq":48,"ts":` + millis + `,"kind":"keypad","door":4,"open":false,"locked":false,"parcel":"p-1","keypad":"accepted"}`},
		{Name: "keypad", Data: `{"v":1,"seq":49,"ts":` + millis + `,"kind":"keypad","door":0,"open":false,"locked":false,"parcel":"p-1","keypad":"used"}`},
		{Name: "door", Data: `{"v":1,"seq":50,"ts":` + millis + `,"kind":"door","door":4,"open":true,"locked":false,"cause":"code","parcel":"p-1"}`},
		{Name: "alert", Data: `{"event":"fired","alert":{"id":7,"rule":"forced-entry","severity":"critical","device":"f-1","door":3,"state":"firing","summary":"door 3 forced","fired_at":"` + rfc + `"}}`},
		{Name: "alert", Data: `{"event":"acknowledged","alert":{"id":7,"rule":"forced-entry","severity":"critical","device":"f-1","door":3,"state":"acknowledged","acked_by":"token:ab","acked_by_name":"Ana","ack_note":"on my way","acked_at":"` + rfc + `"}}`},
		{Name: "command", Data: `{"id":"c1","device":"f-1","type":"unlock","door":1,"reason":"courier","actor":"token:ab","actor_name":"Ana","status":"succeeded","outcome":"opened","created_at":"` + rfc + `"}`},
		{Name: "lost", Data: `{"events":3}`},
		{Name: "newfangled", Data: `{}`},
		{Name: "device", Data: `{"id":"f-1","kind":"fridge","enabled":true,"presence":{"online":false},"health":"offline"}`},
	}
	var out bytes.Buffer
	p := &tailPrinter{w: &out}
	for _, ev := range events {
		if err := p.print(ev, ts); err != nil {
			t.Fatalf("%s: %v", ev.Name, err)
		}
	}
	clock := ts.Format(time.TimeOnly)
	want := strings.ReplaceAll(`T device online, health ok
T telemetry seq 42  open 2  ambient 20.0 °C  compartments 1: 3.1 °C, 2: 6.0 °C  compressor on, setpoint 3.0 °C, duty 42%
T door 1 unlocked (cause: remote)
T door 1 opened (cause: remote)
T door 3 opened, unlocked
T keypad wrong code (2 in a row)
T keypad locked out until T after 5 wrong codes in a row
T keypad code of parcel p-1 accepted, door 4 released
T keypad code of parcel p-1 refused: used
T door 4 opened, unlocked (cause: code, parcel p-1)
T alert 7 fired: critical forced-entry door 3: door 3 forced
T alert 7 acknowledged: critical forced-entry door 3: by Ana (token:ab): on my way
T command c1 unlock door 1 succeeded (opened) [by Ana (token:ab): "courier"]
T 3 events missed so far: this terminal did not keep up with the stream
T device offline, health offline
`, "T ", clock+" ")
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}

	// An event the printer cannot read is an error (which tail reports and goes on).
	out.Reset()
	if err := p.print(hubclient.Event{Name: "telemetry", Data: "{"}, ts); err == nil {
		t.Error("a broken telemetry event printed without an error")
	}

	// --json: every event, one line each (data compacted, or a string when it is not JSON).
	out.Reset()
	p = &tailPrinter{w: &out, asJSON: true}
	for _, ev := range []hubclient.Event{{Name: "health", Data: "{\"total\":\n {\"units\": 1}}"}, {Name: "message", Data: "hello"}} {
		if err := p.print(ev, ts); err != nil {
			t.Fatal(err)
		}
	}
	if want := `{"event":"health","data":{"total":{"units":1}}}` + "\n" + `{"event":"message","data":"hello"}` + "\n"; out.String() != want {
		t.Errorf("--json: got\n%s\nwant\n%s", out.String(), want)
	}
}
