package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openSpool(t *testing.T, dir string, opts Options) *Spool {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// names returns n payloads prefix-000, prefix-001, …: all the same length.
func names(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%03d", prefix, i))
	}
	return out
}

func appendAll(t *testing.T, s *Spool, payloads []string) []Position {
	t.Helper()
	var pos []Position
	for _, p := range payloads {
		at, err := s.Append(context.Background(), []byte(p))
		if err != nil {
			t.Fatalf("Append(%q): %v", p, err)
		}
		pos = append(pos, at)
	}
	return pos
}

// drain reads and commits everything the spool holds, a few records per Read so that reads
// cross segment boundaries, and returns the records in order.
func drain(t *testing.T, s *Spool) []Record {
	t.Helper()
	var all []Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		recs, err := s.Read(ctx, 7, 1<<20)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return all
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if err := s.Commit(recs[len(recs)-1].Pos); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		all = append(all, recs...)
	}
}

func payloads(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Payload))
	}
	return out
}

func TestOrderAcrossSegments(t *testing.T) {
	const n = 40
	size := recordSize(len(names("record", 1)[0]))
	tests := []struct {
		name         string
		segmentBytes int64
		wantSegments int
	}{
		{"one record per segment", size, n},
		{"three records per segment", 3*size + 2, (n + 2) / 3},
		{"default segment size", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, dir, Options{SegmentBytes: tt.segmentBytes, NoSync: true})
			want := names("record", n)
			pos := appendAll(t, s, want)
			if !slices.IsSortedFunc(pos, comparePositions) {
				t.Errorf("Append positions out of order: %v", pos)
			}
			if got := s.Stats().Segments; got != tt.wantSegments {
				t.Errorf("Segments = %d, want %d", got, tt.wantSegments)
			}
			if _, err := os.Stat(filepath.Join(dir, "00000000000000000001.seg")); err != nil {
				t.Errorf("first segment file: %v", err)
			}
			recs := drain(t, s)
			if got := payloads(recs); !slices.Equal(got, want) {
				t.Fatalf("read %q, want %q", got, want)
			}
			for i, r := range recs {
				if r.Pos != pos[i] {
					t.Errorf("record %d at %v, Append said %v", i, r.Pos, pos[i])
				}
			}
		})
	}
}

func TestReopenResumesAtCommittedCursor(t *testing.T) {
	const n = 10
	want := names("rec", n)
	size := recordSize(len(want[0]))
	tests := []struct {
		committed    int // records committed before the restart
		wantSegments int // after the restart: 3 records per segment, consumed ones deleted
	}{
		{0, 4},
		{2, 4},
		{3, 3},
		{n, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("committed %d", tt.committed), func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: 3 * size}
			s := openSpool(t, dir, opts)
			appendAll(t, s, want)
			recs, err := s.Read(context.Background(), n, 1<<20)
			if err != nil || len(recs) != n {
				t.Fatalf("Read = %d records, %v; want %d", len(recs), err, n)
			}
			if tt.committed > 0 {
				if err := s.Commit(recs[tt.committed-1].Pos); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s = openSpool(t, dir, opts)
			left := n - tt.committed
			st := s.Stats()
			if st.Records != int64(left) || st.Bytes != int64(left)*size || st.Segments != tt.wantSegments {
				t.Errorf("after reopen: Records %d, Bytes %d, Segments %d; want %d, %d, %d",
					st.Records, st.Bytes, st.Segments, left, int64(left)*size, tt.wantSegments)
			}
			appendAll(t, s, []string{"after"})
			if got, want := payloads(drain(t, s)), append(want[tt.committed:n:n], "after"); !slices.Equal(got, want) {
				t.Errorf("read %q, want %q", got, want)
			}
		})
	}
}

// encodeRecord is a record as the writer lays it out.
func encodeRecord(p string) []byte {
	var h [headerSize]byte
	putHeader(&h, []byte(p), checksum([]byte(p)))
	return append(h[:], p...)
}

func appendToFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestTornTailIsCutOff(t *testing.T) {
	badCRC := encodeRecord("bad-crc")
	badCRC[5] ^= 0xff
	tests := []struct {
		name string
		tail []byte
		keep []string // valid records at the start of tail
	}{
		{"partial header", []byte{0, 0, 0}, nil},
		{"header without payload", encodeRecord("lost-payload")[:headerSize], nil},
		{"partial payload", encodeRecord("lost-payload")[:headerSize+4], nil},
		{"bad crc", badCRC, nil},
		{"zero fill", make([]byte, 64), nil},
		{"valid record then garbage", append(encodeRecord("kept"), 0xff, 0xff), []string{"kept"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, dir, Options{})
			want := names("rec", 5)
			pos := appendAll(t, s, want)
			s.Close()
			path := filepath.Join(dir, segmentName(pos[0].Segment))
			appendToFile(t, path, tt.tail)

			s = openSpool(t, dir, Options{})
			want = append(want, tt.keep...)
			validEnd := pos[len(pos)-1].Offset
			for _, k := range tt.keep {
				validEnd += recordSize(len(k))
			}
			st := s.Stats()
			if wantCut := pos[len(pos)-1].Offset + int64(len(tt.tail)) - validEnd; st.Truncated != wantCut || st.Corrupt != 0 || st.Records != int64(len(want)) {
				t.Errorf("Truncated %d, Corrupt %d, Records %d; want %d, 0, %d", st.Truncated, st.Corrupt, st.Records, wantCut, len(want))
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() != validEnd {
				t.Errorf("segment size after Open = %v (%v), want %d", fi.Size(), err, validEnd)
			}
			if got := payloads(drain(t, s)); !slices.Equal(got, want) {
				t.Errorf("read %q, want %q", got, want)
			}

			// The cut segment reads cleanly on the next Open, with new records after it.
			appendAll(t, s, []string{"after"})
			s.Close()
			s = openSpool(t, dir, Options{})
			if got := payloads(drain(t, s)); !slices.Equal(got, []string{"after"}) || s.Corrupt() != 0 {
				t.Errorf("second reopen read %q with %d corrupt, want [after] and 0", got, s.Corrupt())
			}
		})
	}
}

func TestCorruptRecordSkipsRestOfSegment(t *testing.T) {
	// The last segment is one record short of full, so that "after" below would go into it
	// if the writer did not move on from a damaged segment.
	const perSegment, segments = 4, 3
	all := names("rec", perSegment*segments-1)
	size := recordSize(len(all[0]))
	tests := []struct {
		name    string
		segment int  // which segment (0-based) gets its second record damaged
		reopen  bool // damage found by Open's scan rather than by Read
	}{
		{"older segment found by Open", 0, true},
		{"older segment found by Read", 1, false},
		{"segment being written found by Read", segments - 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: perSegment * size, NoSync: true}
			s := openSpool(t, dir, opts)
			pos := appendAll(t, s, all)
			damaged := tt.segment*perSegment + 1
			if tt.reopen {
				s.Close()
			}
			f, err := os.OpenFile(filepath.Join(dir, segmentName(pos[damaged].Segment)), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{'X'}, pos[damaged-1].Offset+headerSize); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if tt.reopen {
				s = openSpool(t, dir, opts)
			}

			// The damaged record and the rest of its segment are lost; nothing else is.
			lost := all[damaged:min((tt.segment+1)*perSegment, len(all))]
			want := slices.DeleteFunc(slices.Clone(all), func(p string) bool { return slices.Contains(lost, p) })
			for range 2 { // reading again must not count the damage again
				recs, err := s.Read(context.Background(), 100, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				if got := payloads(recs); !slices.Equal(got, want) {
					t.Fatalf("read %q, want %q", got, want)
				}
			}
			if st := s.Stats(); s.Corrupt() != 1 || st.Corrupt != 1 || st.Records != int64(len(want)) {
				t.Errorf("Corrupt() %d, Stats.Corrupt %d, Records %d; want 1, 1, %d", s.Corrupt(), st.Corrupt, st.Records, len(want))
			}
			drain(t, s)
			appendAll(t, s, []string{"after"})
			if got := payloads(drain(t, s)); !slices.Equal(got, []string{"after"}) {
				t.Errorf("after the damage, read %q, want [after]", got)
			}
		})
	}
}

// waitFor polls cond, which the code under test has no event for, up to a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestBackpressure(t *testing.T) {
	const rec = "0123456789"
	size := recordSize(len(rec))
	tests := []struct {
		name         string
		segmentBytes int64
		commit       int // index of the record to commit: what frees the space
	}{
		{"commit frees a sealed segment", 2 * size, 1},
		{"commit frees the segment being written", 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSpool(t, t.TempDir(), Options{MaxBytes: 4 * size, SegmentBytes: tt.segmentBytes, NoSync: true})
			full := []string{"full-0000", "full-0001", "full-0002", "full-0003"}
			appendAll(t, s, full)

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if _, err := s.Append(ctx, []byte("timed-out")); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Append to a full spool = %v, want DeadlineExceeded", err)
			}
			late := make(chan error, 1)
			go func() {
				_, err := s.Append(context.Background(), []byte("late-0000"))
				late <- err
			}()
			waitFor(t, "the late Append to queue", func() bool { return s.Stats().Queued == 1 })
			select {
			case err := <-late:
				t.Fatalf("Append to a full spool returned %v without waiting", err)
			case <-time.After(20 * time.Millisecond):
			}

			recs, err := s.Read(context.Background(), 10, 1<<20)
			if err != nil || len(recs) != len(full) {
				t.Fatalf("Read = %d records, %v", len(recs), err)
			}
			if err := s.Commit(recs[tt.commit].Pos); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-late:
				if err != nil {
					t.Fatalf("late Append: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Commit did not release the waiting Append")
			}
			if st := s.Stats(); st.DiskBytes > 4*size {
				t.Errorf("DiskBytes %d over MaxBytes %d", st.DiskBytes, 4*size)
			}
			want := append(full[tt.commit+1:], "late-0000")
			if got := payloads(drain(t, s)); !slices.Equal(got, want) {
				t.Errorf("read %q, want %q", got, want)
			}
		})
	}
}

func TestAppendRefuses(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		payload int
		want    error
	}{
		{"fits both limits exactly", Options{MaxBytes: 100, SegmentBytes: 50}, 50 - headerSize, nil},
		{"larger than a segment", Options{MaxBytes: 100, SegmentBytes: 50}, 51 - headerSize, ErrTooLarge},
		{"larger than MaxBytes", Options{MaxBytes: 50, SegmentBytes: 100}, 51 - headerSize, ErrTooLarge},
		{"empty", Options{}, 0, ErrEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSpool(t, t.TempDir(), tt.opts)
			if _, err := s.Append(context.Background(), make([]byte, tt.payload)); err != tt.want {
				t.Errorf("Append(%d bytes) = %v, want %v", tt.payload, err, tt.want)
			}
		})
	}
}

func TestConcurrentAppendersKeepTheirOrder(t *testing.T) {
	const appenders, each = 16, 200
	// Small segments and a small bound: the appenders roll segments and wait for space
	// while the consumer reads and commits.
	s := openSpool(t, t.TempDir(), Options{SegmentBytes: 2 << 10, MaxBytes: 8 << 10, NoSync: true})
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Append(context.Background(), fmt.Appendf(nil, "%02d %04d", g, i)); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	next := make([]int, appenders)
	for got := 0; got < appenders*each; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		recs, err := s.Read(ctx, 50, 1<<20)
		cancel()
		if err != nil {
			t.Fatalf("Read after %d records: %v", got, err)
		}
		for _, r := range recs {
			var g, i int
			if _, err := fmt.Sscanf(string(r.Payload), "%d %d", &g, &i); err != nil || i != next[g] {
				t.Fatalf("read %q, want appender %d's record %d", r.Payload, g, next[g])
			}
			next[g]++
		}
		if err := s.Commit(recs[len(recs)-1].Pos); err != nil {
			t.Fatal(err)
		}
		got += len(recs)
	}
	wg.Wait()
	if st := s.Stats(); st.Records != 0 || st.Appends != appenders*each || st.DiskBytes > 8<<10 {
		t.Errorf("Stats %+v: want 0 records, %d appends, DiskBytes within 8 KiB", st, appenders*each)
	}
}

func TestReadWaitsForRecords(t *testing.T) {
	s := openSpool(t, t.TempDir(), Options{NoSync: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Read(ctx, 1, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read of an empty spool = %v, want DeadlineExceeded", err)
	}
	type result struct {
		recs []Record
		err  error
	}
	read := make(chan result, 1)
	go func() {
		recs, err := s.Read(context.Background(), 10, 1<<20)
		read <- result{recs, err}
	}()
	appendAll(t, s, []string{"wake-up"})
	if r := <-read; r.err != nil || !slices.Equal(payloads(r.recs), []string{"wake-up"}) {
		t.Fatalf("waiting Read = %q, %v", payloads(r.recs), r.err)
	}
}

func TestCommitRefusesUnknownPosition(t *testing.T) {
	s := openSpool(t, t.TempDir(), Options{NoSync: true})
	pos := appendAll(t, s, []string{"a", "b", "c"})
	recs, err := s.Read(context.Background(), 2, 1<<20)
	if err != nil || len(recs) != 2 {
		t.Fatalf("Read = %d records, %v", len(recs), err)
	}
	tests := []struct {
		name string
		pos  Position
		want error
	}{
		{"inside a record", Position{Segment: pos[0].Segment, Offset: pos[0].Offset - 1}, ErrBadPosition},
		{"not read yet", pos[2], ErrBadPosition},
		{"first read", recs[0].Pos, nil},
		{"the cursor again", recs[0].Pos, nil},
		{"second read, after the first", recs[1].Pos, nil},
		{"behind the cursor", recs[0].Pos, ErrBadPosition},
	}
	for _, tt := range tests { // in order: each step depends on the ones before
		if err := s.Commit(tt.pos); err != tt.want {
			t.Errorf("%s: Commit(%v) = %v, want %v", tt.name, tt.pos, err, tt.want)
		}
	}
}

func TestCloseReleasesWaiters(t *testing.T) {
	const rec = "0123456789"
	s := openSpool(t, t.TempDir(), Options{MaxBytes: 2 * recordSize(len(rec)), NoSync: true})
	appendAll(t, s, []string{rec, rec})
	const waiting = 3
	errs := make(chan error, waiting)
	for range waiting {
		go func() {
			_, err := s.Append(context.Background(), []byte(rec))
			errs <- err
		}()
	}
	waitFor(t, "the Appends to queue", func() bool { return s.Stats().Queued == waiting })
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range waiting {
		if err := <-errs; err != ErrClosed {
			t.Errorf("waiting Append = %v, want ErrClosed", err)
		}
	}
	if _, err := s.Append(context.Background(), []byte(rec)); err != ErrClosed {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Read(context.Background(), 1, 1); err != ErrClosed {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
	if err := s.Commit(Position{}); err != ErrClosed {
		t.Errorf("Commit after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != ErrClosed {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

// Records enqueued without waiting keep their order and complete in it, and one whose Wait
// gives up while the spool is full is withdrawn: never stored, while those after it still are.
func TestEnqueueManyInFlight(t *testing.T) {
	const rec = "0123456789"
	size := recordSize(len(rec))
	s := openSpool(t, t.TempDir(), Options{MaxBytes: 6 * size, NoSync: true})
	first := names("first", 4)
	var ps []Pending
	for _, p := range first {
		pd, err := s.Enqueue([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, pd)
	}
	var last Position
	for i, pd := range ps {
		pos, err := pd.Wait(context.Background())
		if err != nil || comparePositions(pos, last) <= 0 {
			t.Fatalf("record %d: Wait = %v, %v; want a position after %v", i, pos, err, last)
		}
		last = pos
	}

	// Two more fill the spool; the next three wait for space.
	appendAll(t, s, names("fill", 2))
	var waiting []Pending
	for _, p := range []string{"wait-0000", "gone-0000", "wait-0001"} {
		pd, err := s.Enqueue([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, pd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := waiting[1].Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a full spool = %v, want DeadlineExceeded", err)
	}
	recs, err := s.Read(context.Background(), 10, 1<<20)
	if err != nil || len(recs) != 6 {
		t.Fatalf("Read = %d records, %v", len(recs), err)
	}
	if err := s.Commit(recs[5].Pos); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		if _, err := waiting[i].Wait(context.Background()); err != nil {
			t.Fatalf("waiting record %d: %v", i, err)
		}
	}
	if got, want := payloads(drain(t, s)), []string{"wait-0000", "wait-0001"}; !slices.Equal(got, want) {
		t.Errorf("read %q, want %q", got, want)
	}
}

// Check reports a backlog once a twentieth of MaxBytes waits, and a nearly full spool at nine
// tenths, and is clear again once the consumer commits.
func TestCheckReportsBacklogAndFill(t *testing.T) {
	rec := strings.Repeat("x", 100)
	size := recordSize(len(rec))
	s := openSpool(t, t.TempDir(), Options{MaxBytes: 40 * size, SegmentBytes: 10 * size, NoSync: true})
	ctx := context.Background()
	if err := s.Check(ctx); err != nil {
		t.Fatalf("empty spool: %v", err)
	}
	appendAll(t, s, []string{rec, rec})
	if err := s.Check(ctx); !errors.Is(err, ErrBacklog) {
		t.Fatalf("2 of 40 records waiting: %v, want ErrBacklog", err)
	}
	appendAll(t, s, slices.Repeat([]string{rec}, 34))
	if err := s.Check(ctx); !errors.Is(err, ErrNearlyFull) {
		t.Fatalf("36 of 40 records on disk: %v, want ErrNearlyFull", err)
	}
	recs, err := s.Read(ctx, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(recs[len(recs)-1].Pos); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("all consumed: %v", err)
	}
}

// A consumer that stores records while it reads more reads ahead with ReadNext, commits in
// order behind it, and is not held up by a ReadNext waiting for records; a Read starts again
// from the cursor.
func TestReadNextReadsAhead(t *testing.T) {
	s := openSpool(t, t.TempDir(), Options{NoSync: true})
	appendAll(t, s, []string{"a", "b", "c", "d", "e"})
	ctx := context.Background()
	first, err := s.Read(ctx, 2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ahead, err := s.ReadNext(ctx, 2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := payloads(append(first, ahead...)); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("Read then ReadNext = %q, want a b c d", got)
	}
	if err := s.Commit(first[1].Pos); err != nil {
		t.Fatalf("commit behind the records read ahead: %v", err)
	}
	rest, err := s.ReadNext(ctx, 10, 1<<20)
	if err != nil || !slices.Equal(payloads(rest), []string{"e"}) {
		t.Fatalf("ReadNext after a commit = %q, %v; want e", payloads(rest), err)
	}

	waiting := make(chan []Record, 1)
	go func() {
		recs, _ := s.ReadNext(ctx, 10, 1<<20)
		waiting <- recs
	}()
	committed := make(chan error, 1)
	go func() { committed <- s.Commit(ahead[1].Pos) }()
	select {
	case err := <-committed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Commit held up by a ReadNext waiting for records")
	}
	appendAll(t, s, []string{"f"})
	if got := payloads(<-waiting); !slices.Equal(got, []string{"f"}) {
		t.Fatalf("waiting ReadNext = %q, want f", got)
	}
	if st := s.Stats(); st.Records != 2 {
		t.Fatalf("%d records not committed, want 2 (e, f)", st.Records)
	}
	again, err := s.Read(ctx, 10, 1<<20)
	if err != nil || !slices.Equal(payloads(again), []string{"e", "f"}) {
		t.Fatalf("Read after reading ahead = %q, %v; want e f from the cursor", payloads(again), err)
	}
}
