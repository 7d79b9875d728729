package spool

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/lockerhub/lockerhub/internal/atomicfile"
	"github.com/lockerhub/lockerhub/internal/privdir"
)

const (
	// DefaultMaxBytes is the bound used when Options.MaxBytes is 0: 1 GiB.
	DefaultMaxBytes = 1 << 30
	// DefaultSegmentBytes is the segment size used when Options.SegmentBytes is 0: 64 MiB,
	// small next to DefaultMaxBytes so that consumption frees space in small steps.
	DefaultSegmentBytes = 64 << 20
)

// Options configures a Spool. The zero value uses the defaults.
type Options struct {
	// MaxBytes bounds the bytes in segment files, consumed or not, so it is the spool's disk
	// footprint (plus one cursor file). Append blocks while a record does not fit. 0 means
	// DefaultMaxBytes.
	MaxBytes int64
	// SegmentBytes is the size at which the writer starts a new segment file. Space is freed a
	// whole segment at a time, so it should be well below MaxBytes. 0 means DefaultSegmentBytes.
	SegmentBytes int64
	// NoSync skips every fsync, for tests and benchmarks only: records then survive kill -9
	// (the page cache does) but not a power loss.
	NoSync bool
}

// Position is a place in the spool: the segment and the byte offset just after a record.
type Position struct {
	Segment uint64
	Offset  int64
}

func comparePositions(a, b Position) int {
	return cmp.Or(cmp.Compare(a.Segment, b.Segment), cmp.Compare(a.Offset, b.Offset))
}

// Record is one payload read from the spool, with the Position to Commit to consume it.
type Record struct {
	Pos     Position
	Payload []byte
}

// Stats is a snapshot of the spool for metrics.
type Stats struct {
	Records   int64  // records not yet committed; exact, also right after Open
	Bytes     int64  // bytes of those records, headers included
	DiskBytes int64  // bytes in segment files, consumed or not: what MaxBytes bounds
	Segments  int    // segment files
	Queued    int    // Appends waiting for the writer; staying above 0 means backpressure
	Appends   uint64 // records made durable since Open
	Fsyncs    uint64 // fsyncs of appended records since Open: Appends/Fsyncs is the group size
	Corrupt   uint64 // corrupt records found since Open (each costs the rest of its segment)
	Truncated int64  // bytes of torn tail that Open cut off the last segment
}

var (
	// ErrTooLarge is returned by Append for a record larger than MaxBytes or SegmentBytes.
	ErrTooLarge = errors.New("spool: record too large")
	// ErrEmpty is returned by Append for an empty payload, which the format cannot tell from
	// a zero-filled torn tail (see the package documentation).
	ErrEmpty = errors.New("spool: empty record")
	// ErrClosed is returned by every method after Close, and by Appends that were still
	// waiting for space when Close was called.
	ErrClosed = errors.New("spool: closed")
	// ErrBadPosition is returned by Commit for a Position that is not the Pos of a record
	// returned by the latest Read: committing anything else could leave the cursor in the
	// middle of a record.
	ErrBadPosition = errors.New("spool: position not returned by the latest Read")
	// ErrBacklog is returned by Check while records wait to be consumed beyond a twentieth of
	// MaxBytes: the consumer lags (InfluxDB is down or slow), and nothing is lost yet.
	ErrBacklog = errors.New("spool: backlog")
	// ErrNearlyFull is returned by Check once the segment files hold nine tenths of MaxBytes:
	// Appends will soon wait for space, and the hub refuse telemetry.
	ErrNearlyFull = errors.New("spool: nearly full")
)

// segment is what the spool knows about one segment file. It is guarded by Spool.mu.
type segment struct {
	id      uint64
	size    int64 // bytes in the file, counted against MaxBytes
	end     int64 // end of the valid records: readers stop here
	records int64 // valid records not yet committed
	sealed  bool  // no more appends: a reader at end moves on to the next segment
	cut     bool  // a reader found a corrupt record at end: what is written after it is lost
}

// request is one Append waiting for the writer.
type request struct {
	payload []byte
	sum     uint32 // CRC-32C of payload, computed by the caller's goroutine
	state   atomic.Int32
	done    chan struct{} // closed once pos and err are set
	pos     Position
	err     error
}

// States of a request. The writer and a caller whose context ends race for it with a
// compare-and-swap, so that ctx.Err() from Append means the record was never written.
const (
	pending   int32 = iota
	taken           // by the writer: the caller waits for the result
	cancelled       // by the caller: the writer skips it
)

// Spool is a durable, bounded, ordered queue of records in a directory. Append may be called
// from many goroutines; Read and Commit are for a single consumer. A directory is for one
// Spool at a time: nothing locks it, so two processes sharing one would corrupt it.
type Spool struct {
	dir  string
	opts Options

	mu       sync.Mutex
	segs     []*segment // the segment files, in order; the last one is written unless sealed
	cursor   Position   // committed: everything before it is consumed
	queue    []*request
	disk     int64 // Σ segs[i].size
	reserved int64 // bytes of requests the writer has taken but not yet written
	rollReq  bool  // a reader found corruption in the segment being written
	closing  bool
	dataCh   chan struct{} // closed and replaced whenever records become readable

	appends, fsyncs, corrupt atomic.Uint64
	truncated                int64 // set by Open only

	wake    chan struct{} // capacity 1: the writer has something to look at
	closed  chan struct{} // closed by Close
	stopped chan struct{} // closed when the writer has finished
	w       writer        // the writer goroutine's own state
	wErr    error         // from closing the last segment; read after stopped

	rmu      sync.Mutex // serializes Read and Commit, and owns the fields below
	rf       *os.File   // the segment the reader last read, kept open
	rfID     uint64
	rr       *recordReader
	lastRead []Position // Pos of each record the latest Read returned and Commit has not passed
}

// Open opens the spool in dir, creating it if needed. It checks every record after the
// committed cursor, so that Stats is exact and corruption is known, cuts a torn tail off the
// last segment, and seals all existing segments: new records go to a new segment, so a cursor
// can never be ahead of new data.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBytes < 0 || opts.SegmentBytes < 0 {
		return nil, fmt.Errorf("spool: negative size in %+v", opts)
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if err := privdir.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &Spool{
		dir:     dir,
		opts:    opts,
		dataCh:  make(chan struct{}),
		wake:    make(chan struct{}, 1),
		closed:  make(chan struct{}),
		stopped: make(chan struct{}),
		rr:      newRecordReader(),
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	s.w.bw = bufio.NewWriterSize(nil, 256<<10)
	go s.run()
	return s, nil
}

// load reads the cursor and scans the segments.
func (s *Spool) load() error {
	os.Remove(filepath.Join(s.dir, cursorName+atomicfile.TempSuffix)) // a Commit that did not finish
	cursor, err := readCursor(s.dir)
	if errors.Is(err, errCorrupt) {
		// Starting over from the oldest segment delivers some records twice, which the
		// consumer tolerates; refusing to open would stop ingestion.
		s.corrupt.Add(1)
	} else if err != nil {
		return err
	}
	s.cursor = cursor
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	var ids []uint64
	for _, e := range entries {
		if id, ok := parseSegmentName(e.Name()); ok && e.Type().IsRegular() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	s.w.nextID = cursor.Segment + 1
	for i, id := range ids {
		s.w.nextID = max(s.w.nextID, id+1)
		if id < cursor.Segment {
			s.segs = append(s.segs, &segment{id: id, sealed: true}) // consumed: dropped below
			continue
		}
		seg, err := s.scan(id, i == len(ids)-1)
		if err != nil {
			return err
		}
		s.segs = append(s.segs, seg)
		s.disk += seg.size
	}
	s.remove(s.dropConsumedLocked())
	return nil
}

// scan checks segment id from the cursor on. A bad record in the last segment is a write that
// a crash interrupted, and is cut off; in an older one it is damage, and ends the segment.
func (s *Spool) scan(id uint64, last bool) (*segment, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, segmentName(id)), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	seg := &segment{id: id, size: fi.Size(), sealed: true}
	from := int64(0)
	if id == s.cursor.Segment {
		// A cursor past the end means the end was lost (NoSync and a power loss): consumed.
		s.cursor.Offset = min(s.cursor.Offset, seg.size)
		from = s.cursor.Offset
	}
	s.rr.reset(f, from, seg.size)
	var buf []byte
	for {
		buf, err = s.rr.next(buf)
		if err != nil {
			break
		}
		seg.records++
	}
	seg.end = s.rr.off
	switch {
	case err == io.EOF:
	case err != errCorrupt:
		return nil, err
	case last:
		if err := f.Truncate(seg.end); err != nil {
			return nil, err
		}
		if err := s.sync(f); err != nil {
			return nil, err
		}
		s.truncated += seg.size - seg.end
		seg.size = seg.end
	default:
		s.corrupt.Add(1)
	}
	return seg, nil
}

// Append stores payload as the next record and returns its Position once it is durable: on
// disk and fsynced, together with whatever other Appends the writer took in the same batch.
// It blocks while the spool is full, until a Commit frees space or ctx is done; then it
// returns ctx.Err() and the record was not stored. payload must not change until Append
// returns.
func (s *Spool) Append(ctx context.Context, payload []byte) (Position, error) {
	p, err := s.Enqueue(payload)
	if err != nil {
		return Position{}, err
	}
	return p.Wait(ctx)
}

// Pending is a record handed to the writer by Enqueue, on its way to the disk.
type Pending struct {
	s *Spool
	r *request
}

// Enqueue hands payload to the writer as the next record and returns at once; Wait on the
// result learns when it is durable. A caller can so have many records in flight: records keep
// the order of their Enqueue calls, and a batch of them shares an fsync. payload must not
// change until Wait returns. Errors are those of Append that need no waiting (ErrEmpty,
// ErrTooLarge, ErrClosed).
func (s *Spool) Enqueue(payload []byte) (Pending, error) {
	if len(payload) == 0 {
		return Pending{}, ErrEmpty
	}
	if n := recordSize(len(payload)); n > s.opts.MaxBytes || n > s.opts.SegmentBytes || uint64(len(payload)) > math.MaxUint32 {
		return Pending{}, ErrTooLarge
	}
	r := &request{payload: payload, sum: checksum(payload), done: make(chan struct{})}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return Pending{}, ErrClosed
	}
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	s.poke()
	return Pending{s: s, r: r}, nil
}

// Wait returns the record's Position once it is durable, or the error that kept it from the
// disk. If ctx ends while the record still waits for space, the record is withdrawn and Wait
// returns ctx.Err(): it was not stored, and never will be. Once the writer has taken it, Wait
// waits for the outcome whatever ctx says.
func (p Pending) Wait(ctx context.Context) (Position, error) {
	r := p.r
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(pending, cancelled) {
			p.s.poke() // it may have been the request that did not fit
			return Position{}, ctx.Err()
		}
		<-r.done // the writer has it: wait for the outcome rather than guess
	}
	return r.pos, r.err
}

// Settled reports whether Wait would return at once: the record is durable or failed.
func (p Pending) Settled() bool {
	select {
	case <-p.r.done:
		return true
	default:
		return false
	}
}

// Read returns up to max records starting at the committed cursor, at most maxBytes of
// payload unless the first record alone is larger: at least one record. Each record's Payload
// is the caller's: the spool never writes to it again. It blocks until one
// is durable or ctx is done. It does not move the cursor: until Commit, the next Read (or the
// next Open) returns the same records. A corrupt record ends its segment: Read counts it in
// Stats.Corrupt and goes on with the next segment.
func (s *Spool) Read(ctx context.Context, max, maxBytes int) ([]Record, error) {
	s.rmu.Lock()
	s.lastRead = s.lastRead[:0] // a failed Read leaves nothing to commit
	s.rmu.Unlock()
	return s.read(ctx, max, maxBytes)
}

// ReadNext is Read for a consumer that reads ahead while it is still storing what it read: it
// returns the records after the last one returned by the Read or ReadNext calls since the
// latest Read, and Commit takes the Pos of any of them not yet committed, in order. Its wait
// for records does not hold up Commit, so one goroutine can read ahead while another commits.
func (s *Spool) ReadNext(ctx context.Context, max, maxBytes int) ([]Record, error) {
	return s.read(ctx, max, maxBytes)
}

// read returns the records after the last one read since the latest Read, or after the cursor.
func (s *Spool) read(ctx context.Context, max, maxBytes int) ([]Record, error) {
	for {
		select {
		case <-s.closed:
			return nil, ErrClosed
		default:
		}
		s.rmu.Lock()
		recs, dataCh, err := s.readAvailable(max, maxBytes)
		s.rmu.Unlock()
		if err != nil || len(recs) > 0 {
			return recs, err
		}
		select {
		case <-dataCh:
		case <-s.closed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// span is a readable part of a segment.
type span struct {
	id       uint64
	from, to int64
	sealed   bool
}

// readAvailable reads what Read may return now, after the last record read since the latest
// Read or else after the cursor; s.rmu is held. dataCh is closed when more becomes readable.
func (s *Spool) readAvailable(maxRecords, maxBytes int) ([]Record, chan struct{}, error) {
	s.mu.Lock()
	dataCh := s.dataCh
	from := s.cursor
	if n := len(s.lastRead); n > 0 {
		from = s.lastRead[n-1]
	}
	var spans []span
	for _, seg := range s.segs {
		if seg.id < from.Segment {
			continue
		}
		sp := span{id: seg.id, to: seg.end, sealed: seg.sealed}
		if seg.id == from.Segment {
			sp.from = from.Offset
		}
		spans = append(spans, sp)
	}
	s.mu.Unlock()

	maxRecords = max(maxRecords, 1) // at least one record, whatever the limits
	var recs []Record
	bytes := 0
spans:
	for _, sp := range spans {
		if sp.from < sp.to {
			if err := s.openForRead(sp.id); err != nil {
				return nil, nil, err
			}
			s.rr.reset(s.rf, sp.from, sp.to)
			// Records of the segment not yet committed: those read ahead before this call too.
			valid := int64(0)
			for _, p := range s.lastRead {
				if p.Segment == sp.id {
					valid++
				}
			}
			for len(recs) < maxRecords {
				p, err := s.rr.next(nil)
				if err == io.EOF {
					break
				}
				if err == errCorrupt {
					s.markCorrupt(sp.id, s.rr.off, valid)
					break
				}
				if err != nil {
					return nil, nil, err
				}
				if len(recs) > 0 && bytes+len(p) > maxBytes {
					break spans
				}
				bytes += len(p)
				valid++
				recs = append(recs, Record{Pos: Position{Segment: sp.id, Offset: s.rr.off}, Payload: p})
			}
		}
		if len(recs) == maxRecords || !sp.sealed {
			break
		}
	}
	for _, r := range recs {
		s.lastRead = append(s.lastRead, r.Pos)
	}
	return recs, dataCh, nil
}

// openForRead makes s.rf the open segment id.
func (s *Spool) openForRead(id uint64) error {
	if s.rf != nil && s.rfID == id {
		return nil
	}
	if s.rf != nil {
		s.rf.Close() // read-only: nothing to lose
		s.rf = nil
	}
	f, err := os.Open(filepath.Join(s.dir, segmentName(id)))
	if err != nil {
		return err
	}
	s.rf, s.rfID = f, id
	return nil
}

// markCorrupt ends segment id at off, where the reader found a corrupt record after valid
// unconsumed ones; the rest of the segment is lost. If it is the segment being written, the
// writer moves to a new one so that no more records are lost.
func (s *Spool) markCorrupt(id uint64, off, valid int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.segs, func(seg *segment) bool { return seg.id == id })
	if i < 0 || off >= s.segs[i].end {
		return // consumed meanwhile, or already cut here
	}
	seg := s.segs[i]
	seg.end, seg.records, seg.cut = off, valid, true
	s.corrupt.Add(1)
	if !seg.sealed {
		s.rollReq = true
		s.poke()
	}
}

// Commit marks everything up to pos, the Pos of a record returned by the latest Read, as
// consumed. The cursor is durable when Commit returns: a restart resumes after pos. Segments
// consumed entirely are deleted, which frees space for blocked Appends. Committing the cursor
// again does nothing.
func (s *Spool) Commit(pos Position) error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	i, found := slices.BinarySearchFunc(s.lastRead, pos, comparePositions)
	if !found {
		if pos == s.cursor {
			return nil
		}
		return ErrBadPosition
	}
	if err := s.writeCursor(pos); err != nil {
		return err
	}
	s.mu.Lock()
	j := 0
	for _, p := range s.lastRead[:i+1] {
		for s.segs[j].id < p.Segment {
			j++
		}
		s.segs[j].records--
	}
	s.cursor = pos
	consumed := s.dropConsumedLocked()
	s.mu.Unlock()
	s.lastRead = s.lastRead[i+1:]
	s.remove(consumed)
	s.poke() // space may be free, or the segment being written fully consumed
	return nil
}

// writeCursor makes pos the committed cursor on disk, all or nothing: a crash leaves the old
// cursor or the new one. The directory is synced after the rename so that a power loss cannot
// keep the rename but lose the content.
func (s *Spool) writeCursor(pos Position) error {
	return atomicfile.Write(s.dir, cursorName, encodeCursor(pos), !s.opts.NoSync)
}

// dropConsumedLocked takes the consumed segments off the front of s.segs and returns their
// paths for s.remove. A segment is consumed once it is sealed and the cursor is past its last
// valid record; the one being written is never dropped (see writer.claim for how it is freed).
func (s *Spool) dropConsumedLocked() []string {
	var paths []string
	for len(s.segs) > 0 {
		seg := s.segs[0]
		start := int64(0)
		if seg.id == s.cursor.Segment {
			start = s.cursor.Offset
		}
		if !seg.sealed || seg.id > s.cursor.Segment && seg.end > 0 || seg.id == s.cursor.Segment && start < seg.end {
			break
		}
		paths = append(paths, filepath.Join(s.dir, segmentName(seg.id)))
		s.disk -= seg.size
		s.segs[0] = nil
		s.segs = s.segs[1:]
	}
	return paths
}

// remove deletes consumed segment files. Neither errors nor a power loss matter: a consumed
// segment left behind is before the cursor, and the next Open deletes it again.
func (s *Spool) remove(paths []string) {
	for _, p := range paths {
		os.Remove(p)
	}
}

// Stats returns the spool's current figures.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		DiskBytes: s.disk,
		Segments:  len(s.segs),
		Queued:    len(s.queue),
		Appends:   s.appends.Load(),
		Fsyncs:    s.fsyncs.Load(),
		Corrupt:   s.corrupt.Load(),
		Truncated: s.truncated,
	}
	for _, seg := range s.segs {
		st.Records += seg.records
		st.Bytes += seg.end
		if seg.id == s.cursor.Segment {
			st.Bytes -= min(s.cursor.Offset, seg.end)
		}
	}
	return st
}

// Check is a readiness check: nil, or an error wrapping ErrBacklog or ErrNearlyFull that says
// how much waits.
func (s *Spool) Check(context.Context) error {
	st := s.Stats()
	waiting := fmt.Sprintf("%d records (%d MiB) waiting, %d of %d MiB on disk", st.Records, st.Bytes>>20, st.DiskBytes>>20, s.opts.MaxBytes>>20)
	switch {
	case st.DiskBytes >= s.opts.MaxBytes/10*9:
		return fmt.Errorf("%w: %s", ErrNearlyFull, waiting)
	case st.Bytes >= s.opts.MaxBytes/20:
		return fmt.Errorf("%w: %s", ErrBacklog, waiting)
	}
	return nil
}

// Corrupt returns the number of corrupt records found since Open, as in Stats.
func (s *Spool) Corrupt() int { return int(s.corrupt.Load()) }

// Close writes what the writer can still take, fails the Appends still waiting for space with
// ErrClosed, and closes the files. Every method returns ErrClosed afterwards, Close included.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closing = true
	close(s.closed)
	s.mu.Unlock()
	s.poke()
	<-s.stopped
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.rf != nil {
		s.rf.Close() // read-only: nothing to lose
	}
	return s.wErr
}

// poke wakes the writer. The channel holds one token, so a wake-up is never lost and never
// blocks.
func (s *Spool) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// sync fsyncs f unless NoSync.
func (s *Spool) sync(f *os.File) error {
	if s.opts.NoSync {
		return nil
	}
	return f.Sync()
}

// syncDir makes a file's creation or rename in the spool's directory durable.
func (s *Spool) syncDir() error {
	if s.opts.NoSync {
		return nil
	}
	return atomicfile.SyncDir(s.dir)
}
