package telemetry_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/telemetry"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

// kindRecorder keeps the kinds of the events the pipeline publishes.
type kindRecorder struct {
	mu    sync.Mutex
	kinds []fleet.EventKind
}

func (r *kindRecorder) Publish(ev fleet.Event) {
	r.mu.Lock()
	r.kinds = append(r.kinds, ev.Kind)
	r.mu.Unlock()
}

func (r *kindRecorder) take() []fleet.EventKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.kinds
	r.kinds = nil
	return k
}

// A keypad event is a code entered at the unit, not a door change: it is published as a keypad
// event, stored as a keypad point, and leaves the door's live state and stored door points as
// they were; a door opened by a pickup code is a door event that keeps its parcel.
func TestKeypadEventsAreNotDoorChanges(t *testing.T) {
	t.Parallel()
	events := &kindRecorder{}
	r := newDoorRigWith(t, telemetry.Options{DoorKeyframeInterval: 5 * time.Minute, Events: events}, spool.Options{})
	s := r.ship()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Minute)
	at := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	event := func(e wire.Event) wire.Event {
		r.seq++
		e.V, e.Seq = wire.Version, r.seq
		return e
	}
	dev := &fleet.Device{ID: "bank-1"}
	stored, err := r.devices.FindDeviceByID(r.ctx, dev.ID)
	if err != nil {
		t.Fatal(err)
	}

	r.ingest([]wire.Message{r.snapshot(t0)})
	r.ingest([]wire.Message{
		event(wire.Event{TS: at(time.Second), Kind: wire.EventKeypad, Keypad: wire.KeypadWrong, Failures: 1}),
		event(wire.Event{TS: at(2 * time.Second), Kind: wire.EventKeypad, Keypad: wire.KeypadLockedOut, Failures: 5,
			LockedUntil: at(17 * time.Minute)}),
		event(wire.Event{TS: at(3 * time.Second), Kind: wire.EventKeypad, Keypad: wire.KeypadAccepted, Door: 5, Parcel: "p-1"}),
	})
	if got, want := events.take(), []fleet.EventKind{fleet.EventTelemetryStored, fleet.EventKeypadEntered,
		fleet.EventKeypadEntered, fleet.EventKeypadEntered}; !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	live, ok := r.p.LiveState(stored)
	if !ok {
		t.Fatal("no live state")
	}
	if i := slices.IndexFunc(live.Doors, func(d wire.DoorState) bool { return d.Door == 5 }); i < 0 || live.Doors[i].Open || !live.Doors[i].Locked {
		t.Fatalf("door 5 after an accepted code reads %+v, want closed and locked as the snapshot said", live.Doors)
	}
	if live.LastEvent != nil {
		t.Fatalf("last door event %+v after keypad events only", live.LastEvent)
	}
	if want := time.UnixMilli(at(3 * time.Second)).UTC(); !live.UpdatedAt.Equal(want) || live.Gaps != 0 {
		t.Fatalf("live state updated %s with %d gaps, want %s and none: keypad events count in the sequence", live.UpdatedAt, live.Gaps, want)
	}

	r.ingest([]wire.Message{
		event(wire.Event{TS: at(4 * time.Second), Kind: wire.EventDoor, Door: 5, Open: true, Cause: wire.CauseCode, Parcel: "p-1"}),
		event(wire.Event{TS: at(9 * time.Second), Kind: wire.EventDoor, Door: 5, Locked: true}),
		r.snapshot(t0.Add(10 * time.Second)),
	})
	if got, want := events.take(), []fleet.EventKind{fleet.EventDoorChanged, fleet.EventDoorChanged, fleet.EventTelemetryStored}; !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}

	testhub.WaitFor(t, 30*time.Second, "every point in InfluxDB", func() bool {
		return s.Count(t, "unit") == 2 && s.Count(t, "keypad") == 3 && s.Count(t, "door_event") == 2
	})
	// Only the first snapshot's keyframe stored door 5: neither the keypad events nor the
	// snapshot after the door's events (which agree with it) added a door point.
	if rows := s.Query(t, `SELECT "open", "locked" FROM door WHERE device='bank-1' AND door='5'`); len(rows) != 1 || rows[0][1] != false || rows[0][2] != true {
		t.Fatalf("door 5 points %v, want the keyframe's closed and locked only", rows)
	}
	if rows := s.Query(t, `SELECT "open", "parcel" FROM door_event WHERE device='bank-1' AND cause='code'`); len(rows) != 1 || rows[0][1] != true || rows[0][2] != "p-1" {
		t.Fatalf("door events opened by a code %v, want one of parcel p-1", rows)
	}
	rows := s.Query(t, `SELECT "result", "site", "door", "parcel", "failures", "locked_until" FROM keypad WHERE device='bank-1'`)
	want := [][]any{
		{"wrong", "oak", nil, nil, 1.0, nil},
		{"locked-out", "oak", nil, nil, 5.0, float64(at(17 * time.Minute))},
		{"accepted", "oak", 5.0, "p-1", nil, nil},
	}
	if len(rows) != len(want) {
		t.Fatalf("keypad points %v, want %v", rows, want)
	}
	for i, row := range rows {
		if !slices.Equal(row[1:], want[i]) {
			t.Errorf("keypad point %d: %v, want %v", i, row[1:], want[i])
		}
	}
}
