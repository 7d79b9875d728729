package telemetry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/telemetry"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

// BenchmarkIngest measures the whole telemetry path with real parts: 32 units publish
// snapshots at QoS 1 over MQTT (up to 256 unacknowledged each) into the hub, which spools them
// with fsync and ships them to the development InfluxDB on the same machine. The clock stops when
// InfluxDB holds every point. Reported: messages/s and points/s end to end.
func BenchmarkIngest(b *testing.B) {
	const units, window = 32, 256
	r := newRig(b, units, false)
	clients := make([]paho.Client, units)
	for i := range clients {
		clients[i] = r.connect(fmt.Sprintf("unit-%d", i))
	}
	base := time.Now().Add(-2 * time.Hour)
	per := (b.N + units - 1) / units
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for u, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("unit-%d", u)
			var toks []paho.Token
			for seq := uint64(1); seq <= uint64(per); seq++ {
				p, _ := wire.Marshal(reading(u, seq, base.Add(time.Duration(seq)*time.Millisecond)))
				toks = append(toks, c.Publish(wire.Topic(id, wire.ChannelTelemetry), 1, false, p))
				if len(toks) == window {
					for _, t := range toks {
						t.Wait()
					}
					toks = toks[:0]
				}
			}
			for _, t := range toks {
				t.Wait()
			}
		}()
	}
	wg.Wait()
	acked := time.Since(start)
	want := units * per * temperaturesPerReading
	testhub.WaitFor(b, 10*time.Minute, "all points in InfluxDB", func() bool { return r.influx.Count(b, "temperature") >= want })
	elapsed := time.Since(start)
	b.StopTimer()
	msgs := float64(units * per)
	b.ReportMetric(msgs/acked.Seconds(), "acked_msgs/s")
	b.ReportMetric(msgs/elapsed.Seconds(), "stored_msgs/s")
	b.ReportMetric(msgs*7/elapsed.Seconds(), "stored_points/s")
}

// BenchmarkPipelineIngest measures the hub's cost per message between the broker and the
// disk: a 16-door bank snapshot is checked, turned into line protocol, spooled (fsync off) and
// applied to the live state once durable, while a reader empties the spool as the shipper
// would. Run with -benchmem: allocs/op is the allocations per message on that path.
func BenchmarkPipelineIngest(b *testing.B) {
	hub := testhub.Open(b)
	hub.AddDevice("bank-1", fleet.KindLockerBank, 16)
	sp, err := spool.Open(b.TempDir(), spool.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	p, err := telemetry.NewPipeline(sp, hub.Devices, telemetry.Options{Registerer: prometheus.NewRegistry(), Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			recs, err := sp.Read(ctx, 1000, 8<<20)
			if err != nil || sp.Commit(recs[len(recs)-1].Pos) != nil {
				return
			}
		}
	}()
	doors := make([]wire.DoorState, 16)
	for i := range doors {
		doors[i] = wire.DoorState{Door: i + 1, Locked: true}
	}
	amb := 21.5
	msg := wire.Telemetry{V: wire.Version, Doors: doors, AmbientC: &amb}
	base := time.Now().Add(-time.Hour).UnixMilli()
	seq := uint64(0)
	for b.Loop() {
		seq++
		msg.Seq, msg.TS = seq, base+int64(seq)
		r, err := p.Ingest(ctx, "bank-1", wire.ChannelTelemetry, msg)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
