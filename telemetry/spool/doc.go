// Package spool is the durable queue between the MQTT ingest and the InfluxDB writer. An MQTT
// QoS 1 message is acknowledged to the device only after Append has returned for its data:
// acked means stored.
//
// # Guarantees
//
//   - Durability: once Append returns nil, the record is on disk and fsynced, file and
//     directory entry, so it survives kill -9 and a power loss. (Options.NoSync drops the
//     power-loss half; it is for tests and benchmarks.)
//   - Order: records are read in the order their Appends were taken by the writer, which is
//     their order of arrival; the records of one goroutine, which appends one at a time, keep
//     its order.
//   - At-least-once delivery: Read returns records from the committed cursor without moving
//     it, and Commit moves it durably. After a crash or restart, records read but not
//     committed are read again, so the consumer must be idempotent (InfluxDB writes of the
//     same points are). ReadNext reads on past records read but not yet committed, so that a
//     consumer can store one batch while it reads the next.
//   - Bounded: the segment files never hold more than Options.MaxBytes. Space is freed a
//     segment at a time, when the consumer has committed past all of it.
//   - Backpressure, never loss: when a record does not fit, Append waits for Commit to free
//     space, or returns ctx.Err() when its context ends, in which case the record was not
//     stored. Waiting Appends are served in order of arrival. Nothing is ever dropped to make
//     room; a record that can never fit is refused at once with ErrTooLarge.
//   - Damage is contained: a torn tail left by a crash is cut off on Open; a corrupt record
//     elsewhere (CRC mismatch) makes the reader skip the rest of its segment, counted in
//     Stats.Corrupt, instead of failing.
//
// # On-disk format
//
// The directory holds segment files named by a sequence number in 20 decimal digits, such as
// 00000000000000000001.seg, and a file named cursor. A segment is a sequence of records, each
//
//	length   uint32, big-endian: payload bytes, at least 1
//	crc      uint32, big-endian: CRC-32C (Castagnoli) of the payload
//	payload  length bytes, opaque (the ingest stores line-protocol batches)
//
// with no file header. The writer starts a new segment when the next record would take the
// current one past Options.SegmentBytes, and on every Open, so that segments written before
// a restart are never appended to. A Position is a segment number and the byte offset just
// after a record in it.
//
// The cursor file is the committed Position: segment and offset as big-endian uint64s and the
// CRC-32C of those 16 bytes. It is replaced atomically (temporary file, fsync, rename,
// directory fsync). Segments before the cursor are deleted; a missing cursor file means the
// start of the oldest segment, and so does a damaged one, which is counted as corrupt and
// costs only duplicates.
//
// Empty payloads are refused (ErrEmpty): after a power loss a file system may leave a file
// longer than its data, zero-filled, and eight zero bytes would read as a valid empty record.
//
// # Why group commit
//
// An fsync costs about the same for one record as for a thousand: it waits for the device.
// With one fsync per Append, the spool would take only as many records per second as the
// disk does fsyncs, a few hundred to a few thousand, whatever the number of devices. So a
// single writer goroutine takes everything queued, writes it in one go, fsyncs once and
// then releases all those callers. While it waits on the disk, the next batch queues up: the
// busier the hub, the more records share each fsync, and throughput grows with the number of
// concurrent appenders (one per publishing MQTT client) while each still waits at most about
// two fsyncs. The benchmark BenchmarkAppend reports appends/s and records per fsync.
package spool
