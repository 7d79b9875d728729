package alerts

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// tech is the technician who acknowledges and resolves alerts in these tests.
var tech = fleet.Actor{ID: "token:tech", Name: "Ana, night desk"}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, bank)
	h.door(1, true, wire.CauseNone)
	h.advance(time.Second)
	h.expect("forced", "forced-entry:1")
	open, _ := h.store.FindAlerts(ctx, fleet.AlertFilter{Open: true})
	id := open[0].ID

	// One alert while it lasts: another forced opening of the same door adds none.
	h.door(1, false, wire.CauseNone)
	h.door(1, true, wire.CauseNone)
	h.advance(time.Minute)
	if all, _ := h.store.FindAlerts(ctx, fleet.AlertFilter{}); len(all) != 1 {
		t.Fatalf("%d alerts for one open condition, want 1", len(all))
	}

	a, err := h.e.Ack(fleet.NewContextWithActor(ctx, tech), id, "on my way")
	if err != nil || a.State != fleet.AlertAcknowledged || a.AckedBy != "token:tech" || a.AckedByName != tech.Name || !a.AckedAt.Equal(h.clock) {
		t.Fatalf("Ack = %+v, %v", a, err)
	}
	if _, err := h.e.Ack(fleet.NewContextWithActor(ctx, tech), id, ""); fleet.ErrorCode(err) != fleet.ECONFLICT {
		t.Fatalf("second ack: %v, want conflict", err)
	}
	if _, err := h.e.Ack(fleet.NewContextWithActor(ctx, tech), id+100, ""); fleet.ErrorCode(err) != fleet.ENOTFOUND {
		t.Fatalf("ack of an unknown alert: %v, want not found", err)
	}
	h.expect("acknowledged is still open", "forced-entry:1")

	a, err = h.e.Resolve(fleet.NewContextWithActor(ctx, tech), id, "door repaired")
	if err != nil || a.State != fleet.AlertResolved || a.ResolvedBy != "token:tech" || a.ResolvedByName != tech.Name || a.ResolveNote != "door repaired" {
		t.Fatalf("Resolve = %+v, %v", a, err)
	}
	h.door(1, false, wire.CauseNone)
	h.advance(time.Minute)
	h.expect("resolved by a person stays resolved")

	// The next forced opening is a new alert.
	h.door(1, true, wire.CauseNone)
	h.advance(time.Second)
	h.expect("forced again", "forced-entry:1")

	if got, want := h.notes.kinds(), []string{"fired forced-entry", "acknowledged forced-entry", "resolved forced-entry",
		"fired forced-entry"}; !slices.Equal(got, want) {
		t.Fatalf("notified %q, want %q", got, want)
	}
	var actions []string
	err = sqldb.NewAuditService(h.db).Entries(ctx, fleet.AuditFilter{Device: bank.ID}, func(e *fleet.AuditEntry) error {
		if e.Action != fleet.AuditDeviceCreate { // the harness registered the unit
			actions = append(actions, e.Actor+" "+string(e.Action)+" "+e.Detail["note"].(string))
		}
		return nil
	})
	if want := []string{"token:tech alert.ack on my way", "token:tech alert.resolve door repaired"}; err != nil || !slices.Equal(actions, want) {
		t.Fatalf("audit trail %q, %v; want %q", actions, err, want)
	}
}

func TestRestartTakesUpOpenAlerts(t *testing.T) {
	dir := t.TempDir()
	h := newHarnessIn(t, dir, fridge, DefaultConfig())
	temp(1, 9)(h)
	h.unlock(2, wire.OutcomeJammed)
	h.publishNow()
	h.advance(time.Second)
	h.expect("before the restart", "cold-holding-critical:1", "unlock-not-opened:2")

	// A new engine on the same store: the conditions still hold, and nothing fires twice
	// (the 15-minute rule joins in, once).
	h2 := newHarnessIn(t, dir, fridge, DefaultConfig())
	h2.clock = h.clock
	h2.world = h.world
	h2.publishNow()
	h2.advance(time.Hour)
	h2.expect("after the restart", "cold-holding-critical:1", "cold-holding:1", "unlock-not-opened:2")
	if all, _ := h2.store.FindAlerts(context.Background(), fleet.AlertFilter{}); len(all) != 3 {
		t.Fatalf("%d alerts after the restart, want 3", len(all))
	}

	// What cleared resolves as usual; the jammed door stands until it opens.
	temp(1, 3.5)(h2)
	h2.publishNow()
	h2.advance(3 * time.Minute)
	h2.expect("cooled down", "unlock-not-opened:2")
	h2.unlock(2, wire.OutcomeOpened)
	h2.advance(2 * time.Second)
	h2.expect("opened")
}

func TestRestartResolvesWhatNoLongerApplies(t *testing.T) {
	dir := t.TempDir()
	h := newHarnessIn(t, dir, bank, DefaultConfig())
	h.door(2, true, wire.CauseNone)
	h.advance(time.Second)
	h.expect("forced", "forced-entry:2")

	cfg := DefaultConfig()
	cfg.Rules = slices.DeleteFunc(cfg.Rules, func(r Rule) bool { return r.Kind == KindForcedEntry })
	h2 := newHarnessIn(t, dir, bank, cfg)
	h2.expect("rule removed")
	a, _ := h2.store.FindAlerts(context.Background(), fleet.AlertFilter{})
	if len(a) != 1 || a[0].ResolvedBy != fleet.ActorHub || a[0].ResolveNote != "rule forced-entry is no longer configured" {
		t.Fatalf("alerts %+v", a)
	}
}

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

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"default", func(*Config) {}, ""},
		{"no tick", func(c *Config) { c.Tick = 0 }, "alerts.tick"},
		{"bad name", func(c *Config) { c.Rules[0].Name = "Device Offline" }, "alerts.rules[0]"},
		{"duplicate name", func(c *Config) { c.Rules[1].Name = c.Rules[0].Name }, "used twice"},
		{"unknown kind", func(c *Config) { c.Rules[0].Kind = "smoke" }, `kind "smoke"`},
		{"bad severity", func(c *Config) { c.Rules[0].Severity = "urgent" }, "severity"},
		{"no hysteresis", func(c *Config) { c.Rules[6].ClearThreshold = c.Rules[6].Threshold }, "hysteresis"},
		{"wrong side", func(c *Config) { c.Rules[9].ClearThreshold = -1 }, "must be above"},
		{"bad class", func(c *Config) { c.Rules[6].Class = "warm" }, "class"},
		{"no count", func(c *Config) { c.Rules[4].Count = 0 }, "count"},
		{"negative for", func(c *Config) { c.Rules[2].For = -time.Second }, "negative"},
		{"pull-down without a rate", func(c *Config) { c.Pulldown.Freezer.Rate = 0 }, "alerts.pulldown.freezer"},
		{"negative pull-down", func(c *Config) { c.Pulldown.Chilled.Max = -time.Minute }, "alerts.pulldown.chilled"},
		{"no pull-down", func(c *Config) { c.Pulldown.Chilled = Pulldown{} }, ""},
		{"stuck sensor without for", func(c *Config) { c.Rules[13].For = 0 }, "stuck"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.change(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// Two hubs of a cluster on one store: the follower evaluates nothing but shows the leader's
// alerts, and a person resolving one through the follower lets the leader fire anew.
func TestFollowerMirrorsTheLeader(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	leader := newHarnessIn(t, dir, bank, DefaultConfig())
	follower := newHarnessIn(t, dir, bank, DefaultConfig())
	follower.e.leading = func() bool { return false }
	follower.clock = leader.clock

	leader.door(1, true, wire.CauseNone)
	leader.advance(time.Second)
	leader.expect("forced", "forced-entry:1")
	if h, _ := follower.e.Health(follower.dev); h != fleet.HealthOK {
		t.Fatalf("follower health %s before following", h)
	}
	if err := follower.e.follow(ctx); err != nil {
		t.Fatal(err)
	}
	if h, _ := follower.e.Health(follower.dev); h != fleet.HealthCritical {
		t.Fatalf("follower health %s, want the leader's critical alert", h)
	}
	open, _ := leader.store.FindAlerts(ctx, fleet.AlertFilter{Open: true})
	if _, err := follower.e.Resolve(fleet.NewContextWithActor(ctx, tech), open[0].ID, "door repaired"); err != nil {
		t.Fatal(err)
	}
	if err := leader.e.follow(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := leader.notes.mirroredKinds(), []string{"resolved forced-entry"}; !slices.Equal(got, want) {
		t.Fatalf("the leader's dashboards learnt %q, want %q", got, want)
	}
	leader.door(1, false, wire.CauseNone)
	leader.door(1, true, wire.CauseNone)
	leader.advance(time.Second)
	leader.expect("forced again", "forced-entry:1")
	if all, _ := leader.store.FindAlerts(ctx, fleet.AlertFilter{}); len(all) != 2 {
		t.Fatalf("%d alerts, want the resolved one and a new one", len(all))
	}
	if err := follower.e.follow(ctx); err != nil {
		t.Fatal(err)
	}
	if h, _ := follower.e.Health(follower.dev); h != fleet.HealthCritical {
		t.Fatalf("follower health %s after the new alert", h)
	}
	if got, want := follower.notes.kinds(), []string{"resolved forced-entry"}; !slices.Equal(got, want) {
		t.Fatalf("the follower notified %q, want only what its user did: %q", got, want)
	}
	// Its dashboards learn what the leader did, and not again what the follower did itself.
	if got, want := follower.notes.mirroredKinds(), []string{"fired forced-entry", "fired forced-entry"}; !slices.Equal(got, want) {
		t.Fatalf("the follower's dashboards learnt %q, want %q", got, want)
	}

	// The follower sees every opening but judges none: it keeps only those a leader dying now
	// may not have judged yet.
	for range 50 {
		follower.door(2, true, wire.CauseNone)
		follower.door(2, false, wire.CauseNone)
	}
	follower.e.idle(follower.clock)
	if n := len(follower.e.unit(bank.ID).doors[2].openings); n != 50 {
		t.Fatalf("%d openings kept, want the 50 recent ones", n)
	}
	follower.e.idle(follower.clock.Add(followInterval + time.Second))
	if n := len(follower.e.unit(bank.ID).doors[2].openings); n != 0 {
		t.Fatalf("%d openings kept after the leader had time to judge them", n)
	}
}

// An alert no hub can take up, its rule gone from the configuration, is resolved by the hub
// that leads, and left alone by the others.
func TestLeaderResolvesWhatNoLongerApplies(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, bank)
	a := &fleet.Alert{Rule: "retired-rule", Severity: fleet.SeverityMajor, Scope: fleet.ScopeDevice, DeviceID: bank.ID, Site: bank.Site,
		Registration: h.dev.Registration, Summary: "from an older configuration", FiredAt: h.clock}
	if err := h.store.CreateAlert(ctx, a); err != nil {
		t.Fatal(err)
	}
	leads := false
	h.e.leading = func() bool { return leads }
	if err := h.e.follow(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.store.FindAlertByID(ctx, a.ID); got.State != fleet.AlertFiring {
		t.Fatalf("a follower changed the alert: %s", got.State)
	}
	leads = true
	if err := h.e.follow(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.store.FindAlertByID(ctx, a.ID); got.State != fleet.AlertResolved || got.ResolvedBy != fleet.ActorHub {
		t.Fatalf("after the leader followed: %s by %q, want resolved by the hub", got.State, got.ResolvedBy)
	}
}

// On a hub of a cluster an unlock authorizes one opening: it is counted as the broker delivers
// it, which every hub sees, and not again as this hub's commands service creates it.
func TestClusterCountsAnUnlockOnce(t *testing.T) {
	h := newHarness(t, bank)
	h.e.leading = func() bool { return true }
	unlock := fleet.Command{ID: "c1", DeviceID: h.dev.ID, Type: wire.CommandUnlock, Door: 1, Status: fleet.CommandCreated}
	h.e.HandleEvent(fleet.Event{Kind: fleet.EventCommandChanged, Command: unlock})
	h.e.HandleEvent(fleet.Event{Kind: fleet.EventCommandSeen, Command: unlock})
	h.door(1, true, wire.CauseNone)
	h.advance(time.Second)
	h.expect("opened by the unlock")
	h.door(1, false, wire.CauseNone)
	h.door(1, true, wire.CauseNone)
	h.advance(time.Second)
	h.expect("opened again", "forced-entry:1")
}
