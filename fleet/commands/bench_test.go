package commands_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/agent"
	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/commands"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
)

// BenchmarkUnlockRoundTrip measures a remote unlock from the command service's Send to the
// device's confirmed result, with 1,000 units connected, each running the real agent on the
// simulator (its person opens an unlocked door after about 5 ms and holds it open for about a
// second, longer than the agent's door polling period). Units take turns, so no
// door is unlocked again while it is still open. Reported: p50, p99 and p99.9 in ms.
func BenchmarkUnlockRoundTrip(b *testing.B) {
	units := 1000
	if testing.Short() {
		units = 5
	}
	hub := testhub.Open(b)
	hub.Restart("")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ids := make([]string, units)
	for i := range ids {
		ids[i] = fmt.Sprintf("bank-%04d", i)
		hw, err := hardware.NewSimulator(hardware.SimConfig{Kind: hardware.KindLockerBank, Doors: 4, Seed: int64(i),
			OpenDelay: 5 * time.Millisecond, HoldOpen: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		cfg := agent.DefaultConfig()
		cfg.Hubs, cfg.DeviceID, cfg.Secret = []string{hub.URL()}, ids[i], hub.AddDevice(ids[i], fleet.KindLockerBank, 4)
		cfg.DataDir, cfg.Outbox.Fsync, cfg.TelemetryInterval = b.TempDir(), false, time.Minute
		a, err := agent.New(cfg, hw, agent.Options{})
		if err != nil {
			b.Fatal(err)
		}
		go a.Run(ctx)
	}
	testhub.WaitFor(b, 5*time.Minute, "all units online", func() bool {
		for _, id := range ids {
			if p, _ := hub.Presence(id); !p.Online {
				return false
			}
		}
		return true
	})
	svc, err := commands.New(sqldb.NewCommandStore(hub.DB), hub.Devices, hub.Broker, hub.Broker, commands.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.TakeResults(hub.Broker); err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Second) // the agents subscribe right after connecting
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		c, err := svc.Send(fleet.NewContextWithActor(ctx, fleet.Actor{ID: "token:bench"}), commands.Request{DeviceID: ids[i%units],
			Type: wire.CommandUnlock, Door: 1 + i/units%4, Reason: "benchmark", Timeout: 10 * time.Second}, true)
		if err != nil || c.Outcome != wire.OutcomeOpened {
			b.Fatalf("unlock %d: %+v %v", i, c, err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(q(0.999), "p99.9_ms")
}
