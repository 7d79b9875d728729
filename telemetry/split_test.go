package telemetry_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/telemetry"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

// countingPublisher counts the events the pipeline publishes.
type countingPublisher struct{ n atomic.Int32 }

func (o *countingPublisher) Publish(fleet.Event) { o.n.Add(1) }

// A hub of a cluster stores its share of the stream (Store) and keeps the live state from the
// whole stream (Apply): each half does its part and not the other's.
func TestStoreAndApplySplitIngest(t *testing.T) {
	t.Parallel()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	dir := t.TempDir()
	db, err := sqldb.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	devices := sqldb.NewDeviceService(db)
	bank := &fleet.Device{ID: "bank-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 2}
	if _, err := devices.CreateDevice(ctx, bank); err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	obs := &countingPublisher{}
	p, err := telemetry.NewPipeline(sp, devices, telemetry.Options{Events: obs})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(seq uint64) wire.Telemetry {
		return wire.Telemetry{V: wire.Version, Seq: seq, TS: time.Now().UnixMilli(), Doors: []wire.DoorState{{Door: 1, Locked: true}}}
	}

	receipt, err := p.Store(ctx, "bank-1", wire.ChannelTelemetry, msg(1))
	if err == nil {
		err = receipt.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	if st := sp.Stats(); st.Records != 1 {
		t.Fatalf("spool holds %d records after Store, want 1", st.Records)
	}
	if _, ok := p.LiveState(bank); ok || obs.n.Load() != 0 {
		t.Fatal("Store updated the live state or published it: that is Apply's part")
	}

	if err := p.Apply(ctx, "bank-1", wire.ChannelTelemetry, msg(2)); err != nil {
		t.Fatal(err)
	}
	if st := sp.Stats(); st.Records != 1 {
		t.Fatalf("spool holds %d records after Apply, want still 1", st.Records)
	}
	if s, ok := p.LiveState(bank); !ok || s.Snapshot == nil || s.Snapshot.Seq != 2 || obs.n.Load() != 1 {
		t.Fatalf("live state %+v, %v, published %d times; want seq 2, told once", s, ok, obs.n.Load())
	}

	// Both refuse what does not fit the registry, without an error: resending would not help.
	bad := msg(3)
	bad.Doors[0].Door = 9
	if err := p.Apply(ctx, "bank-1", wire.ChannelTelemetry, bad); err != nil {
		t.Fatal(err)
	}
	if r, err := p.Store(ctx, "bank-1", wire.ChannelTelemetry, bad); err != nil || r.Wait(ctx) != nil {
		t.Fatalf("Store of an unknown door: %v", err)
	}
	if err := p.Apply(ctx, "nobody", wire.ChannelTelemetry, msg(4)); err != nil {
		t.Fatal(err)
	}
	if _, err := devices.SetEnabled(ctx, "bank-1", false); err != nil {
		t.Fatal(err)
	}
	if err := p.InvalidateDevices(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(ctx, "bank-1", wire.ChannelTelemetry, msg(5)); err != nil {
		t.Fatal(err)
	}
	if r, err := p.Store(ctx, "bank-1", wire.ChannelTelemetry, msg(6)); err != nil || r.Wait(ctx) != nil {
		t.Fatalf("Store for a disabled device: %v", err)
	}
	if st := sp.Stats(); st.Records != 1 || obs.n.Load() != 1 {
		t.Fatalf("refused messages reached the spool (%d records) or were published (%d)", st.Records, obs.n.Load())
	}
}
