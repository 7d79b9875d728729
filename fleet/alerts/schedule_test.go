package alerts

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/sqldb"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// at moves the harness's clock to t and evaluates once, with no snapshot published; the unit's
// connection stays alive (it pings) unless silent.
func (h *harness) at(t time.Time) {
	h.clock = t
	if p, _ := h.presence.Presence(h.dev.ID); p.Online && !h.silent {
		p.LastSeen = t
		h.presence.set(p)
	}
	h.e.Evaluate(context.Background())
}

// evaluations returns how many unit evaluations the engine counted.
func evaluations(t *testing.T, e *Engine) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.metrics.evaluations)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		t.Fatalf("gather evaluations: %v", err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

// An ajar door fires exactly when its for: window ends, with the engine looked at only then:
// the window is a deadline, not something a tick finds.
func TestAjarFiresAtItsDeadline(t *testing.T) {
	h := newHarness(t, bank)
	h.at(h.clock)
	opened := h.clock
	h.door(2, true, wire.CauseLocal)
	h.at(opened)
	h.at(opened.Add(10*time.Minute - time.Nanosecond))
	h.expect("just before 10 minutes", "telemetry-stale") // no snapshot was published meanwhile
	h.at(opened.Add(10 * time.Minute))
	h.expect("10 minutes", "door-ajar:2", "telemetry-stale")
}

// A unit that goes silent counts as offline when its heartbeat timeout ends, and is reported
// offline for minutes after that, however rarely the engine was looked at in between.
func TestSilentUnitOfflineAtItsDeadline(t *testing.T) {
	h := newHarness(t, bank)
	h.at(h.clock)
	last := h.clock
	h.silent = true
	offline := last.Add(DefaultConfig().HeartbeatTimeout + time.Nanosecond)
	h.at(offline.Add(5*time.Minute - time.Nanosecond))
	h.expect("just before 5 minutes offline")
	h.at(offline.Add(5 * time.Minute))
	h.expect("5 minutes offline", "device-offline")
	alerts, err := h.store.FindAlerts(context.Background(), fleet.AlertFilter{Open: true, Severity: fleet.SeverityMajor})
	if err != nil || len(alerts) != 1 {
		t.Fatalf("offline alerts %v, %v", alerts, err)
	}
	if want := "offline since " + last.Format(time.RFC3339); alerts[0].Summary != want {
		t.Fatalf("summary %q, want %q", alerts[0].Summary, want)
	}
}

// A disconnect told to the engine is judged at once, and counts from the disconnect.
func TestDisconnectEventJudgedAtOnce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rules[0].For = 0 // device-offline at once
	h := newHarnessIn(t, t.TempDir(), bank, cfg)
	h.at(h.clock)
	h.clock = h.clock.Add(time.Second)
	h.disconnect()
	p, _ := h.presence.Presence(h.dev.ID)
	h.e.HandleEvent(fleet.Event{Kind: fleet.EventPresenceChanged, Presence: p})
	h.at(h.clock)
	h.expect("disconnected", "device-offline")
}

// A message evaluates its own unit's rules and no other's; with nothing happening, nothing is
// evaluated until a unit's deadline.
func TestEvaluationsFollowMessages(t *testing.T) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Actor{ID: "cli"})
	h := newHarness(t, bank)
	devices := sqldb.NewDeviceService(h.db)
	others := make([]*fleet.Device, 50)
	for i := range others {
		d := &fleet.Device{ID: "bank-x" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Kind: fleet.KindLockerBank, Site: "elm", Doors: 8}
		if _, err := devices.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		others[i] = d
	}
	if err := h.e.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range others {
		h.presence.set(fleet.Presence{DeviceID: d.ID, Online: true, ConnectedSince: h.clock, LastSeen: h.clock})
	}
	h.at(h.clock)
	before := evaluations(t, h.e)
	if before < float64(len(others)+1) {
		t.Fatalf("%v evaluations, want every new unit once", before)
	}

	h.clock = h.clock.Add(time.Second)
	h.publishNow()
	h.at(h.clock)
	if got := evaluations(t, h.e) - before; got != 1 {
		t.Fatalf("one unit's snapshot: %v evaluations, want 1", got)
	}

	before = evaluations(t, h.e)
	for range 60 {
		h.at(h.clock.Add(time.Second))
	}
	if got := evaluations(t, h.e) - before; got != 0 {
		t.Fatalf("a minute with nothing due: %v evaluations, want 0", got)
	}

	// One device disabled and enabled again: only it is looked at again.
	for _, enabled := range []bool{false, true} {
		if _, err := devices.SetEnabled(ctx, others[3].ID, enabled); err != nil {
			t.Fatal(err)
		}
		if err := h.e.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	before = evaluations(t, h.e)
	h.at(h.clock)
	if got := evaluations(t, h.e) - before; got != 1 {
		t.Fatalf("one device changed: %v evaluations, want 1", got)
	}
}

// Run sleeps until a deadline and evaluates then, whatever the tick: an ajar door fires at
// the end of its window, not at the next tick an hour away.
func TestRunWakesAtDeadlines(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Tick = time.Hour
	const window = 300 * time.Millisecond
	for i := range cfg.Rules {
		if cfg.Rules[i].Kind == KindDoorOpen {
			cfg.Rules[i].For = window
		}
	}
	h := newHarnessIn(t, t.TempDir(), bank, cfg)
	h.e.now = time.Now
	h.presence.set(fleet.Presence{DeviceID: h.dev.ID, Online: true, ConnectedSince: time.Now(), LastSeen: time.Now(), KeepAlive: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.e.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	opened := time.Now()
	h.seq++
	h.e.HandleEvent(messageEvent(h.dev, wire.Event{V: wire.Version, Seq: h.seq, TS: opened.UnixMilli(), Kind: wire.EventDoor, Door: 1,
		Open: true, Cause: wire.CauseLocal}, 0))
	giveUp := time.Now().Add(30 * time.Second) // far below the hour a tick would take
	for {
		alerts, err := h.store.FindAlerts(ctx, fleet.AlertFilter{Open: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts) > 0 {
			if a := alerts[0]; a.Rule != "door-ajar" || a.Door != 1 || a.FiredAt.Before(opened.Add(window).Truncate(time.Millisecond)) {
				t.Fatalf("alert %s door %d fired at %s, want door-ajar on door 1 not before %s", a.Rule, a.Door, a.FiredAt, opened.Add(window))
			}
			return
		}
		if time.Now().After(giveUp) {
			t.Fatal("no door-ajar alert: Run did not wake at the window's end")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A connected unit that only pings is looked at once per heartbeat timeout, and only to see
// that the broker still hears it: its rules are not evaluated again.
func TestPingsCostNoEvaluation(t *testing.T) {
	h := newHarnessIn(t, t.TempDir(), bank, idleConfig())
	h.at(h.clock)
	before := evaluations(t, h.e)
	start := h.clock
	for h.clock.Sub(start) < time.Hour {
		h.at(h.clock.Add(time.Minute))
	}
	if got := evaluations(t, h.e) - before; got != 0 {
		t.Fatalf("an hour of pings: %v evaluations, want 0", got)
	}
	h.expect("an hour of pings")
	h.silent = true // the pings stop: the next heartbeat deadline finds it gone
	h.at(h.clock.Add(DefaultConfig().HeartbeatTimeout + time.Minute))
	if got := evaluations(t, h.e) - before; got != 1 {
		t.Fatalf("pings stopped: %v evaluations, want 1", got)
	}
}
