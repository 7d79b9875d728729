package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Version is the schema version every payload carries as "v". A peer
// accepts exactly this version; see docs/protocol.md for when it changes.
const Version = 1

// MaxPayloadBytes is the largest payload accepted. Decoders refuse larger
// ones before parsing, so a device cannot make the hub parse megabytes.
const MaxPayloadBytes = 16 << 10

// Message is the payload of a channel: a Telemetry, Event, Status, Command or
// Result value.
type Message interface {
	// Validate reports the first rule of the contract the message breaks, as
	// a *DecodeError with ReasonVersion if it carries another schema version
	// and ReasonInvalid otherwise.
	Validate() error
}

// Reason classifies why a payload was refused. The hub counts dropped
// messages by it.
type Reason string

const (
	// ReasonTooLarge is a payload larger than MaxPayloadBytes.
	ReasonTooLarge Reason = "too_large"
	// ReasonMalformed is a payload that is not a single JSON object of the
	// channel's schema: bad JSON, invalid UTF-8, wrong types, trailing data.
	ReasonMalformed Reason = "malformed"
	// ReasonVersion is a payload whose "v" is not Version.
	ReasonVersion Reason = "version"
	// ReasonInvalid is a well-formed payload that breaks a rule, such as a
	// door number out of range.
	ReasonInvalid Reason = "invalid"
)

// DecodeError is a payload or message that breaks the contract.
type DecodeError struct {
	Kind   string // "telemetry", "event", "status", "command", "result" or "codes"
	Reason Reason
	Err    error // names the field and the problem, where there is one
}

// Error names the reason, the kind of message and the problem.
func (e *DecodeError) Error() string {
	adjective := string(e.Reason)
	switch e.Reason {
	case ReasonTooLarge:
		adjective = "oversized"
	case ReasonVersion:
		adjective = "unsupported"
	}
	return "wire: " + adjective + " " + e.Kind + ": " + e.Err.Error()
}

// Unwrap returns the underlying problem.
func (e *DecodeError) Unwrap() error { return e.Err }

// ReasonOf returns the Reason of the *DecodeError in err's chain,
// ReasonMalformed for any other error, and "" for nil.
func ReasonOf(err error) Reason {
	if err == nil {
		return ""
	}
	if de, ok := errors.AsType[*DecodeError](err); ok {
		return de.Reason
	}
	return ReasonMalformed
}

// DecodeTelemetry decodes a payload of ChannelTelemetry; see [Decode].
func DecodeTelemetry(b []byte) (Telemetry, error) {
	if t, ok := fastTelemetry(b); ok {
		return checked(t)
	}
	return decode[Telemetry]("telemetry", b)
}

// DecodeEvent decodes a payload of ChannelEvents; see [Decode].
func DecodeEvent(b []byte) (Event, error) { return decode[Event]("event", b) }

// DecodeStatus decodes a payload of ChannelStatus; see [Decode].
func DecodeStatus(b []byte) (Status, error) { return decode[Status]("status", b) }

// DecodeCommand decodes a payload of ChannelCommand; see [Decode].
func DecodeCommand(b []byte) (Command, error) { return decode[Command]("command", b) }

// DecodeResult decodes a payload of ChannelResult; see [Decode].
func DecodeResult(b []byte) (Result, error) { return decode[Result]("result", b) }

// DecodeCodeSet decodes a payload of ChannelCodes; see [Decode].
func DecodeCodeSet(b []byte) (CodeSet, error) { return decode[CodeSet]("codes", b) }

// Decode decodes a payload of channel ch into the value type of that channel
// (Telemetry, Event, Status, Command, Result or CodeSet) and validates it. It refuses
// a payload with a *DecodeError, and a channel without payloads with another
// error. With ReasonInvalid the decoded message comes
// back along with the error, so that a device can still answer an invalid
// command with OutcomeInvalid under its ID; with any other reason the
// message is the zero value.
func Decode(ch Channel, b []byte) (Message, error) {
	switch ch {
	case ChannelTelemetry:
		return DecodeTelemetry(b)
	case ChannelEvents:
		return DecodeEvent(b)
	case ChannelStatus:
		return DecodeStatus(b)
	case ChannelCommand:
		return DecodeCommand(b)
	case ChannelResult:
		return DecodeResult(b)
	case ChannelCodes:
		return DecodeCodeSet(b)
	}
	return nil, fmt.Errorf("wire: no payload schema for channel %q", ch)
}

func decode[M Message](kind string, b []byte) (M, error) {
	var m, zero M
	malformed := func(err error) (M, error) {
		return zero, &DecodeError{Kind: kind, Reason: ReasonMalformed, Err: err}
	}
	if len(b) > MaxPayloadBytes {
		return zero, &DecodeError{Kind: kind, Reason: ReasonTooLarge,
			Err: fmt.Errorf("%d bytes, limit %d", len(b), MaxPayloadBytes)}
	}
	// encoding/json would replace invalid UTF-8 with U+FFFD and decode a
	// top-level null into a zero message; a payload must not be repaired.
	if !utf8.Valid(b) {
		return malformed(errors.New("not valid UTF-8"))
	}
	if !bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{")) {
		return malformed(errors.New("not a JSON object"))
	}
	if err := json.Unmarshal(b, &m); err != nil { // refuses trailing data as well
		// encoding/json goes on decoding after a wrong type, so m.V is
		// known: a payload of another schema version, whose fields may
		// well have other types, is reported as such.
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); !ok || te.Field == "v" || ReasonOf(m.Validate()) != ReasonVersion {
			return malformed(err)
		}
	}
	return checked(m)
}

// checked validates a decoded message: it comes back with the error if it
// is invalid, and as the zero value if it has another schema version.
func checked[M Message](m M) (M, error) {
	err := m.Validate()
	if ReasonOf(err) == ReasonVersion {
		var zero M
		return zero, err
	}
	return m, err
}

// Marshal validates m and encodes it as a payload. It refuses a message that
// breaks the contract, with the error Validate returns, rather than send
// something the peer will drop.
func Marshal(m Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	if len(b) > MaxPayloadBytes {
		return nil, fmt.Errorf("wire: %T encodes to %d bytes, limit %d", m, len(b), MaxPayloadBytes)
	}
	return b, nil
}
