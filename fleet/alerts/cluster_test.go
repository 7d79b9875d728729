package alerts

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

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
