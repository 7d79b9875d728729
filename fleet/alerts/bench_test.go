package alerts

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
)

// pinging is the presence of units that are all connected and ping within their keepalive: the
// broker has just heard from each of them, whatever the time.
type pinging struct{ clock *time.Time }

func (p pinging) Presence(id string) (fleet.Presence, bool) {
	return fleet.Presence{DeviceID: id, Online: true, ConnectedSince: t0, LastSeen: *p.clock, KeepAlive: time.Minute}, true
}

// idleConfig is the default rules without the stale-telemetry rule: a unit that sends nothing
// at all is stale after three intervals, which is something happening; between its snapshots a
// healthy unit is idle, and its snapshots cost what BenchmarkMessage measures.
func idleConfig() Config {
	cfg := DefaultConfig()
	cfg.Rules = slices.DeleteFunc(cfg.Rules, func(r Rule) bool { return r.Kind == KindStale })
	return cfg
}

// benchEngine returns an engine watching n healthy connected units (half locker banks with 16
// doors, half fridges with 4), each with one snapshot observed and evaluated, on a clock the
// benchmark moves.
func benchEngine(b *testing.B, n int, cfg Config) (*Engine, *time.Time) {
	b.Helper()
	h := newHarnessIn(&testing.T{}, b.TempDir(), bank, cfg)
	e := h.e
	clock := new(time.Time)
	*clock = h.clock
	e.now = func() time.Time { return *clock }
	e.presence = pinging{clock}
	for i := range n {
		d := &fleet.Device{ID: fmt.Sprint("unit-", i), Kind: fleet.KindLockerBank, Site: fmt.Sprint("site-", i%20), Doors: 16, Enabled: true}
		if i%2 == 1 {
			d.Kind, d.Doors = fleet.KindFridge, 4
		}
		snap := healthy(d)
		snap.Seq, snap.TS = 1, clock.UnixMilli()
		e.HandleEvent(fleet.Event{Kind: fleet.EventTelemetryStored, Device: d, Message: snap})
	}
	e.Evaluate(context.Background())
	return e, clock
}

// BenchmarkEvaluate measures one evaluation of every unit of a fleet with nothing wrong: what a
// hub pays once when it starts or starts to lead a cluster.
func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n, "units"), func(b *testing.B) {
			e, clock := benchEngine(b, n, DefaultConfig())
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				*clock = clock.Add(time.Millisecond) // well within every unit's snapshot interval
				e.allDue()
				e.Evaluate(ctx)
			}
		})
	}
}

// BenchmarkIdle measures what one second of a fleet of connected units with nothing happening
// costs the engine (Run evaluates what is due at least every second): the share of one core
// the rules take at rest.
func BenchmarkIdle(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n, "units"), func(b *testing.B) {
			e, clock := benchEngine(b, n, idleConfig())
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				*clock = clock.Add(time.Second)
				e.Evaluate(ctx)
			}
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(time.Second)*100, "%core")
		})
	}
}

// BenchmarkHandleEvent measures what the engine adds to ingesting one snapshot, in the
// publisher's goroutine, among 10,000 units.
func BenchmarkHandleEvent(b *testing.B) {
	e, clock := benchEngine(b, 10000, idleConfig())
	d := &fleet.Device{ID: "unit-0", Kind: fleet.KindLockerBank, Site: "site-0", Doors: 16, Enabled: true}
	snap := healthy(d)
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		seq++
		snap.Seq, snap.TS = seq, clock.UnixMilli()+int64(seq)
		e.HandleEvent(fleet.Event{Kind: fleet.EventTelemetryStored, Device: d, Message: snap})
	}
}

// BenchmarkMessage measures a snapshot and the evaluation of its unit's rules it causes, among
// 10,000 units: the whole cost of one message to the rules. The clock moves by little enough
// that no other unit's heartbeat deadline falls due (BenchmarkIdle counts those).
func BenchmarkMessage(b *testing.B) {
	e, clock := benchEngine(b, 10000, idleConfig())
	ctx := context.Background()
	d := &fleet.Device{ID: "unit-0", Kind: fleet.KindLockerBank, Site: "site-0", Doors: 16, Enabled: true}
	snap := healthy(d)
	b.ReportAllocs()
	var seq uint64
	readings := [2]float64{10, 10.01} // a real sensor's noise: a healthy unit's sensors are not stuck
	for b.Loop() {
		seq++
		*clock = clock.Add(100 * time.Microsecond)
		snap.Seq, snap.TS = seq+1, t0.UnixMilli()+int64(seq)
		snap.EnclosureC, snap.AmbientC = &readings[seq%2], &readings[(seq+1)%2]
		e.HandleEvent(fleet.Event{Kind: fleet.EventTelemetryStored, Device: d, Message: snap})
		e.Evaluate(ctx)
	}
}
