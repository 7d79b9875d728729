package telemetry_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/internal/testinflux"
	"github.com/lockerhub/lockerhub/telemetry"
	"github.com/lockerhub/lockerhub/telemetry/influx"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

const bankDoors = 16

// doorRig is a pipeline storing into a spool the test reads back, with one 16-door bank.
type doorRig struct {
	t       testing.TB
	ctx     context.Context
	devices *sqldb.DeviceService
	sp      *spool.Spool
	p       *telemetry.Pipeline
	seq     uint64
}

func newDoorRig(t testing.TB, keyframes time.Duration, so spool.Options) *doorRig {
	t.Helper()
	return newDoorRigWith(t, telemetry.Options{DoorKeyframeInterval: keyframes}, so)
}

// newDoorRigWith is newDoorRig with the pipeline's options given whole.
func newDoorRigWith(t testing.TB, opts telemetry.Options, so spool.Options) *doorRig {
	t.Helper()
	ctx, db := openRegistry(t)
	sp, err := spool.Open(t.TempDir(), so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	r := &doorRig{t: t, ctx: ctx, devices: sqldb.NewDeviceService(db), sp: sp}
	if r.p, err = telemetry.NewPipeline(sp, r.devices, opts); err != nil {
		t.Fatal(err)
	}
	r.register()
	return r
}

// register registers bank-1 (again, after a removal) and tells the pipeline, as the hub does.
func (r *doorRig) register() {
	r.t.Helper()
	if _, err := r.devices.CreateDevice(r.ctx, &fleet.Device{ID: "bank-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: bankDoors}); err != nil {
		r.t.Fatal(err)
	}
	if err := r.p.InvalidateDevices(r.ctx); err != nil {
		r.t.Fatal(err)
	}
}

// snapshot is a snapshot of bank-1 at ts: every door closed and locked but those in open.
func (r *doorRig) snapshot(ts time.Time, open ...int) wire.Telemetry {
	r.seq++
	amb, enc := 4.5, 11.0
	m := wire.Telemetry{V: wire.Version, Seq: r.seq, TS: ts.UnixMilli(), AmbientC: &amb, EnclosureC: &enc,
		Heater: &wire.Thermal{On: true, SetpointC: 5, Duty: 0.2}}
	for d := 1; d <= bankDoors; d++ {
		o := slices.Contains(open, d)
		m.Doors = append(m.Doors, wire.DoorState{Door: d, Open: o, Locked: !o})
	}
	return m
}

// store ingests msg, waits until it is durable and returns the doors of the door points it
// stored, read back from the spool.
func (r *doorRig) store(msg wire.Message) []int {
	r.t.Helper()
	rc, err := r.p.Ingest(r.ctx, "bank-1", channelOf(msg), msg)
	if err == nil {
		err = rc.Wait(r.ctx)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return r.drain(1)
}

// drain reads n records from the spool, commits them, and returns the doors of their door
// points.
func (r *doorRig) drain(n int) []int {
	r.t.Helper()
	var doors []int
	for n > 0 {
		recs, err := r.sp.Read(r.ctx, n, 1<<20)
		if err != nil {
			r.t.Fatal(err)
		}
		for _, rec := range recs {
			doors = append(doors, doorPoints(rec.Payload)...)
		}
		if err := r.sp.Commit(recs[len(recs)-1].Pos); err != nil {
			r.t.Fatal(err)
		}
		n -= len(recs)
	}
	return doors
}

// doorPoints returns the door tag of each door point in line protocol.
func doorPoints(lines []byte) []int {
	var doors []int
	for line := range bytes.Lines(lines) {
		if !bytes.HasPrefix(line, []byte("door,")) {
			continue
		}
		_, tag, _ := bytes.Cut(line, []byte(",door="))
		n, _, _ := bytes.Cut(tag, []byte(" "))
		d, err := strconv.Atoi(string(n))
		if err != nil {
			panic("door tag " + string(n))
		}
		doors = append(doors, d)
	}
	return doors
}

func channelOf(msg wire.Message) wire.Channel {
	if _, ok := msg.(wire.Event); ok {
		return wire.ChannelEvents
	}
	return wire.ChannelTelemetry
}

func allDoors() []int {
	d := make([]int, bankDoors)
	for i := range d {
		d[i] = i + 1
	}
	return d
}

func wantDoors(t *testing.T, what string, got, want []int) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s stored door points for doors %v, want %v", what, got, want)
	}
}

// Between keyframes a snapshot stores the doors that changed since they were last stored,
// by a snapshot or a door event, and nothing for the others.
func TestDoorPointsOnChangeAndKeyframe(t *testing.T) {
	t.Parallel()
	r := newDoorRig(t, 5*time.Minute, spool.Options{})
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	wantDoors(t, "the first snapshot", r.store(r.snapshot(at(0))), allDoors())
	wantDoors(t, "an unchanged snapshot", r.store(r.snapshot(at(10*time.Second))), nil)
	wantDoors(t, "a snapshot with door 5 open", r.store(r.snapshot(at(20*time.Second), 5)), []int{5})
	wantDoors(t, "door 5 still open", r.store(r.snapshot(at(30*time.Second), 5)), nil)
	r.seq++
	wantDoors(t, "the event of door 5 closing", r.store(wire.Event{V: wire.Version, Seq: r.seq, TS: at(35 * time.Second).UnixMilli(),
		Kind: wire.EventDoor, Door: 5, Locked: true}), nil)
	wantDoors(t, "the snapshot after the event", r.store(r.snapshot(at(40*time.Second))), nil)
	wantDoors(t, "doors 3 and 16 open, no event", r.store(r.snapshot(at(50*time.Second), 3, 16)), []int{3, 16})
	wantDoors(t, "4m59s after the keyframe", r.store(r.snapshot(at(5*time.Minute-time.Second), 3, 16)), nil)
	wantDoors(t, "5m after the keyframe", r.store(r.snapshot(at(5*time.Minute), 3, 16)), allDoors())
	wantDoors(t, "after the new keyframe", r.store(r.snapshot(at(5*time.Minute+10*time.Second), 3)), []int{16})
}

// With a keyframe interval of 0 every snapshot stores every door, as before door keyframes.
func TestDoorPointsEverySnapshotWithoutInterval(t *testing.T) {
	t.Parallel()
	r := newDoorRig(t, 0, spool.Options{})
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	for i := range 3 {
		wantDoors(t, "snapshot "+strconv.Itoa(i), r.store(r.snapshot(t0.Add(time.Duration(i)*10*time.Second))), allDoors())
	}
}

// Whatever leaves the hub unsure of what InfluxDB will hold makes the next snapshot a keyframe:
// a message the spool refused or did not make durable, the unit registered again, and a
// snapshot or event older than a message already stored (a resend after a session take-over).
func TestDoorKeyframeWhenUnsure(t *testing.T) {
	t.Parallel()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Second) }

	t.Run("spool refuses", func(t *testing.T) {
		t.Parallel()
		// Segments fit a snapshot's lines, not a snapshot that also carries 16 door changes and
		// 16 compartment temperatures: the spool refuses that one at once (ErrTooLarge).
		r := newDoorRig(t, 5*time.Minute, spool.Options{SegmentBytes: 2600})
		wantDoors(t, "the first snapshot", r.store(r.snapshot(at(0))), allDoors())
		big := r.snapshot(at(1), allDoors()...)
		for i := range big.Doors {
			c := 4.125
			big.Doors[i].TempC = &c
		}
		if _, err := r.p.Ingest(r.ctx, "bank-1", wire.ChannelTelemetry, big); !errors.Is(err, spool.ErrTooLarge) {
			t.Fatalf("Ingest of an oversized snapshot: %v, want %v", err, spool.ErrTooLarge)
		}
		wantDoors(t, "the snapshot after the refused one", r.store(r.snapshot(at(2), 2)), allDoors())
		wantDoors(t, "the next", r.store(r.snapshot(at(3), 2)), nil)
	})

	t.Run("spool full", func(t *testing.T) {
		t.Parallel()
		r := newDoorRig(t, 5*time.Minute, spool.Options{SegmentBytes: 2600, MaxBytes: 4 * 2600})
		wantDoors(t, "the first snapshot", r.store(r.snapshot(at(0))), allDoors())
		// Fill the spool until an append times out, as the broker's ingest timeout does.
		filled := 0
		for ; ; filled++ {
			ctx, cancel := context.WithTimeout(r.ctx, 100*time.Millisecond)
			_, err := r.sp.Append(ctx, bytes.Repeat([]byte("x"), 1000))
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
		}
		lost := r.snapshot(at(1), 2)
		rc, err := r.p.Ingest(r.ctx, "bank-1", wire.ChannelTelemetry, lost)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(r.ctx, 100*time.Millisecond)
		defer cancel()
		if err := rc.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait on a full spool: %v, want %v", err, context.DeadlineExceeded)
		}
		if doors := r.drain(filled); len(doors) != 0 {
			t.Fatalf("the spool held door points %v besides the filler", doors)
		}
		// The unit resends the snapshot the hub did not acknowledge.
		wantDoors(t, "the resent snapshot", r.store(lost), allDoors())
		wantDoors(t, "the next", r.store(r.snapshot(at(2), 2)), nil)
	})

	t.Run("registered again", func(t *testing.T) {
		t.Parallel()
		r := newDoorRig(t, 5*time.Minute, spool.Options{})
		wantDoors(t, "the first snapshot", r.store(r.snapshot(at(0))), allDoors())
		// A registry change elsewhere costs this unit no keyframe.
		if _, err := r.devices.CreateDevice(r.ctx, &fleet.Device{ID: "bank-2", Kind: fleet.KindLockerBank, Site: "oak", Doors: 4}); err != nil {
			t.Fatal(err)
		}
		if err := r.p.InvalidateDevices(r.ctx); err != nil {
			t.Fatal(err)
		}
		wantDoors(t, "a snapshot after another unit was registered", r.store(r.snapshot(at(1))), nil)
		if err := r.devices.DeleteDevice(r.ctx, "bank-1"); err != nil {
			t.Fatal(err)
		}
		r.register()
		wantDoors(t, "the first snapshot of the unit registered again", r.store(r.snapshot(at(2))), allDoors())
		wantDoors(t, "the next", r.store(r.snapshot(at(3))), nil)
	})

	t.Run("older message", func(t *testing.T) {
		t.Parallel()
		r := newDoorRig(t, 5*time.Minute, spool.Options{})
		wantDoors(t, "the first snapshot", r.store(r.snapshot(at(0))), allDoors())
		wantDoors(t, "the second", r.store(r.snapshot(at(2), 4)), []int{4})
		wantDoors(t, "a snapshot older than the second", r.store(r.snapshot(at(1), 4)), allDoors())
		wantDoors(t, "the snapshot after it", r.store(r.snapshot(at(3), 4)), allDoors())
		wantDoors(t, "the next", r.store(r.snapshot(at(4), 4)), nil)
		r.seq++
		r.store(wire.Event{V: wire.Version, Seq: r.seq, TS: at(4).UnixMilli() - 1, Kind: wire.EventDoor, Door: 4, Locked: true})
		wantDoors(t, "the snapshot after an event older than the last one", r.store(r.snapshot(at(5), 4)), allDoors())
	})
}

// bankStream simulates a 16-door bank for snapshots intervals of 10 s from start: pickups
// (unlock, open, close, lock, each a door event) and silent changes (a door that opens and
// closes again between snapshots' reports without an event, as a unit that lost its events
// would show). It returns the messages in the order the unit sends them live.
func bankStream(rng *rand.Rand, start time.Time, snapshots, pickups, silent int) []wire.Message {
	type change struct {
		ts           int64
		door         int
		open, locked bool
		event        bool
	}
	span := int64(snapshots) * 10_000
	var changes []change
	busy := map[int][]int64{} // door -> starts of its activities, each a minute long at most
	add := func(n int, steps []change) {
		for n > 0 {
			s, door := rng.Int64N(span-60_000), 1+rng.IntN(bankDoors)
			if s%10_000 == 0 || slices.ContainsFunc(busy[door], func(o int64) bool { return s > o-60_000 && s < o+60_000 }) {
				continue // on a snapshot's own millisecond, or overlapping another activity of the door
			}
			busy[door] = append(busy[door], s)
			n--
			for _, st := range steps {
				changes = append(changes, change{ts: s + st.ts, door: door, open: st.open, locked: st.locked, event: st.event})
			}
		}
	}
	add(pickups, []change{{0, 0, false, false, true}, {4_000, 0, true, false, true}, {25_000, 0, false, false, true}, {27_000, 0, false, true, true}})
	add(silent, []change{{0, 0, true, true, false}, {13_000, 0, false, true, false}})
	slices.SortFunc(changes, func(a, b change) int { return int(a.ts - b.ts) })

	var doors [bankDoors + 1]wire.DoorState
	for d := range doors {
		doors[d] = wire.DoorState{Door: d, Locked: true}
	}
	var msgs []wire.Message
	seq := uint64(0)
	t0 := start.UnixMilli()
	for i := range snapshots {
		ts := int64(i) * 10_000
		for len(changes) > 0 && changes[0].ts < ts {
			c := changes[0]
			changes = changes[1:]
			doors[c.door].Open, doors[c.door].Locked = c.open, c.locked
			if c.event {
				seq++
				msgs = append(msgs, wire.Event{V: wire.Version, Seq: seq, TS: t0 + c.ts, Kind: wire.EventDoor, Door: c.door,
					Open: c.open, Locked: c.locked, Cause: wire.CauseRemote})
			}
		}
		seq++
		amb, enc := 4.5, 11.0
		m := wire.Telemetry{V: wire.Version, Seq: seq, TS: t0 + ts, AmbientC: &amb, EnclosureC: &enc,
			Heater: &wire.Thermal{On: i%2 == 0, SetpointC: 5, Duty: 0.2}, Doors: slices.Clone(doors[1:])}
		msgs = append(msgs, m)
	}
	return msgs
}

// ship sends what the pipeline stores to a fresh InfluxDB database until the test ends.
func (r *doorRig) ship() *testinflux.Server {
	r.t.Helper()
	s := testinflux.Require(r.t)
	client := influx.New(influx.Config{URL: s.URL, Bucket: s.Bucket, BatchSize: 5000, Timeout: 5 * time.Second})
	r.t.Cleanup(client.Close)
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan struct{})
	dir := r.t.TempDir()
	go func() {
		defer close(done)
		if err := r.p.NewShipper(client, 5000, 2, dir).Run(ctx); err != nil {
			r.t.Error(err)
		}
	}()
	r.t.Cleanup(func() { cancel(); <-done })
	return s
}

// ingest stores msgs as the broker does for one connection: every message handed to the
// pipeline in order, its receipts waited for in the same order.
func (r *doorRig) ingest(msgs []wire.Message) {
	r.t.Helper()
	receipts := make([]fleet.Receipt, 0, len(msgs))
	for _, m := range msgs {
		rc, err := r.p.Ingest(r.ctx, "bank-1", channelOf(m), m)
		if err != nil {
			r.t.Fatal(err)
		}
		receipts = append(receipts, rc)
	}
	for _, rc := range receipts {
		if err := rc.Wait(r.ctx); err != nil {
			r.t.Fatal(err)
		}
	}
}

// doorStep is one stored state of a door, from a door point or a door event.
type doorStep struct {
	ts           int64
	open, locked bool
}

// storedDoors reads every door and door_event point of bank-1 back from InfluxDB, per door in
// time order: the step function of each door's state that history queries read.
func storedDoors(t *testing.T, s *testinflux.Server) (steps [bankDoors + 1][]doorStep, doorPoints int) {
	t.Helper()
	for door := 1; door <= bankDoors; door++ {
		for _, meas := range []string{"door", "door_event"} {
			rows := s.Query(t, fmt.Sprintf(`SELECT "open", "locked" FROM %s WHERE device='bank-1' AND door='%d'`, meas, door))
			for _, row := range rows {
				ts, err := time.Parse(time.RFC3339Nano, row[0].(string))
				if err != nil {
					t.Fatal(err)
				}
				steps[door] = append(steps[door], doorStep{ts: ts.UnixMilli(), open: row[1].(bool), locked: row[2].(bool)})
			}
			if meas == "door" {
				doorPoints += len(rows)
			}
		}
		slices.SortStableFunc(steps[door], func(a, b doorStep) int { return cmp.Compare(a.ts, b.ts) })
	}
	return steps, doorPoints
}

// No state change is lost: read back from InfluxDB as a step function (the latest door or
// door_event point at or before a time), the stored points give every snapshot's door states,
// through pickups, changes no event reported, an outage after which the unit sends its events
// before its backlog of snapshots, and a snapshot resent after newer ones.
func TestDoorStatesReplayFromInflux(t *testing.T) {
	t.Parallel()
	const snapshots = 720 // two hours at 10 s
	r := newDoorRig(t, 5*time.Minute, spool.Options{})
	s := r.ship()
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	live := bankStream(rand.New(rand.NewPCG(19, 3)), start, snapshots, 200, 60)

	sent := slices.Clone(live)
	// An outage: the outbox sends the events of the time it was away first, then the snapshots.
	from, to := len(sent)/3, len(sent)*2/3
	backlog := slices.Clone(sent[from:to])
	slices.SortStableFunc(backlog, func(a, b wire.Message) int {
		_, ae := a.(wire.Event)
		_, be := b.(wire.Event)
		return cmp.Compare(btoi(!ae), btoi(!be))
	})
	copy(sent[from:], backlog)
	// A session take-over: snapshots resent after newer ones.
	sent = slices.Insert(sent, len(sent)*3/4, sent[len(sent)*3/4-7], sent[len(sent)*3/4-5])

	r.ingest(sent)
	testhub.WaitFor(t, 120*time.Second, "every snapshot's unit point in InfluxDB", func() bool {
		return s.Count(t, "unit") >= snapshots
	})
	steps, doorPoints := storedDoors(t, s)
	checked := 0
	for _, m := range live {
		snap, ok := m.(wire.Telemetry)
		if !ok {
			continue
		}
		for _, want := range snap.Doors {
			i, _ := slices.BinarySearchFunc(steps[want.Door], snap.TS+1, func(s doorStep, ts int64) int { return cmp.Compare(s.ts, ts) })
			if i == 0 {
				t.Fatalf("door %d at %d: no stored state at or before it", want.Door, snap.TS)
			}
			if got := steps[want.Door][i-1]; got.open != want.Open || got.locked != want.Locked {
				t.Fatalf("door %d at %d reads open=%v locked=%v from the stored points, the snapshot says open=%v locked=%v",
					want.Door, snap.TS, got.open, got.locked, want.Open, want.Locked)
			}
		}
		checked++
	}
	if checked != snapshots {
		t.Fatalf("checked %d snapshots, want %d", checked, snapshots)
	}
	// A keyframe every 5 minutes is 16 points per 30 snapshots; the rest is changes, the outage
	// and the resends. Every door of every snapshot would be 16 per snapshot.
	t.Logf("door points: %d for %d snapshots (%d with every door of every snapshot)", doorPoints, snapshots, snapshots*bankDoors)
	if doorPoints >= snapshots*bankDoors/4 {
		t.Fatalf("%d door points for %d snapshots: want fewer than a quarter of %d", doorPoints, snapshots, snapshots*bankDoors)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// BenchmarkPointsPerUnitDay runs a simulated day of one 16-door bank (a snapshot every 10 s,
// 25 pickups of 4 door events each) through the pipeline into the spool and counts the points
// stored, with every door in every snapshot and with door keyframes every 5 minutes. One
// operation is one unit-day.
func BenchmarkPointsPerUnitDay(b *testing.B) {
	for _, kf := range []time.Duration{0, 5 * time.Minute} {
		b.Run("keyframes="+kf.String(), func(b *testing.B) {
			day := bankStream(rand.New(rand.NewPCG(19, 86400)), time.Now().Add(-25*time.Hour).Truncate(time.Minute), 8640, 25, 0)
			var points, doors, events, size int
			for b.Loop() {
				b.StopTimer()
				r := newDoorRig(b, kf, spool.Options{})
				b.StartTimer()
				r.ingest(day)
				points, doors, events, size = 0, 0, 0, 0
				for n := len(day); n > 0; {
					recs, err := r.sp.Read(r.ctx, n, 64<<20)
					if err != nil {
						b.Fatal(err)
					}
					for _, rec := range recs {
						points += bytes.Count(rec.Payload, []byte("\n")) + 1
						doors += len(doorPoints(rec.Payload))
						events += bytes.Count(rec.Payload, []byte("door_event,"))
						size += len(rec.Payload)
					}
					if err := r.sp.Commit(recs[len(recs)-1].Pos); err != nil {
						b.Fatal(err)
					}
					n -= len(recs)
				}
			}
			b.ReportMetric(float64(points), "points/unit-day")
			b.ReportMetric(float64(doors), "door_points/unit-day")
			b.ReportMetric(float64(events), "door_events/unit-day")
			b.ReportMetric(float64(size), "line_bytes/unit-day")
		})
	}
}
