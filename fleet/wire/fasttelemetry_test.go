package wire

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzFastTelemetry checks the fast path against encoding/json: whatever it accepts, encoding/json
// accepts too and decodes to the same value.
func FuzzFastTelemetry(f *testing.F) {
	for _, c := range telemetryCases {
		if len(c.payload) < MaxPayloadBytes/2 {
			f.Add([]byte(c.payload))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := fastTelemetry(b)
		if !ok {
			return
		}
		var want Telemetry
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", b, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q:\nfast path     %+v\nencoding/json %+v", b, fast, want)
		}
	})
}

// What agents send takes the fast path; otherwise the speed-up would silently be lost.
func TestFastTelemetryTakesAgentPayloads(t *testing.T) {
	for _, c := range telemetryCases {
		if c.reason != "" {
			continue
		}
		m, err := DecodeTelemetry([]byte(c.payload))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		out, err := Marshal(m)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, ok := fastTelemetry(out); !ok {
			t.Errorf("%s: Marshal's output %s does not take the fast path", c.name, out)
		}
	}
	for _, p := range []string{" \r\n\t" + telemetryBank + "\n", "{ \"v\" : 1 , \"seq\" : 2 , \"ts\" : 3 , \"doors\" : [ ] }"} {
		if _, ok := fastTelemetry([]byte(p)); !ok {
			t.Errorf("%q does not take the fast path", p)
		}
	}
}

// The fast path gives up on what it does not fully understand, for encoding/json to decide.
func TestFastTelemetryGivesUp(t *testing.T) {
	for _, p := range []string{
		edit(telemetryBank, `"v":1`, `"v":1,"future":1`),     // unknown field
		edit(telemetryBank, `"v":1`, `"V":1`),                // another case
		edit(telemetryBank, `"seq":42`, `"seq":42,"seq":43`), // repeated
		edit(telemetryBank, `"dropped":3`, `"dropped":3,"codes":1,"codes":2`),
		edit(telemetryBank, `"dropped":3`, `"dropped":3,"codes":18446744073709551616`),
		edit(telemetryBank, `"dropped":3`, `"dropped":3,"codes":-1`),
		edit(telemetryBank, `"ambient_c":-3.25`, `"ambient_c":null`),
		edit(telemetryBank, `"seq":42`, `"s\u0065q":42`),
		edit(telemetryBank, `"doors":`, `"doors ":`), // another key for encoding/json
		edit(telemetryBank, `"v":1`, `"v":1.0`),
		edit(telemetryBank, `"seq":42`, `"seq":-1`),
		edit(telemetryBank, `"enclosure_c":12`, `"enclosure_c":1e400`),
		edit(telemetryBank, `"enclosure_c":12`, `"enclosure_c":012`),
		telemetryBank + "x",
		telemetryBank[:len(telemetryBank)-1],
	} {
		if _, ok := fastTelemetry([]byte(p)); ok {
			t.Errorf("fast path accepted %s", p)
		}
	}
}

func BenchmarkDecodeTelemetry(b *testing.B) {
	payload := []byte(edit(telemetryFridge, `[{"door":1,"open":false,"locked":true,"temp_c":3.9}]`, doorsJSON(16)))
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeTelemetry(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := decode[Telemetry]("telemetry", payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}
