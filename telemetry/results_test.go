package telemetry_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/testhub"
	"github.com/lockerhub/lockerhub/telemetry"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

// A unit numbers its command results with its telemetry and events (docs/protocol.md): a unit
// that answers commands has lost nothing, and one whose message never arrived has.
func TestCommandResultsAreNotGaps(t *testing.T) {
	t.Parallel()
	const holeTimeout = 200 * time.Millisecond
	hub := testhub.Open(t)
	secret := hub.AddDevice("fridge-1", fleet.KindFridge, 1)
	sp, err := spool.Open(filepath.Join(t.TempDir(), "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	p, err := telemetry.NewPipeline(sp, hub.Devices, telemetry.Options{Logger: testLogger(t), HoleTimeout: holeTimeout})
	if err != nil {
		t.Fatal(err)
	}
	hub.Options.Ingester = p
	hub.Restart("")
	c := paho.NewClient(paho.NewClientOptions().AddBroker(hub.URL()).SetClientID("fridge-1").SetUsername("fridge-1").
		SetPassword(secret).SetProtocolVersion(4).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	publish := func(ch wire.Channel, msg wire.Message) {
		t.Helper()
		b, err := wire.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		if tok := c.Publish(wire.Topic("fridge-1", ch), 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	snapshot := func(seq uint64) {
		t.Helper()
		temp := 3.0
		publish(wire.ChannelTelemetry, wire.Telemetry{V: wire.Version, Seq: seq, TS: time.Now().UnixMilli(),
			Doors: []wire.DoorState{{Door: 1, Locked: true, TempC: &temp}}})
	}
	result := func(seq uint64) {
		t.Helper()
		publish(wire.ChannelResult, wire.Result{V: wire.Version, ID: "c-1", Seq: seq, TS: time.Now().UnixMilli(), Outcome: wire.OutcomeOpened})
	}
	dev, err := hub.Devices.FindDeviceByID(context.Background(), "fridge-1")
	if err != nil {
		t.Fatal(err)
	}
	gapsAfter := func(last uint64) uint64 {
		t.Helper()
		time.Sleep(2 * holeTimeout) // an open hole is a loss from now on
		snapshot(last)
		var s fleet.LiveState
		testhub.WaitFor(t, 10*time.Second, "the last snapshot seen", func() bool {
			var ok bool
			s, ok = p.LiveState(dev)
			return ok && s.Snapshot != nil && s.Snapshot.Seq == last
		})
		return s.Gaps
	}

	snapshot(1)
	result(2)
	snapshot(3)
	result(4)
	if gaps := gapsAfter(5); gaps != 0 {
		t.Fatalf("%d sequence numbers lost after two command results; want none", gaps)
	}
	snapshot(7) // 6 never arrives
	if gaps := gapsAfter(8); gaps != 1 {
		t.Fatalf("%d sequence numbers lost after one that never arrived; want 1", gaps)
	}
}
