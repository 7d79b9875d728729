package spool

import (
	"bufio"
	"os"
	"path/filepath"
)

// writer is the state of the writer goroutine, which alone writes segments. Only the writer
// goroutine touches it, except that Open sets nextID before starting it.
type writer struct {
	f         *os.File // the segment being written; nil until the next record needs one
	seg       *segment // f's entry in Spool.segs
	bw        *bufio.Writer
	size      int64 // bytes written to f, including those still in bw
	published int64 // bytes of f that readers may see: written and synced
	nextID    uint64
	batch     []*request // claim's result, reused from one group commit to the next
}

// run is the writer goroutine: it takes every queued request that fits, writes them to the
// segment in one go, fsyncs once and only then releases their callers. While it writes and
// syncs, new requests queue up and make the next batch, so the more appenders wait on an
// fsync, the more records share the next one.
func (s *Spool) run() {
	defer close(s.stopped)
	for {
		batch, roll, stop := s.claim(s.w.batch[:0])
		if roll {
			// The segment is done with: its data was synced when its last batch was.
			s.seal()
		}
		if len(batch) > 0 {
			s.write(batch)
			clear(batch) // keep no payload alive until the next commit
		}
		s.w.batch = batch[:0]
		if stop {
			s.wErr = s.seal()
			return
		}
		if len(batch) == 0 && !roll {
			<-s.wake
		}
	}
}

// claim takes, in queue order, the requests that fit within MaxBytes, appends them to batch and
// reserves their space.
// It stops at the first one that does not fit, so that a large record is not overtaken
// forever by small ones and order across goroutines is the order of arrival. roll asks to
// seal the segment being written: a reader found corruption in it, or the spool is full and
// that segment is all that is left, fully consumed, which only a new segment can free. On
// Close, stop is set and the requests that do not fit fail with ErrClosed.
func (s *Spool) claim(batch []*request) (_ []*request, roll, stop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	i := 0
	for ; i < len(q); i++ {
		r := q[i]
		n := recordSize(len(r.payload))
		if r.state.Load() != cancelled && s.disk+s.reserved+n > s.opts.MaxBytes {
			break
		}
		if r.state.CompareAndSwap(pending, taken) {
			s.reserved += n
			batch = append(batch, r)
		}
	}
	// Keep the rest at the front of the same array, and clear the taken ones so that the
	// array does not keep their payloads alive.
	rest := copy(q, q[i:])
	clear(q[rest:])
	s.queue = q[:rest]
	if i < len(q) && len(batch) == 0 && len(s.segs) > 0 {
		last := s.segs[len(s.segs)-1]
		roll = !last.sealed && last.size > 0 && s.cursor == Position{Segment: last.id, Offset: last.end}
	}
	roll = roll || s.rollReq
	s.rollReq = false
	if s.closing {
		for _, r := range s.queue {
			if r.state.CompareAndSwap(pending, taken) {
				r.err = ErrClosed
				close(r.done)
			}
		}
		s.queue = nil
		stop = true
	}
	return batch, roll, stop
}

// write appends batch to the segments, starting new ones as they fill up, and releases each
// caller with its Position once its record is synced, or with the error that prevented it.
func (s *Spool) write(batch []*request) {
	var err error
	durable := 0 // batch[:durable] is synced
	for i, r := range batch {
		n := recordSize(len(r.payload))
		if s.w.f != nil && s.w.size+n > s.opts.SegmentBytes {
			if err = s.flush(i - durable); err != nil {
				break
			}
			durable = i
			s.seal() // synced by the flush: an error closing it cannot lose records
		}
		if s.w.f == nil {
			if err = s.create(); err != nil {
				break
			}
		}
		var h [headerSize]byte
		putHeader(&h, r.payload, r.sum)
		s.w.bw.Write(h[:]) // a write error stays in bw and comes out of Flush
		s.w.bw.Write(r.payload)
		s.w.size += n
		r.pos = Position{Segment: s.w.seg.id, Offset: s.w.size}
	}
	if err == nil {
		if err = s.flush(len(batch) - durable); err == nil {
			durable = len(batch)
		}
	}
	if err != nil {
		s.abandon(batch[durable:])
	}
	for i, r := range batch {
		if i >= durable {
			r.err = err
		}
		close(r.done)
	}
}

// flush writes out the buffer, fsyncs, and publishes the records written since the last
// flush to the readers and to the space accounting.
func (s *Spool) flush(records int) error {
	if s.w.size == s.w.published {
		return nil
	}
	if err := s.w.bw.Flush(); err != nil {
		return err
	}
	if !s.opts.NoSync {
		s.fsyncs.Add(1)
	}
	if err := s.sync(s.w.f); err != nil {
		return err
	}
	grow := s.w.size - s.w.published
	s.w.published = s.w.size
	s.mu.Lock()
	defer s.mu.Unlock()
	seg := s.w.seg
	seg.size += grow
	if !seg.cut { // after a corrupt record nothing in the segment is readable
		seg.end += grow
		seg.records += int64(records)
	}
	s.disk += grow
	s.reserved -= grow
	s.appends.Add(uint64(records))
	close(s.dataCh)
	s.dataCh = make(chan struct{})
	return nil
}

// abandon handles a failed write or fsync: it gives back the space of the failed requests and
// seals the segment, cut back to what was published, so that whatever part of the batch
// reached the file is not followed by further records. After a failed fsync, Linux may
// report later ones as successful without the data being on disk, so the segment must not be
// trusted with more records.
func (s *Spool) abandon(failed []*request) {
	if s.w.f != nil {
		s.w.f.Truncate(s.w.published) // best effort: otherwise the next Open finds the rest corrupt
		s.seal()
	}
	s.mu.Lock()
	for _, r := range failed {
		s.reserved -= recordSize(len(r.payload))
	}
	s.mu.Unlock()
}

// create starts the next segment. Its directory entry is synced before any record in it is
// acknowledged, since a power loss could otherwise lose the whole file.
func (s *Spool) create() error {
	path := filepath.Join(s.dir, segmentName(s.w.nextID))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := s.syncDir(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	seg := &segment{id: s.w.nextID}
	s.w.nextID++
	s.mu.Lock()
	s.segs = append(s.segs, seg)
	s.mu.Unlock()
	s.w.f, s.w.seg, s.w.size, s.w.published = f, seg, 0, 0
	s.w.bw.Reset(f)
	return nil
}

// seal closes the segment being written, if any, so that the next record starts a new one,
// and deletes it if it is already consumed.
func (s *Spool) seal() error {
	if s.w.f == nil {
		return nil
	}
	err := s.w.f.Close()
	s.w.f = nil
	s.mu.Lock()
	s.w.seg.sealed = true
	consumed := s.dropConsumedLocked()
	s.mu.Unlock()
	s.remove(consumed)
	return err
}
