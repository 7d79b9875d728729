package agent

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/lockerhub/lockerhub/internal/atomicfile"
)

// Lane is one of the outbox's two queues. The sender drains LaneEvents before LaneTelemetry,
// so a live door event is never stuck behind a backlog of snapshots; within a lane, entries
// leave in the order they were put.
type Lane int

const (
	// LaneEvents holds door events and command results. They are never dropped: each one is
	// a fact the hub cannot learn any other way.
	LaneEvents Lane = iota
	// LaneTelemetry holds periodic snapshots. When the outbox is full the oldest are dropped,
	// because a newer snapshot supersedes them.
	LaneTelemetry
	numLanes
)

// laneNames are the lanes' names, which are also their directories in the outbox.
var laneNames = [numLanes]string{"events", "telemetry"}

// String returns the lane's name, which is also its directory in the outbox.
func (l Lane) String() string {
	if l.valid() {
		return laneNames[l]
	}
	return "Lane(" + strconv.Itoa(int(l)) + ")"
}

func (l Lane) valid() bool { return l >= 0 && l < numLanes }

// Entry is one message in the outbox.
type Entry struct {
	ID      uint64 // outbox order: strictly increasing across lanes and restarts
	Lane    Lane
	Seq     uint64 // the device's sequence number, as given to Put
	Topic   string
	Payload []byte
}

// size is what an entry counts against OutboxOptions.MaxBytes.
func (e Entry) size() int64 { return int64(len(e.Topic) + len(e.Payload)) }

// OutboxOptions configures an Outbox.
type OutboxOptions struct {
	// MaxBytes bounds the topic+payload bytes of all pending entries; it must be positive.
	// Telemetry is dropped to stay within it; events are not (see Outbox).
	MaxBytes int64
	// Fsync makes every Put survive a power loss; see Outbox for what survives without it.
	Fsync bool
}

// ErrOutboxFull is returned by Put for a telemetry entry that does not fit within MaxBytes
// even after dropping every older snapshot: it is larger than MaxBytes by itself, or events
// fill the outbox. The refused snapshot counts as dropped, since the hub never gets it.
var ErrOutboxFull = errors.New("outbox full")

// ErrOutboxClosed is returned by Put and Ack after Close.
var ErrOutboxClosed = errors.New("outbox closed")

// On-disk layout. Every file the outbox writes is a record: a 5-byte magic, then the CRC-32
// (IEEE, big-endian) of the rest of the file, then a body whose integers are big-endian.
//
//	entry  events/<id> or telemetry/<id>, <id> the ID as 20 zero-padded decimal digits:
//	       "LHOB1" crc32 | seq uint64, topic length uint16, topic, payload (the rest of the file)
//	meta   meta: "LHOM1" crc32 | seq uint64, id uint64
//
// The CRC covers the body to the last byte, so a truncated file fails it just like a
// damaged one.
const (
	entryMagic   = "LHOB1"
	metaMagic    = "LHOM1"
	magicLen     = 5
	recordHeader = magicLen + 4 // magic + CRC
	entryFixed   = 8 + 2        // seq + topic length
	metaLen      = 8 + 8        // seq + id
	idDigits     = 20
	metaName     = "meta"
	corruptDir   = "corrupt"
)

var errTruncated = errors.New("truncated")

// Outbox is the agent's store-and-forward queue: every message goes in with Put before it is
// published and stays, on disk, until the hub acknowledges it with Ack, so that nothing put is
// lost while the network or the hub is down or the agent restarts. After a restart, OpenOutbox
// replays the pending entries in their original order with their original bytes.
//
// What survives what depends on OutboxOptions.Fsync:
//
//   - Fsync true: once Put returns, the entry survives a process crash, kill -9 and a power
//     loss: its file is fsynced before it is renamed into place and the directory is fsynced
//     after. The meta file (see LastSeq) is likewise fsynced before any entry file is deleted.
//     Deletions themselves are not synced, so after a power loss an acknowledged entry may
//     come back and be sent again; the hub discards it as a duplicate by seq.
//   - Fsync false: once Put returns, the entry survives a process crash or kill -9, because it
//     is in the kernel's page cache, but a power loss or kernel crash loses whatever the kernel
//     had not written back yet: the last seconds of entries (up to about half a minute with
//     Linux's default writeback), which leaves a gap in seq, and possibly a recent meta file,
//     so that LastSeq may come back lower than a seq the hub already has and the hub takes the
//     reused numbers for duplicates. A file torn by the power loss is moved to corrupt/.
//
// The bound: MaxBytes counts the topic and payload bytes of all pending entries (file headers
// and filesystem overhead come on top). When a Put would exceed it, the oldest telemetry
// entries are dropped until the new entry fits (all of them if it does not fit beside the
// events), and counted for TakeDropped. Events are never dropped: while events alone exceed
// MaxBytes the outbox grows past it, on disk and in memory, for as long as the hub stays
// away, and telemetry is refused with ErrOutboxFull meanwhile.
//
// The whole index, payloads included, is kept in memory (about Bytes() of it), so Pending,
// Len and Bytes never touch the disk. Only one Outbox may use a directory at a time.
// An Outbox is safe for concurrent use.
type Outbox struct {
	dir    string
	opts   OutboxOptions
	notify chan struct{}

	mu      sync.Mutex
	lanes   [numLanes][]Entry // pending entries, each lane in ID order
	bytes   [numLanes]int64   // Entry.size of each lane's entries
	nextID  uint64
	lastSeq uint64     // the highest seq ever put
	meta    outboxMeta // as last written to or read from the meta file
	dropped uint64
	corrupt int
	closed  bool
}

// outboxMeta is what must outlive the entries: the highest seq and ID put so far, so that both
// keep increasing after every entry was acknowledged and the agent restarted.
type outboxMeta struct{ seq, id uint64 }

// OpenOutbox opens the outbox in dir, creating it if needed. It loads the pending entries,
// moves files that fail their checksum or are truncated to dir/corrupt (see Corrupt), removes
// temporary files left by an interrupted write and, if MaxBytes was lowered since the last
// run, drops the oldest telemetry to get within it.
func OpenOutbox(dir string, opts OutboxOptions) (*Outbox, error) {
	if opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("outbox: MaxBytes must be positive, got %d", opts.MaxBytes)
	}
	o := &Outbox{dir: dir, opts: opts, notify: make(chan struct{}, 1), nextID: 1}
	for _, name := range laneNames {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o700); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
	}
	if opts.Fsync {
		// The directories must be durable themselves, or a power loss could take a lane
		// directory, with the entries synced into it, along.
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := atomicfile.SyncDir(d); err != nil {
				return nil, fmt.Errorf("outbox: %w", err)
			}
		}
	}
	if err := o.loadMeta(); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	for l := range numLanes {
		if err := o.loadLane(l); err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
	}
	if err := o.makeRoomLocked(0); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *Outbox) loadMeta() error {
	path := filepath.Join(o.dir, metaName)
	if err := removeIfExists(path + atomicfile.TempSuffix); err != nil {
		return err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	body, err := openRecord(metaMagic, b)
	if err == nil && len(body) != metaLen {
		err = errTruncated
	}
	if err != nil {
		return o.quarantine(path, metaName)
	}
	o.meta = outboxMeta{seq: binary.BigEndian.Uint64(body), id: binary.BigEndian.Uint64(body[8:])}
	o.lastSeq, o.nextID = o.meta.seq, o.meta.id+1
	return nil
}

// loadLane reads lane l's files in name order, which is ID order thanks to the zero padding.
func (o *Outbox) loadLane(l Lane) error {
	dir := filepath.Join(o.dir, l.String())
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		name, path := de.Name(), filepath.Join(dir, de.Name())
		if strings.HasSuffix(name, atomicfile.TempSuffix) {
			// A Put that died before its rename never returned, so nothing was promised.
			if err := removeIfExists(path); err != nil {
				return err
			}
			continue
		}
		id, ok := parseEntryName(name)
		if !ok || !de.Type().IsRegular() {
			continue // not ours: leave it alone
		}
		// Even a damaged file's ID was handed out; never hand it out again.
		o.nextID = max(o.nextID, id+1)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		e, err := decodeEntry(b)
		if err != nil {
			if err := o.quarantine(path, l.String()+"-"+name); err != nil {
				return err
			}
			continue
		}
		e.ID, e.Lane = id, l
		o.lanes[l] = append(o.lanes[l], e)
		o.bytes[l] += e.size()
		o.lastSeq = max(o.lastSeq, e.Seq)
	}
	return nil
}

// quarantine moves a damaged file to the corrupt directory as name, where it can be examined
// but is never replayed, and counts it.
func (o *Outbox) quarantine(path, name string) error {
	dir := filepath.Join(o.dir, corruptDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Rename(path, filepath.Join(dir, name)); err != nil {
		return err
	}
	o.corrupt++
	return nil
}

// Put appends an entry to lane and returns it with its ID; the entry is on disk, as durable as
// OutboxOptions.Fsync makes it, when Put returns. seq must be above LastSeq: the hub takes a
// number it has seen for a duplicate, so a reused one would be a silent loss. Put keeps its
// own copy of payload. To make room it drops the oldest telemetry (see Outbox); a telemetry
// entry that cannot fit even so is refused with ErrOutboxFull. On error nothing was stored.
func (o *Outbox) Put(lane Lane, seq uint64, topic string, payload []byte) (Entry, error) {
	if !lane.valid() {
		return Entry{}, fmt.Errorf("outbox: invalid lane %d", int(lane))
	}
	if len(topic) > math.MaxUint16 {
		return Entry{}, fmt.Errorf("outbox: topic of %d bytes is longer than %d", len(topic), math.MaxUint16)
	}
	e := Entry{Lane: lane, Seq: seq, Topic: topic, Payload: bytes.Clone(payload)}

	// The file I/O happens under the lock: IDs must reach the index in the order they are
	// assigned, or the sender could send (and the hub see) a later entry before an earlier one.
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return Entry{}, ErrOutboxClosed
	}
	if seq <= o.lastSeq {
		return Entry{}, fmt.Errorf("outbox: seq %d is not above the last seq %d", seq, o.lastSeq)
	}
	if lane == LaneTelemetry && o.bytes[LaneEvents]+e.size() > o.opts.MaxBytes {
		o.dropped++
		return Entry{}, fmt.Errorf("%w: a telemetry entry of %d bytes does not fit beside %d bytes of events within %d",
			ErrOutboxFull, e.size(), o.bytes[LaneEvents], o.opts.MaxBytes)
	}
	if err := o.makeRoomLocked(e.size()); err != nil {
		return Entry{}, err
	}
	e.ID = o.nextID
	dir, name := filepath.Join(o.dir, lane.String()), entryName(e.ID)
	if err := atomicfile.Write(dir, name, encodeEntry(e), o.opts.Fsync); err != nil {
		// The rename may have happened with only the directory sync failing; a file left
		// behind would come back after a restart with a seq the agent is about to reuse.
		os.Remove(filepath.Join(dir, name))
		return Entry{}, fmt.Errorf("outbox: write entry: %w", err)
	}
	o.nextID++
	o.lastSeq = seq
	o.lanes[lane] = append(o.lanes[lane], e)
	o.bytes[lane] += e.size()
	signal(o.notify)
	e.Payload = payload // the caller's own bytes: the index keeps its copy to itself
	return e, nil
}

// makeRoomLocked drops the oldest telemetry until need more bytes fit within MaxBytes or no
// telemetry is left.
func (o *Outbox) makeRoomLocked(need int64) error {
	for o.bytes[LaneEvents]+o.bytes[LaneTelemetry]+need > o.opts.MaxBytes && len(o.lanes[LaneTelemetry]) > 0 {
		n := len(o.lanes[LaneTelemetry])
		err := o.deleteLocked(LaneTelemetry, 0)
		if len(o.lanes[LaneTelemetry]) < n {
			o.dropped++ // the hub will not get it, even if its file outlived the error
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Pending returns up to limit entries in send order: every events-lane entry by ID, then the
// telemetry-lane entries by ID. The entries are copies, safe to keep and use while further
// Puts and Acks happen. A limit below 1 returns nothing.
func (o *Outbox) Pending(limit int) []Entry {
	o.mu.Lock()
	defer o.mu.Unlock()
	if limit < 1 {
		return nil
	}
	out := make([]Entry, 0, min(limit, len(o.lanes[LaneEvents])+len(o.lanes[LaneTelemetry])))
	for _, lane := range o.lanes {
		for _, e := range lane[:min(len(lane), limit-len(out))] {
			e.Payload = bytes.Clone(e.Payload)
			out = append(out, e)
		}
	}
	return out
}

// Ack deletes entry id, which the hub has acknowledged. An unknown id is no error: the entry
// may have been dropped, or acknowledged already. If deleting its file fails, the entry is
// still gone from Pending (the hub has it) but comes back after a restart and is sent again.
func (o *Outbox) Ack(id uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrOutboxClosed
	}
	for l, lane := range o.lanes {
		if i, ok := slices.BinarySearchFunc(lane, id, func(e Entry, id uint64) int { return cmp.Compare(e.ID, id) }); ok {
			return o.deleteLocked(Lane(l), i)
		}
	}
	return nil
}

// deleteLocked removes the i-th entry of lane l from the index and the disk. The highest seq
// and ID put so far must stay recoverable, from a pending entry or from the meta file; so
// unless the newest entry, which records both, stays pending, they are written to the meta
// file before the entry file goes. Acknowledging the oldest entries and dropping the oldest
// telemetry, the common cases while a backlog exists, therefore write no meta file.
//
// If the meta file cannot be written, nothing is deleted. If only the entry file cannot be
// removed, the entry is gone from the index all the same and comes back after a restart.
func (o *Outbox) deleteLocked(l Lane, i int) error {
	e := o.lanes[l][i]
	if m := (outboxMeta{seq: o.lastSeq, id: o.nextID - 1}); o.meta != m && !o.keepsLocked(m, e.ID) {
		if err := atomicfile.Write(o.dir, metaName, encodeMeta(m), o.opts.Fsync); err != nil {
			return fmt.Errorf("outbox: write meta: %w", err)
		}
		o.meta = m
	}
	if i == 0 {
		o.lanes[l][0] = Entry{} // release the payload; the sender acknowledges from the front
		o.lanes[l] = o.lanes[l][1:]
	} else {
		o.lanes[l] = slices.Delete(o.lanes[l], i, i+1)
	}
	o.bytes[l] -= e.size()
	if err := removeIfExists(filepath.Join(o.dir, l.String(), entryName(e.ID))); err != nil {
		return fmt.Errorf("outbox: delete entry: %w", err)
	}
	return nil
}

// keepsLocked reports whether an entry other than entry id records m, the highest seq and ID.
// Only the newest entry of a lane can.
func (o *Outbox) keepsLocked(m outboxMeta, id uint64) bool {
	for _, lane := range o.lanes {
		if n := len(lane); n > 0 && lane[n-1].ID != id && lane[n-1].ID == m.id && lane[n-1].Seq == m.seq {
			return true
		}
	}
	return false
}

// Notify returns a channel that receives after every Put, so that a sender can sleep until
// there is work. It holds at most one signal, and Put never blocks on it, so a burst of Puts
// wakes the sender once: the sender must drain Pending after every wake-up.
func (o *Outbox) Notify() <-chan struct{} { return o.notify }

// Len returns the number of pending entries.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.lanes[LaneEvents]) + len(o.lanes[LaneTelemetry])
}

// Bytes returns the topic+payload bytes of the pending entries, the quantity MaxBytes bounds.
// It exceeds MaxBytes only while events alone do.
func (o *Outbox) Bytes() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.bytes[LaneEvents] + o.bytes[LaneTelemetry]
}

// TakeDropped returns how many telemetry entries were dropped or refused for lack of room
// since the previous call, and resets the count, so the agent can report each drop once. The
// count lives in memory only: a restart loses a count not yet taken and reported.
func (o *Outbox) TakeDropped() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.dropped
	o.dropped = 0
	return n
}

// LastSeq returns the highest seq ever put into this outbox directory, even if every entry
// has since been acknowledged or dropped and the agent restarted: the larger of the pending
// entries' highest seq and the one recorded in the meta file. It is 0 for a new outbox. The
// agent numbers its next message LastSeq()+1.
func (o *Outbox) LastSeq() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastSeq
}

// Corrupt returns how many damaged or truncated files OpenOutbox moved to the corrupt
// directory. Their entries are lost; if one held the highest seq, LastSeq is lower than it.
func (o *Outbox) Corrupt() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.corrupt
}

// Close makes further Puts and Acks fail with ErrOutboxClosed. It flushes nothing, since each
// Put left its entry as durable as it will be, and the pending entries stay on disk for the
// next OpenOutbox. Close is idempotent.
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	return nil
}

func entryName(id uint64) string { return fmt.Sprintf("%0*d", idDigits, id) }

func parseEntryName(name string) (uint64, bool) {
	if len(name) != idDigits {
		return 0, false
	}
	id, err := strconv.ParseUint(name, 10, 64)
	return id, err == nil
}

func encodeEntry(e Entry) []byte {
	b := newRecord(entryMagic, entryFixed+len(e.Topic)+len(e.Payload))
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Topic)))
	b = append(b, e.Topic...)
	return sealRecord(append(b, e.Payload...))
}

// decodeEntry returns the entry in b without ID and lane, which the file's name and directory
// carry. The payload aliases b.
func decodeEntry(b []byte) (Entry, error) {
	body, err := openRecord(entryMagic, b)
	if err != nil {
		return Entry{}, err
	}
	if len(body) < entryFixed {
		return Entry{}, errTruncated
	}
	n := entryFixed + int(binary.BigEndian.Uint16(body[8:]))
	if len(body) < n {
		return Entry{}, errTruncated
	}
	return Entry{Seq: binary.BigEndian.Uint64(body), Topic: string(body[entryFixed:n]), Payload: body[n:]}, nil
}

func encodeMeta(m outboxMeta) []byte {
	b := newRecord(metaMagic, metaLen)
	b = binary.BigEndian.AppendUint64(b, m.seq)
	return sealRecord(binary.BigEndian.AppendUint64(b, m.id))
}

// newRecord starts a record with room for bodyLen bytes of body, to be appended and then
// sealed with sealRecord.
func newRecord(magic string, bodyLen int) []byte {
	b := make([]byte, recordHeader, recordHeader+bodyLen)
	copy(b, magic)
	return b
}

func sealRecord(b []byte) []byte {
	binary.BigEndian.PutUint32(b[magicLen:], crc32.ChecksumIEEE(b[recordHeader:]))
	return b
}

// openRecord checks a record's magic and CRC and returns its body.
func openRecord(magic string, b []byte) ([]byte, error) {
	if len(b) < recordHeader {
		return nil, errTruncated
	}
	if string(b[:magicLen]) != magic {
		return nil, errors.New("bad magic")
	}
	body := b[recordHeader:]
	if crc32.ChecksumIEEE(body) != binary.BigEndian.Uint32(b[magicLen:]) {
		return nil, errors.New("checksum mismatch")
	}
	return body, nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
