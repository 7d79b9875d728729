// Package wire is the MQTT contract between the lockerhub hub and its edge
// agents: the topic layout, the JSON payload of every channel, their limits
// and the rules a payload must satisfy. docs/protocol.md describes the same
// contract for firmware engineers.
//
// The hub and the agent both link this package, so they agree on the
// contract by construction: the hub checks what it receives and what it sends
// with the code the agent uses for the opposite direction. It imports only
// the standard library, because every dependency added here ends up in the
// agent binary, which has to stay small.
//
// Topics are lockers/{device-id}/{channel}; see [Topic] and [ParseTopic].
// A payload is one JSON object of at most [MaxPayloadBytes] bytes carrying the
// schema version [Version] as "v". Timestamps are UTC milliseconds since the
// Unix epoch, read from the clock of whoever wrote the message. A device
// numbers its telemetry, events and results with one sequence number, seq,
// which starts at 1 and only increases, so that the hub can tell duplicates
// (MQTT QoS 1 delivers at least once) and gaps apart.
//
// The decoders refuse a payload that is too large, is not a single JSON
// object, has another schema version or breaks a rule, and say why with a
// [*DecodeError]; the hub drops such messages and counts them by [Reason].
// Fields they do not know are ignored, so that fields can be added within a
// schema version. [Marshal] refuses to encode a message that its peer would
// refuse to decode.
package wire
