package telemetry_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/telemetry"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

// The live state is a registration's: a unit registered again under a removed unit's id starts
// with none of the old unit's doors, readings or sequence accounting, the old unit's state is
// dropped when the registry changes, and a message of the old unit still on its way after the
// new unit's first one does not overwrite the new unit's state.
func TestLiveStateBelongsToARegistration(t *testing.T) {
	t.Parallel()
	ctx, db := openRegistry(t)
	devices := sqldb.NewDeviceService(db)
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	p, err := telemetry.NewPipeline(sp, devices, telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	register := func(site string) *fleet.Device {
		t.Helper()
		d := &fleet.Device{ID: "bank-1", Kind: fleet.KindLockerBank, Site: site, Doors: 2}
		if _, err := devices.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	apply := func(seq uint64, door int) {
		t.Helper()
		msg := wire.Telemetry{V: wire.Version, Seq: seq, TS: time.Now().UnixMilli(), Doors: []wire.DoorState{{Door: door, Open: true}}}
		if err := p.Apply(ctx, "bank-1", wire.ChannelTelemetry, msg); err != nil {
			t.Fatal(err)
		}
	}
	invalidate := func() {
		t.Helper()
		if err := p.InvalidateDevices(ctx); err != nil {
			t.Fatal(err)
		}
	}

	oak := register("oak")
	for seq := uint64(1); seq <= 5; seq++ {
		apply(seq, 1)
	}
	apply(9, 1) // 6..8 never arrive; a gap once the hole times out, a duplicate now:
	apply(9, 1)
	if s, ok := p.LiveState(oak); !ok || s.Snapshot.Seq != 9 || s.Duplicates != 1 || len(s.Doors) != 1 {
		t.Fatalf("the oak unit's live state: %+v %v", s, ok)
	}
	// The oak unit's last message is on its way through the pipeline (looked up, not yet
	// stored) while the id is registered again.
	late, err := p.Ingest(ctx, "bank-1", wire.ChannelTelemetry,
		wire.Telemetry{V: wire.Version, Seq: 10, TS: time.Now().UnixMilli(), Doors: []wire.DoorState{{Door: 1, Open: true}}})
	if err != nil {
		t.Fatal(err)
	}
	for time.Since(oak.CreatedAt) < 2*time.Millisecond {
		time.Sleep(time.Millisecond) // a registration time of its own for the next unit
	}

	if err := devices.DeleteDevice(ctx, "bank-1"); err != nil {
		t.Fatal(err)
	}
	elm := register("elm")
	if s, ok := p.LiveState(elm); ok {
		t.Fatalf("the unit registered again shows the removed unit's live state: %+v", s)
	}
	invalidate() // what the hub does when the registry changes
	if s, ok := p.LiveState(oak); ok {
		t.Fatalf("the removed unit's live state is kept: %+v", s)
	}

	apply(1, 2)
	s, ok := p.LiveState(elm)
	if !ok || s.Snapshot.Seq != 1 || s.Duplicates != 0 || s.Gaps != 0 || len(s.Doors) != 1 || s.Doors[0].Door != 2 {
		t.Fatalf("the new unit's live state: %+v %v, want only its own first message", s, ok)
	}

	if err := late.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if s, ok := p.LiveState(elm); !ok || s.Snapshot.Seq != 1 || len(s.Doors) != 1 || s.Doors[0].Door != 2 {
		t.Fatalf("the new unit's live state after the old unit's late message: %+v %v", s, ok)
	}
}

// countingDirectory counts the registry lookups of single devices.
type countingDirectory struct {
	telemetry.DeviceDirectory
	mu      sync.Mutex
	lookups int
}

func (c *countingDirectory) FindDeviceByID(ctx context.Context, id string) (*fleet.Device, error) {
	c.mu.Lock()
	c.lookups++
	c.mu.Unlock()
	return c.DeviceDirectory.FindDeviceByID(ctx, id)
}

// Once the registry is read (as the hub does when it starts), a fleet's first messages are
// taken in without a registry query each; a unit registered later is looked up once.
func TestRegistryReadOnceForAFleet(t *testing.T) {
	t.Parallel()
	ctx, db := openRegistry(t)
	devices := &countingDirectory{DeviceDirectory: sqldb.NewDeviceService(db)}
	var fleetOf []*fleet.Device
	for i := range 50 {
		fleetOf = append(fleetOf, &fleet.Device{ID: fmt.Sprintf("bank-%02d", i), Kind: fleet.KindLockerBank, Site: "oak", Doors: 2})
	}
	if _, err := sqldb.NewDeviceService(db).CreateDevices(ctx, fleetOf); err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(t.TempDir(), spool.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	p, err := telemetry.NewPipeline(sp, devices, telemetry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.InvalidateDevices(ctx); err != nil {
		t.Fatal(err)
	}
	apply := func(id string) {
		t.Helper()
		msg := wire.Telemetry{V: wire.Version, Seq: 1, TS: time.Now().UnixMilli(), Doors: []wire.DoorState{{Door: 1}}}
		if err := p.Apply(ctx, id, wire.ChannelTelemetry, msg); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range fleetOf {
		apply(d.ID)
	}
	if devices.lookups != 0 {
		t.Errorf("%d registry lookups for a fleet read at start, want none", devices.lookups)
	}
	late := &fleet.Device{ID: "bank-late", Kind: fleet.KindLockerBank, Site: "oak", Doors: 2}
	if _, err := sqldb.NewDeviceService(db).CreateDevice(ctx, late); err != nil {
		t.Fatal(err)
	}
	apply(late.ID)
	apply(late.ID)
	if devices.lookups != 1 {
		t.Errorf("%d registry lookups for a unit registered later, want 1", devices.lookups)
	}
	if _, ok := p.LiveState(late); !ok {
		t.Error("no live state for the unit registered later")
	}
}

// openRegistry opens a registry of the test's own in SQLite, and the context to change it in.
func openRegistry(t testing.TB) (context.Context, *sqldb.DB) {
	t.Helper()
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	db, err := sqldb.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return ctx, db
}
