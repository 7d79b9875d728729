package alerts

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// benchEngine returns an engine watching n healthy units (half locker banks with 16 doors, half
// fridges with 4), each with one snapshot observed.
func benchEngine(b *testing.B, n int) *Engine {
	b.Helper()
	h := newHarnessIn(&testing.T{}, b.TempDir(), bank, DefaultConfig())
	e := h.e
	for i := range n {
		d := &fleet.Device{ID: fmt.Sprint("unit-", i), Kind: fleet.KindLockerBank, Site: fmt.Sprint("site-", i%20), Doors: 16, Enabled: true}
		if i%2 == 1 {
			d.Kind, d.Doors = fleet.KindFridge, 4
		}
		h.presence.set(fleet.Presence{DeviceID: d.ID, Online: true, ConnectedSince: h.clock, LastSeen: h.clock})
		snap := healthy(d)
		snap.Seq, snap.TS = 1, h.clock.UnixMilli()
		e.HandleEvent(fleet.Event{Kind: fleet.EventTelemetryStored, Device: d, Message: snap})
	}
	return e
}

// BenchmarkEvaluate measures one tick over a fleet with nothing wrong: the cost the tick adds
// per second of the hub's life.
func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n, "units"), func(b *testing.B) {
			e := benchEngine(b, n)
			clock := t0
			e.now = func() time.Time { return clock }
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				clock = clock.Add(time.Second)
				e.Evaluate(ctx)
			}
		})
	}
}

// BenchmarkHandleEvent measures what the engine adds to ingesting one snapshot.
func BenchmarkHandleEvent(b *testing.B) {
	e := benchEngine(b, 100)
	d := &fleet.Device{ID: "unit-0", Kind: fleet.KindLockerBank, Site: "site-0", Doors: 16, Enabled: true}
	snap := healthy(d)
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		seq++
		snap.Seq, snap.TS = seq, t0.UnixMilli()+int64(seq)
		e.HandleEvent(fleet.Event{Kind: fleet.EventTelemetryStored, Device: d, Message: snap})
	}
}
