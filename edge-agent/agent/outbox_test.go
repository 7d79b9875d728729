package agent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/lockerhub/lockerhub/internal/atomicfile"
)

// openTestOutbox opens the outbox in dir and closes it when the test ends. Tests that
// simulate a crash simply open a second outbox on the same dir before that happens.
func openTestOutbox(t testing.TB, dir string, opts OutboxOptions) *Outbox {
	t.Helper()
	o, err := OpenOutbox(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// roomy is large enough that no test using it drops anything.
var roomy = OutboxOptions{MaxBytes: 1 << 30}

func testTopic(lane Lane) string { return "lockers/unit-1/" + lane.String() }

func mustPut(t testing.TB, o *Outbox, lane Lane, seq uint64, payload []byte) Entry {
	t.Helper()
	e, err := o.Put(lane, seq, testTopic(lane), payload)
	if err != nil {
		t.Fatalf("Put(%v, seq %d): %v", lane, seq, err)
	}
	return e
}

// seqs returns the seqs of es, which identify the entries in these tests.
func seqs(es []Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func wantSeqs(t *testing.T, o *Outbox, want ...uint64) {
	t.Helper()
	if got := seqs(o.Pending(1000)); !slices.Equal(got, want) {
		t.Fatalf("pending seqs %v, want %v", got, want)
	}
}

func TestOutboxOrder(t *testing.T) {
	o := openTestOutbox(t, t.TempDir(), roomy)
	for seq, lane := range []Lane{LaneTelemetry, LaneEvents, LaneTelemetry, LaneEvents, LaneTelemetry} {
		mustPut(t, o, lane, uint64(seq+1), []byte{byte(seq)})
	}

	t.Run("events first, each lane by ID", func(t *testing.T) {
		es := o.Pending(10)
		if got, want := seqs(es), []uint64{2, 4, 1, 3, 5}; !slices.Equal(got, want) {
			t.Fatalf("pending seqs %v, want %v", got, want)
		}
		for i, e := range es {
			if e.Topic != testTopic(e.Lane) || !bytes.Equal(e.Payload, []byte{byte(e.Seq - 1)}) {
				t.Errorf("entry %d: %+v", i, e)
			}
			if i > 0 && e.Lane == es[i-1].Lane && e.ID <= es[i-1].ID {
				t.Errorf("entry %d: ID %d after %d in the same lane", i, e.ID, es[i-1].ID)
			}
		}
	})
	t.Run("limit", func(t *testing.T) {
		for _, tc := range []struct {
			limit int
			want  []uint64
		}{{-1, nil}, {0, nil}, {1, []uint64{2}}, {3, []uint64{2, 4, 1}}, {100, []uint64{2, 4, 1, 3, 5}}} {
			if got := seqs(o.Pending(tc.limit)); !slices.Equal(got, tc.want) {
				t.Errorf("Pending(%d) seqs %v, want %v", tc.limit, got, tc.want)
			}
		}
	})
	t.Run("copies", func(t *testing.T) {
		payload := []byte("door 3 opened")
		e := mustPut(t, o, LaneEvents, 6, payload)
		payload[0] = 'X' // the caller reuses its buffer
		es := o.Pending(10)
		es[2].Payload[0] = 'Y' // the sender scribbles on what it got
		mustPut(t, o, LaneEvents, 7, []byte("door 3 closed"))
		if got := o.Pending(10)[2]; got.ID != e.ID || string(got.Payload) != "door 3 opened" {
			t.Fatalf("entry %d became %+v", e.ID, got)
		}
	})
	t.Run("ack", func(t *testing.T) {
		es := o.Pending(10)
		for _, id := range []uint64{es[1].ID, es[0].ID, 999} { // out of order, then unknown
			if err := o.Ack(id); err != nil {
				t.Fatalf("Ack(%d): %v", id, err)
			}
		}
		wantSeqs(t, o, 6, 7, 1, 3, 5)
		if o.Len() != 5 {
			t.Fatalf("Len %d, want 5", o.Len())
		}
	})
}

func TestOutboxPutRefuses(t *testing.T) {
	o := openTestOutbox(t, t.TempDir(), roomy)
	mustPut(t, o, LaneEvents, 5, []byte("x"))
	for _, tc := range []struct {
		name  string
		lane  Lane
		seq   uint64
		topic string
	}{
		{"seq not increasing", LaneEvents, 5, "t"},
		{"seq going back", LaneTelemetry, 4, "t"},
		{"invalid lane", Lane(2), 6, "t"},
		{"topic too long", LaneEvents, 6, string(make([]byte, 1<<16))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := o.Put(tc.lane, tc.seq, tc.topic, nil); err == nil {
				t.Fatal("Put succeeded")
			}
			wantSeqs(t, o, 5)
		})
	}
	t.Run("after close", func(t *testing.T) {
		o.Close()
		if _, err := o.Put(LaneEvents, 6, "t", nil); !errors.Is(err, ErrOutboxClosed) {
			t.Fatalf("Put: %v, want ErrOutboxClosed", err)
		}
		if err := o.Ack(1); !errors.Is(err, ErrOutboxClosed) {
			t.Fatalf("Ack: %v, want ErrOutboxClosed", err)
		}
	})
	t.Run("no bound", func(t *testing.T) {
		if _, err := OpenOutbox(t.TempDir(), OutboxOptions{}); err == nil {
			t.Fatal("OpenOutbox accepted MaxBytes 0")
		}
	})
}

// TestOutboxReopen checks what a restart recovers, after a clean Close and after a crash,
// which for the outbox is no Close at all: a second Outbox opens the directory while the first
// is still live, as the next agent process would after a kill -9.
func TestOutboxReopen(t *testing.T) {
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	for _, tc := range []struct {
		name  string
		close bool
	}{{"close", true}, {"crash", false}} {
		for _, fsync := range []bool{false, true} {
			opts := OutboxOptions{MaxBytes: 1 << 20, Fsync: fsync}
			t.Run(fmt.Sprintf("%s/fsync=%t", tc.name, fsync), func(t *testing.T) {
				reopen := func(o *Outbox, dir string) *Outbox {
					if tc.close {
						if err := o.Close(); err != nil {
							t.Fatal(err)
						}
					}
					return openTestOutbox(t, dir, opts)
				}

				t.Run("pending", func(t *testing.T) {
					dir := t.TempDir()
					o := openTestOutbox(t, dir, opts)
					mustPut(t, o, LaneTelemetry, 10, []byte(`{"v":1}`))
					mustPut(t, o, LaneEvents, 11, every)
					acked := mustPut(t, o, LaneTelemetry, 12, []byte("acked"))
					mustPut(t, o, LaneEvents, 13, nil)
					newest := mustPut(t, o, LaneTelemetry, 14, []byte{0})
					if err := o.Ack(acked.ID); err != nil {
						t.Fatal(err)
					}
					before := o.Pending(100)

					o2 := reopen(o, dir)
					after := o2.Pending(100)
					for i := range after {
						if len(after[i].Payload) == 0 { // nil went in, an empty file tail comes out
							after[i].Payload = nil
						}
					}
					if !reflect.DeepEqual(after, before) {
						t.Fatalf("after reopen\n%+v\nwant\n%+v", after, before)
					}
					if o2.Len() != 4 || o2.Bytes() != o.Bytes() || o2.LastSeq() != 14 || o2.Corrupt() != 0 {
						t.Fatalf("Len %d Bytes %d LastSeq %d Corrupt %d, want 4, %d, 14, 0", o2.Len(), o2.Bytes(), o2.LastSeq(), o2.Corrupt(), o.Bytes())
					}
					if e := mustPut(t, o2, LaneEvents, 15, nil); e.ID <= newest.ID {
						t.Fatalf("new ID %d not above the old %d", e.ID, newest.ID)
					}
				})
				// The newest entry holds the highest seq; acknowledging it first and last both
				// must leave that seq recoverable once the outbox is empty.
				for _, order := range []struct {
					name string
					pick func([]Entry) Entry
				}{
					{"acked in send order", func(es []Entry) Entry { return es[0] }},
					{"newest acked first", func(es []Entry) Entry { return es[len(es)-1] }},
				} {
					t.Run("all "+order.name, func(t *testing.T) {
						dir := t.TempDir()
						o := openTestOutbox(t, dir, opts)
						mustPut(t, o, LaneTelemetry, 1, []byte("a"))
						mustPut(t, o, LaneEvents, 2, []byte("b"))
						newest := mustPut(t, o, LaneTelemetry, 3, []byte("c"))
						for es := o.Pending(10); len(es) > 0; es = o.Pending(10) {
							if err := o.Ack(order.pick(es).ID); err != nil {
								t.Fatal(err)
							}
						}

						o2 := reopen(o, dir)
						if o2.Len() != 0 || o2.LastSeq() != 3 {
							t.Fatalf("Len %d LastSeq %d, want 0, 3", o2.Len(), o2.LastSeq())
						}
						if _, err := o2.Put(LaneEvents, 3, "t", nil); err == nil {
							t.Fatal("seq 3 accepted again")
						}
						if e := mustPut(t, o2, LaneEvents, 4, nil); e.ID <= newest.ID {
							t.Fatalf("new ID %d not above the old %d", e.ID, newest.ID)
						}
					})
				}
			})
		}
	}
}

// TestOutboxBound walks one outbox through filling up. Sizes count topic+payload bytes.
func TestOutboxBound(t *testing.T) {
	const maxBytes = 200
	o := openTestOutbox(t, t.TempDir(), OutboxOptions{MaxBytes: maxBytes})
	var seq uint64
	for _, step := range []struct {
		name    string
		lane    Lane
		size    int
		full    bool     // Put must fail with ErrOutboxFull
		dropped uint64   // TakeDropped after the step
		pending []uint64 // seqs in send order after the step
	}{
		{"telemetry", LaneTelemetry, 80, false, 0, []uint64{1}},
		{"telemetry fills", LaneTelemetry, 80, false, 0, []uint64{1, 2}},
		{"oldest telemetry dropped", LaneTelemetry, 80, false, 1, []uint64{2, 3}},
		{"count was reset", LaneTelemetry, 30, false, 0, []uint64{2, 3, 4}},
		{"event drops oldest telemetry", LaneEvents, 120, false, 2, []uint64{5, 4}},
		{"events never dropped", LaneEvents, 120, false, 1, []uint64{5, 6}},
		{"events past the bound", LaneEvents, 120, false, 0, []uint64{5, 6, 7}},
		{"telemetry refused beside events", LaneTelemetry, 30, true, 1, []uint64{5, 6, 7}},
	} {
		t.Run(step.name, func(t *testing.T) {
			seq++
			_, err := o.Put(step.lane, seq, testTopic(step.lane), make([]byte, step.size-len(testTopic(step.lane))))
			if step.full && !errors.Is(err, ErrOutboxFull) || !step.full && err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got := o.TakeDropped(); got != step.dropped {
				t.Errorf("dropped %d, want %d", got, step.dropped)
			}
			wantSeqs(t, o, step.pending...)
			var want int64
			for _, e := range o.Pending(100) {
				want += e.size()
			}
			if o.Bytes() != want {
				t.Errorf("Bytes %d, want %d", o.Bytes(), want)
			}
		})
	}
	if o.Bytes() <= maxBytes {
		t.Fatalf("Bytes %d: events were not kept past MaxBytes", o.Bytes())
	}

	t.Run("oversize telemetry refused", func(t *testing.T) {
		o := openTestOutbox(t, t.TempDir(), OutboxOptions{MaxBytes: maxBytes})
		mustPut(t, o, LaneTelemetry, 1, nil)
		if _, err := o.Put(LaneTelemetry, 2, "t", make([]byte, maxBytes)); !errors.Is(err, ErrOutboxFull) {
			t.Fatalf("Put: %v, want ErrOutboxFull", err)
		}
		wantSeqs(t, o, 1) // nothing dropped for an entry that could never fit
		if got := o.TakeDropped(); got != 1 {
			t.Fatalf("dropped %d, want 1 (the refused entry)", got)
		}
	})
	t.Run("lowered bound applies on open", func(t *testing.T) {
		dir := t.TempDir()
		o := openTestOutbox(t, dir, roomy)
		for seq := range uint64(4) {
			mustPut(t, o, LaneTelemetry, seq+1, make([]byte, 80-len(testTopic(LaneTelemetry))))
		}
		o.Close()
		o = openTestOutbox(t, dir, OutboxOptions{MaxBytes: maxBytes})
		wantSeqs(t, o, 3, 4)
		if got := o.TakeDropped(); got != 2 {
			t.Fatalf("dropped %d, want 2", got)
		}
		o.Close()
		if o = openTestOutbox(t, dir, roomy); o.Len() != 2 || o.LastSeq() != 4 {
			t.Fatalf("drops not persisted: Len %d LastSeq %d, want 2, 4", o.Len(), o.LastSeq())
		}
	})
}

func TestOutboxCorruptFiles(t *testing.T) {
	damages := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"flipped payload byte", func(b []byte) []byte { b[len(b)-1] ^= 0x40; return b }},
		{"flipped seq byte", func(b []byte) []byte { b[recordHeader+7] ^= 1; return b }},
		{"flipped magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"truncated payload", func(b []byte) []byte { return b[:len(b)-3] }},
		{"truncated header", func(b []byte) []byte { return b[:recordHeader-2] }},
		{"empty", func(b []byte) []byte { return b[:0] }},
	}
	dir := t.TempDir()
	o := openTestOutbox(t, dir, roomy)
	var victims []Entry
	for i := range damages {
		victims = append(victims, mustPut(t, o, Lane(i%2), uint64(i+1), []byte("payload")))
	}
	good := mustPut(t, o, LaneEvents, 100, []byte("good"))
	o.Close()

	path := func(e Entry) string { return filepath.Join(dir, e.Lane.String(), entryName(e.ID)) }
	for i, d := range damages {
		b, err := os.ReadFile(path(victims[i]))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path(victims[i]), d.damage(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	strays := []string{
		filepath.Join(dir, "events", entryName(101)+atomicfile.TempSuffix),
		filepath.Join(dir, "telemetry", entryName(102)+atomicfile.TempSuffix),
		filepath.Join(dir, metaName+atomicfile.TempSuffix),
	}
	for _, p := range strays {
		if err := os.WriteFile(p, []byte("half written"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	o = openTestOutbox(t, dir, roomy)
	if o.Corrupt() != len(damages) {
		t.Errorf("Corrupt %d, want %d", o.Corrupt(), len(damages))
	}
	wantSeqs(t, o, good.Seq)
	for i, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			e := victims[i]
			if _, err := os.Stat(path(e)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("damaged file still in its lane: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, corruptDir, e.Lane.String()+"-"+entryName(e.ID))); err != nil {
				t.Errorf("not in corrupt/: %v", err)
			}
		})
	}
	for _, p := range strays {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temp file %s not removed: %v", p, err)
		}
	}
	if e := mustPut(t, o, LaneEvents, 101, nil); e.ID <= good.ID {
		t.Errorf("new ID %d not above the old %d", e.ID, good.ID)
	}

	t.Run("damaged meta", func(t *testing.T) {
		dir := t.TempDir()
		o := openTestOutbox(t, dir, roomy)
		if err := o.Ack(mustPut(t, o, LaneEvents, 7, nil).ID); err != nil {
			t.Fatal(err)
		}
		o.Close()
		if err := os.WriteFile(filepath.Join(dir, metaName), []byte("LHOM1 torn"), 0o600); err != nil {
			t.Fatal(err)
		}
		o = openTestOutbox(t, dir, roomy)
		if _, err := os.Stat(filepath.Join(dir, corruptDir, metaName)); err != nil || o.Corrupt() != 1 {
			t.Fatalf("Corrupt %d, meta moved aside: %v", o.Corrupt(), err)
		}
	})
}

func TestOutboxNotify(t *testing.T) {
	o := openTestOutbox(t, t.TempDir(), roomy)
	fired := func() bool {
		select {
		case <-o.Notify():
			return true
		default:
			return false
		}
	}
	if fired() {
		t.Fatal("fired before any Put")
	}
	mustPut(t, o, LaneTelemetry, 1, nil)
	if !fired() {
		t.Fatal("did not fire after Put")
	}
	mustPut(t, o, LaneEvents, 2, nil) // a burst: the second Put must not block
	mustPut(t, o, LaneEvents, 3, nil)
	if !fired() || fired() {
		t.Fatal("a burst of Puts should leave exactly one signal")
	}
}

// TestOutboxConcurrent runs putters, senders and an observer at once; run it with -race. The
// bound is small so that telemetry is dropped and refused while entries are acknowledged.
func TestOutboxConcurrent(t *testing.T) {
	const putters, puts, senders = 4, 200, 3
	o := openTestOutbox(t, t.TempDir(), OutboxOptions{MaxBytes: 2000})

	var seqMu sync.Mutex // numbers and puts in one step, as Agent.emit does
	var seq, stored uint64
	var putWG sync.WaitGroup
	for p := range putters {
		putWG.Go(func() {
			for i := range puts {
				lane := Lane((p + i) % 2)
				seqMu.Lock()
				seq++
				_, err := o.Put(lane, seq, testTopic(lane), fmt.Appendf(nil, "putter %d message %d", p, i))
				if err == nil {
					stored = seq
				}
				seqMu.Unlock()
				if err != nil && !(lane == LaneTelemetry && errors.Is(err, ErrOutboxFull)) {
					t.Error(err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { putWG.Wait(); close(done) }()

	var wg sync.WaitGroup
	var sentMu sync.Mutex
	sent := [numLanes]map[uint64]bool{{}, {}} // seqs, since two senders may both send one entry
	for range senders {
		wg.Go(func() {
			for {
				es := o.Pending(8)
				if len(es) == 0 {
					select {
					case <-done:
						if o.Len() == 0 {
							return
						}
					case <-o.Notify():
					}
					continue
				}
				for i, e := range es {
					if i > 0 && (e.Lane < es[i-1].Lane || e.Lane == es[i-1].Lane && e.ID <= es[i-1].ID) {
						t.Errorf("send order: %v/%d after %v/%d", e.Lane, e.ID, es[i-1].Lane, es[i-1].ID)
					}
					sentMu.Lock()
					sent[e.Lane][e.Seq] = true
					sentMu.Unlock()
					if err := o.Ack(e.ID); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	var dropped uint64
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				dropped += o.TakeDropped()
				if o.Len() < 0 || o.Bytes() < 0 || o.LastSeq() > putters*puts {
					t.Error("inconsistent counters")
				}
			}
		}
	})
	wg.Wait()
	dropped += o.TakeDropped()

	const perLane = putters * puts / 2
	if len(sent[LaneEvents]) != perLane {
		t.Errorf("%d events sent, want every one of %d", len(sent[LaneEvents]), perLane)
	}
	// A snapshot can be sent and then dropped before its Ack, so the two may overlap.
	if n := uint64(len(sent[LaneTelemetry])) + dropped; n < perLane {
		t.Errorf("%d snapshots sent and %d dropped, want at least %d together", len(sent[LaneTelemetry]), dropped, perLane)
	}
	if o.Len() != 0 || o.Bytes() != 0 || o.LastSeq() != stored {
		t.Errorf("Len %d Bytes %d LastSeq %d, want 0, 0, %d", o.Len(), o.Bytes(), o.LastSeq(), stored)
	}
}

func BenchmarkOutboxPut(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 200)
	for _, fsync := range []bool{true, false} {
		b.Run(fmt.Sprintf("fsync=%t", fsync), func(b *testing.B) {
			o := openTestOutbox(b, b.TempDir(), OutboxOptions{MaxBytes: 1 << 40, Fsync: fsync})
			b.SetBytes(int64(len(payload)))
			var seq uint64
			for b.Loop() {
				seq++
				if _, err := o.Put(LaneEvents, seq, testTopic(LaneEvents), payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
