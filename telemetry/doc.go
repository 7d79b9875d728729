// Package telemetry takes device telemetry and door events from the broker to InfluxDB without
// losing any, and keeps the latest state of every device in memory.
//
// The flow, in one direction:
//
//	broker hook --Ingest--> validate against the registry --> line protocol --> spool (fsync,
//	group commit) --> PUBACK to the device
//	                                                           spool --> Shipper --> InfluxDB
//
// Ingest returns only when the message's points are durable in the spool, and the broker
// acknowledges a QoS 1 message only after Ingest returned: an acknowledged reading survives a
// crash of the hub, an outage of InfluxDB or of the network. The spool is bounded; when it is
// full Ingest waits (the device's acknowledgement is delayed) and, past a timeout, fails, and
// the broker closes that device's connection so that it resends from its own outbox. Nothing is
// ever dropped for lack of space. The Shipper sends the spool to InfluxDB in order, in batches,
// retries what can succeed later and sets aside (quarantines) the points InfluxDB refuses as
// bad data, so that one poisoned message cannot block the stream behind it. Writing a point
// twice is harmless: InfluxDB keeps one point per series and timestamp.
package telemetry
