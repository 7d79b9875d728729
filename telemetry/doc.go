// Package telemetry takes device telemetry, door and keypad events from the broker to InfluxDB
// without losing any, and keeps the latest state of every device in memory.
//
// One message from the embedded broker, in order, one name per step:
//
//	broker's ingest hook        validates the payload against the wire contract
//	  Pipeline.Ingest           checks it against the registry, turns it into line protocol
//	    Store                   and hands it to the spool, returning a fleet.Receipt at once
//	broker's acker              waits for the connection's receipts in their order:
//	  Receipt.Wait              the spool made the message durable (fsync, group commit), then
//	    Apply                   it updates the live state and the unit's sequence accounting
//	    EventPublisher.Publish  and tells the hub's event bus (fleet.Event): the health rules,
//	                            the dashboards' stream
//	  PUBACK                    once Wait returned nil
//	spool --> Shipper --> InfluxDB, in order, in batches
//
// A snapshot stores a door's state only when it changed since the hub last stored it, or in a
// periodic keyframe of every door (doorWrites, docs/telemetry.md): door states rarely change,
// and the latest door point or event before any time still gives the state then.
//
// A keypad event (a code entered at the unit, and what the unit did with it) travels the same
// path as a door event, numbered in the same sequence, but it is not a door change: it is
// stored as a keypad point and published as fleet.EventKeypadEntered, and leaves the door
// states, the keyframes and the live door view alone.
//
// A command result is not stored here (the commands service records it) but shares the unit's
// sequence numbers, so the broker applies it as it is delivered. A hub of a cluster stores the
// share of the stream the external broker gives it (Store, then Wait, then its acknowledgement)
// and applies the whole stream it sees (Apply), so that its live state and rules are complete
// whichever hub stores a message.
//
// The broker acknowledges a QoS 1 message only after its receipt's Wait returned nil: an
// acknowledged reading survives a crash of the hub, an outage of InfluxDB or of the network,
// and the rules and dashboards only ever see stored messages, in each device's order. The
// spool is bounded; when it is full Wait waits (the device's acknowledgement is delayed) and,
// past a timeout, fails, and the broker closes that device's connection so that it resends
// from its own outbox. Nothing is ever dropped for lack of space. The Shipper sends the spool
// to InfluxDB in batches, several in flight while it reads ahead, commits in order, retries what can succeed later and sets aside
// (quarantines) the points InfluxDB refuses as bad data, so that one poisoned message cannot
// block the stream behind it. Writing a point twice is harmless: InfluxDB keeps one point per
// series and timestamp.
package telemetry
