package wire

import (
	"errors"
	"reflect"
	"testing"
)

func FuzzDecodeTelemetry(f *testing.F) { fuzzDecode(f, DecodeTelemetry, telemetryCases) }
func FuzzDecodeEvent(f *testing.F)     { fuzzDecode(f, DecodeEvent, eventCases) }
func FuzzDecodeStatus(f *testing.F)    { fuzzDecode(f, DecodeStatus, statusCases) }
func FuzzDecodeCommand(f *testing.F)   { fuzzDecode(f, DecodeCommand, commandCases) }
func FuzzDecodeResult(f *testing.F)    { fuzzDecode(f, DecodeResult, resultCases) }
func FuzzDecodeCodeSet(f *testing.F)   { fuzzDecode(f, DecodeCodeSet, codeSetCases) }

// fuzzDecode checks that decode never panics, refuses only with a
// *DecodeError, and accepts only messages that validate and survive a
// Marshal and Decode round trip unchanged.
func fuzzDecode[M Message](f *testing.F, decode func([]byte) (M, error), seeds []decodeCase) {
	for _, s := range seeds {
		// Payloads padded to the size limit would only slow the fuzzer
		// down; the decode tests cover them.
		if len(s.payload) < MaxPayloadBytes/2 {
			f.Add([]byte(s.payload))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			if _, ok := errors.AsType[*DecodeError](err); !ok {
				t.Fatalf("error %v is a %T, want a *DecodeError", err, err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded %+v does not validate: %v", m, err)
		}
		out, err := Marshal(m)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", m, err)
		}
		back, err := decode(out)
		if err != nil {
			t.Fatalf("decoding %s: %v", out, err)
		}
		if !reflect.DeepEqual(back, m) {
			t.Fatalf("round trip through %s:\n got %+v\nwant %+v", out, back, m)
		}
	})
}

// FuzzParseTopic checks that ParseTopic accepts exactly the topics Topic builds: what it
// accepts names a valid device and a known channel, and rebuilds to the same topic.
func FuzzParseTopic(f *testing.F) {
	for _, s := range []string{"lockers/bank-1/telemetry", "lockers/bank-1/cmd/request", "lockers/bank-1/cmd/codes", "lockers/+/events",
		"lockers/bank-1/telemetry/x", "lockers//status", "$SYS/x", "lockers/Bank-1/result", "lockers/-a/events"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		id, ch, ok := ParseTopic(topic)
		if !ok {
			return
		}
		if !ValidDeviceID(id) || !(ch == ChannelCommand || ch == ChannelCodes || DevicePublishes(ch)) {
			t.Fatalf("ParseTopic(%q) accepted device %q channel %q", topic, id, ch)
		}
		if back := Topic(id, ch); back != topic {
			t.Fatalf("ParseTopic(%q) = %q, %q, which builds %q", topic, id, ch, back)
		}
	})
}
