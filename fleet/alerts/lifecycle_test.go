package alerts

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

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
