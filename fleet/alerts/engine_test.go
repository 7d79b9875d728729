package alerts

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// tech is the technician who acknowledges and resolves alerts in these tests.
var tech = fleet.Actor{ID: "token:tech", Name: "Ana, night desk"}

func TestDisabledDeviceAlertsResolve(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	h := newHarness(t, bank)
	h.door(1, true, wire.CauseNone)
	h.advance(time.Second)
	h.expect("forced", "forced-entry:1")
	if _, err := sqldb.NewDeviceService(h.db).SetEnabled(ctx, bank.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	h.expect("disabled")
	if _, ok := h.e.Health(h.dev); ok {
		t.Fatal("a disabled device still has a health")
	}
}

// A device removed and registered again under its id is a new unit: until the engine follows
// the registry its messages are not taken for the old unit's, and when it does (on the registry
// change, or when it starts after a change made while no hub ran) the old unit's open alert is
// resolved by the hub and the new unit starts with nothing of the old one's.
func TestRegisteredAgainIsANewUnit(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprint("restart=", restart), func(t *testing.T) {
			dir := t.TempDir()
			h := newHarnessIn(t, dir, bank, DefaultConfig())
			h.door(1, true, wire.CauseNone)
			h.advance(time.Second)
			h.expect("forced", "forced-entry:1")

			devices := sqldb.NewDeviceService(h.db)
			old := h.dev
			if err := devices.DeleteDevice(ctx, bank.ID); err != nil {
				t.Fatal(err)
			}
			again := new(*bank)
			if _, err := devices.CreateDevice(ctx, again); err != nil {
				t.Fatal(err)
			}
			h.dev = again
			h.door(2, true, wire.CauseNone)
			h.advance(time.Second)
			h.expect("registered again, before the engine followed", "forced-entry:1")

			if restart {
				h = newHarnessIn(t, dir, bank, DefaultConfig())
			} else if err := h.e.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			h.expect("followed")
			all, err := h.store.FindAlerts(ctx, fleet.AlertFilter{})
			if err != nil || len(all) != 1 || all[0].Registration != old.Registration || all[0].ResolvedBy != fleet.ActorHub ||
				all[0].ResolveNote != "device disabled or removed from the registry" {
				t.Fatalf("alerts %+v %v, want the old unit's resolved by the hub", all, err)
			}
			if _, ok := h.e.Health(old); ok {
				t.Error("the removed unit still has a health")
			}
			if got, ok := h.e.Health(h.dev); !ok || got != fleet.HealthOK {
				t.Errorf("the new unit's health: %s %v, want ok", got, ok)
			}

			h.door(1, false, wire.CauseNone)
			h.door(2, false, wire.CauseNone)
			h.door(1, true, wire.CauseNone)
			h.advance(time.Second)
			h.expect("the new unit's forced door", "forced-entry:1")
			if open, _ := h.store.FindAlerts(ctx, fleet.AlertFilter{Open: true}); len(open) != 1 || open[0].Registration != h.dev.Registration {
				t.Fatalf("open alerts %+v, want the new unit's", open)
			}
		})
	}
}

func TestHealthSummary(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	h := newHarness(t, bank)
	devices := sqldb.NewDeviceService(h.db)
	fridge9 := &fleet.Device{ID: "fridge-9", Kind: fleet.KindFridge, Site: "elm", Doors: 1}
	units := map[string]*fleet.Device{"bank-1": h.dev, "fridge-9": fridge9}
	for _, d := range []*fleet.Device{
		{ID: "bank-2", Kind: fleet.KindLockerBank, Site: "oak", Doors: 2},
		fridge9,
		{ID: "bank-3", Kind: fleet.KindLockerBank, Site: "elm", Doors: 1},
	} {
		units[d.ID] = d
		if _, err := devices.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		h.presence.set(fleet.Presence{DeviceID: d.ID, Online: true, ConnectedSince: h.clock, LastSeen: h.clock})
	}
	if err := h.e.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	h.presence.set(fleet.Presence{DeviceID: "bank-3", Online: false, DisconnectedAt: h.clock})
	h.door(1, true, wire.CauseNone)                                                                                                                   // bank-1: critical
	h.e.HandleEvent(messageEvent(fridge9, wire.Telemetry{V: 1, Seq: 9, TS: h.clock.UnixMilli(), Doors: []wire.DoorState{{Door: 1, TempC: f(3)}}}, 4)) // warning
	h.advance(time.Second)

	got := h.e.Summary(func(string) bool { return true })
	want := []fleet.SiteHealth{
		{Site: "elm", Units: 2, Warning: 1, Offline: 1, Open: 1},
		{Site: "oak", Units: 2, OK: 1, Critical: 1, Open: 1},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Summary = %+v, want %+v", got, want)
	}
	if got := h.e.Summary(func(s string) bool { return s == "oak" }); len(got) != 1 || got[0].Site != "oak" {
		t.Fatalf("scoped Summary = %+v", got)
	}
	for id, want := range map[string]fleet.Health{"bank-1": fleet.HealthCritical, "bank-2": fleet.HealthOK,
		"fridge-9": fleet.HealthWarning, "bank-3": fleet.HealthOffline} {
		if got, ok := h.e.Health(units[id]); !ok || got != want {
			t.Errorf("Health(%s) = %s, %v; want %s", id, got, ok, want)
		}
	}
}
