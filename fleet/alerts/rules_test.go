package alerts

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// step changes the world (do may be nil), lets time pass, then checks the open alerts.
type step struct {
	what string
	do   func(h *harness)
	wait time.Duration
	want []string
}

var (
	bank    = &fleet.Device{ID: "bank-1", Kind: fleet.KindLockerBank, Site: "oak", Doors: 4}
	fridge  = &fleet.Device{ID: "fridge-1", Kind: fleet.KindFridge, Site: "oak", Doors: 2}
	freezer = &fleet.Device{ID: "freezer-1", Kind: fleet.KindFridge, Site: "oak", Doors: 2, Labels: map[string]string{"class": "freezer"}}
)

func temp(door int, c float64) func(h *harness) {
	return func(h *harness) { h.world.Doors[door-1].TempC = f(c) }
}

func TestDefaultRules(t *testing.T) {
	const tick = time.Second
	for _, tc := range []struct {
		name  string
		dev   *fleet.Device
		steps []step
	}{
		{"healthy units raise nothing", bank, []step{{what: "a day", wait: 24 * time.Hour}}},
		{"healthy fridge raises nothing", fridge, []step{{what: "a day", wait: 24 * time.Hour}}},

		{"offline after 5 minutes, resolved on reconnect", bank, []step{
			{what: "gone", do: (*harness).disconnect, wait: 5*time.Minute - tick},
			{what: "5 minutes", wait: 2 * tick, want: []string{"device-offline"}},
			{what: "back", do: (*harness).connect, wait: 29 * time.Second, want: []string{"device-offline"}},
			{what: "back for 30 s", wait: 2 * tick},
		}},
		{"a quick reconnect does not flap", bank, []step{
			{what: "gone", do: (*harness).disconnect, wait: 4 * time.Minute},
			{what: "back", do: (*harness).connect, wait: time.Minute},
			{what: "gone again", do: (*harness).disconnect, wait: 4 * time.Minute},
			{what: "back again", do: (*harness).connect, wait: 10 * time.Minute},
		}},
		{"a silent connection counts as offline", bank, []step{
			{what: "silent", do: func(h *harness) { h.silent = true }, wait: 3*time.Minute + 5*time.Minute + 2*tick,
				want: []string{"device-offline", "telemetry-stale"}},
		}},

		{"a connection that pings within its keepalive is online, though silent", bank, []step{
			{what: "10-minute keepalive", do: func(h *harness) { h.keepAlive = 10 * time.Minute; h.connect() }, wait: time.Minute},
			{what: "silent", do: func(h *harness) { h.silent = true }, wait: 30 * time.Minute, want: []string{"telemetry-stale"}},
		}},
		{"the interval is learned from the first snapshots", fridge, []step{
			{what: "four snapshots", wait: 3*snapshotEvery + tick},
			{what: "silent", do: func(h *harness) { h.silent = true }, wait: 3*snapshotEvery + 3*tick, want: []string{"telemetry-stale"}},
		}},
		{"stale telemetry after 3 intervals", fridge, []step{
			{what: "learn the interval", wait: 10 * time.Minute},
			{what: "silent", do: func(h *harness) { h.silent = true }, wait: 30 * time.Second},
			{what: "3 intervals", wait: snapshotEvery + tick, want: []string{"telemetry-stale"}},
			{what: "publishes again", do: func(h *harness) { h.silent = false }, wait: 2 * tick},
		}},

		{"door ajar after 10 minutes", bank, []step{
			{what: "opened on the keypad", do: func(h *harness) { h.door(2, true, wire.CauseLocal) }, wait: 10*time.Minute - tick},
			{what: "10 minutes", wait: 2 * tick, want: []string{"door-ajar:2"}},
			{what: "closed", do: func(h *harness) { h.door(2, false, wire.CauseNone) }, wait: 2 * tick},
		}},

		{"a pickup is neither ajar nor forced", bank, []step{
			{what: "opened on the keypad", do: func(h *harness) { h.door(4, true, wire.CauseLocal) }, wait: 40 * time.Second},
			{what: "closed", do: func(h *harness) { h.door(4, false, wire.CauseNone) }, wait: time.Hour},
		}},
		{"forced door fires at once and stays until a person resolves it", bank, []step{
			{what: "forced", do: func(h *harness) { h.door(3, true, wire.CauseNone) }, wait: tick, want: []string{"forced-entry:3"}},
			{what: "shut", do: func(h *harness) { h.door(3, false, wire.CauseNone) }, wait: time.Hour, want: []string{"forced-entry:3"}},
		}},
		{"a remote unlock is not a forced door", bank, []step{
			{what: "unlocked and opened", do: func(h *harness) { h.unlock(1, wire.OutcomeOpened) }, wait: 30 * time.Second},
			{what: "shut", do: func(h *harness) { h.door(1, false, wire.CauseNone) }, wait: time.Minute},
		}},
		{"an unlock authorizes one opening", bank, []step{
			{what: "unlocked and opened", do: func(h *harness) { h.unlock(1, wire.OutcomeOpened) }, wait: 10 * time.Second},
			{what: "shut", do: func(h *harness) { h.door(1, false, wire.CauseNone) }, wait: 10 * time.Second},
			{what: "forced right after", do: func(h *harness) { h.door(1, true, wire.CauseNone) }, wait: tick,
				want: []string{"forced-entry:1"}},
		}},
		{"a remote cause without a command is a forced door", bank, []step{
			{what: "claims remote", do: func(h *harness) { h.door(1, true, wire.CauseRemote) }, wait: tick, want: []string{"forced-entry:1"}},
		}},
		{"an unlock long ago does not authorize an opening now", bank, []step{
			{what: "unlock jammed", do: func(h *harness) { h.unlock(4, wire.OutcomeJammed) }, wait: 3 * time.Minute,
				want: []string{"unlock-not-opened:4"}},
			{what: "opened by hand", do: func(h *harness) { h.door(4, true, wire.CauseNone) }, wait: tick,
				want: []string{"forced-entry:4", "unlock-not-opened:4"}},
		}},

		{"jammed unlocks: one warns, three are major, an opening resolves both", bank, []step{
			{what: "jammed", do: func(h *harness) { h.unlock(2, wire.OutcomeJammed) }, wait: tick, want: []string{"unlock-not-opened:2"}},
			{what: "jammed twice more", do: func(h *harness) { h.unlock(2, wire.OutcomeJammed); h.unlock(2, wire.OutcomeJammed) }, wait: tick,
				want: []string{"door-jammed:2", "unlock-not-opened:2"}},
			{what: "opens", do: func(h *harness) { h.unlock(2, wire.OutcomeOpened) }, wait: 2 * tick},
		}},

		{"cold holding: 15 minutes above 5 °C", fridge, []step{
			{what: "5.5 °C", do: temp(1, 5.5), wait: 15*time.Minute - tick},
			{what: "15 minutes", wait: 2 * tick, want: []string{"cold-holding:1"}},
			{what: "4.8 °C is inside the band", do: temp(1, 4.8), wait: 10 * time.Minute, want: []string{"cold-holding:1"}},
			{what: "4.4 °C", do: temp(1, 4.4), wait: 2*time.Minute - snapshotEvery, want: []string{"cold-holding:1"}},
			{what: "4.4 °C for 2 minutes", wait: snapshotEvery + 2*tick},
		}},
		{"cold holding: a dip inside the band does not restart the window", fridge, []step{
			{what: "5.1", do: temp(2, 5.1), wait: 10 * time.Minute},
			{what: "4.9", do: temp(2, 4.9), wait: time.Minute},
			{what: "5.1 again", do: temp(2, 5.1), wait: 4*time.Minute - tick},
			{what: "15 minutes above the clear threshold", wait: 2 * tick, want: []string{"cold-holding:2"}},
		}},
		{"cold holding: a dip to the clear threshold restarts the window", fridge, []step{
			{what: "5.1", do: temp(2, 5.1), wait: 10 * time.Minute},
			{what: "4.4", do: temp(2, 4.4), wait: time.Minute},
			{what: "5.1 again", do: temp(2, 5.1), wait: 15*time.Minute - tick},
			{what: "15 minutes since the dip", wait: 2 * tick, want: []string{"cold-holding:2"}},
		}},
		{"cold holding: a pickup does not count", fridge, []step{
			{what: "door opened on the keypad", do: func(h *harness) { h.door(1, true, wire.CauseLocal); temp(1, 7)(h) }, wait: 3 * time.Minute},
			{what: "closed", do: func(h *harness) { h.door(1, false, wire.CauseNone) }, wait: 5 * time.Minute},
			{what: "cooled down", do: temp(1, 3.5), wait: time.Hour},
		}},
		{"cold holding: counted again when the door closes", fridge, []step{
			{what: "6 °C", do: temp(1, 6), wait: 10 * time.Minute},
			{what: "a pickup pauses the count", do: func(h *harness) { h.door(1, true, wire.CauseLocal) }, wait: 8 * time.Minute},
			{what: "closed, still 6 °C", do: func(h *harness) { h.door(1, false, wire.CauseNone) }, wait: 4 * time.Minute},
			{what: "15 minutes closed", wait: time.Minute + snapshotEvery, want: []string{"cold-holding:1"}},
		}},
		{"cold holding: above 8 °C at once", fridge, []step{
			{what: "running", wait: time.Minute}, // not starting warm: that is a pull-down
			{what: "8.5 °C", do: temp(2, 8.5), wait: snapshotEvery, want: []string{"cold-holding-critical:2"}},
		}},
		{"freezer: 15 minutes above -12 °C", freezer, []step{
			{what: "-10 °C", do: temp(1, -10), wait: 15*time.Minute - tick},
			{what: "15 minutes", wait: 2 * tick, want: []string{"freezer-warm:1"}},
			{what: "-14 °C for 2 minutes", do: temp(1, -14), wait: 2*time.Minute + snapshotEvery},
		}},

		{"heater failure: 20 minutes below 0 °C with the heater on", bank, []step{
			{what: "freezing", do: func(h *harness) { h.world.EnclosureC, h.world.Heater.On = f(-2), true }, wait: 20*time.Minute - tick},
			{what: "20 minutes", wait: 2 * tick, want: []string{"heater-failure"}},
			{what: "1 °C is inside the band", do: func(h *harness) { h.world.EnclosureC = f(1) }, wait: 10 * time.Minute, want: []string{"heater-failure"}},
			{what: "3 °C for 5 minutes", do: func(h *harness) { h.world.EnclosureC = f(3) }, wait: 5*time.Minute + snapshotEvery},
		}},
		{"stuck heater: on while 10 °C above its setpoint", bank, []step{
			{what: "hot and heating", do: func(h *harness) { h.world.EnclosureC, h.world.Heater.On = f(16), true }, wait: 15*time.Minute - tick},
			{what: "15 minutes", wait: 2 * tick, want: []string{"heater-stuck"}},
			{what: "heater off", do: func(h *harness) { h.world.Heater.On = false }, wait: 5*time.Minute + snapshotEvery},
		}},
		{"compressor running without cooling", fridge, []step{
			{what: "warm, running flat out", do: func(h *harness) {
				h.world.Compressor.On, h.world.Compressor.Duty = true, 1
				temp(1, 6.5)(h)
				temp(2, 6.2)(h)
			}, wait: 15*time.Minute + snapshotEvery, want: []string{"cold-holding:1", "cold-holding:2"}},
			{what: "30 minutes", wait: 15 * time.Minute, want: []string{"cold-holding:1", "cold-holding:2", "compressor-ineffective"}},
		}},

		{"a dead sensor is implausible after a minute", fridge, []step{
			{what: "no reading", do: func(h *harness) { h.world.Doors[1].TempC = nil }, wait: time.Minute - snapshotEvery},
			{what: "a minute", wait: snapshotEvery + tick, want: []string{"sensor-implausible"}},
			{what: "reads again", do: temp(2, 3.5), wait: time.Minute + snapshotEvery},
		}},
		{"a reading out of range is implausible", bank, []step{
			{what: "71 °C", do: func(h *harness) { h.world.EnclosureC = f(71) }, wait: time.Minute + snapshotEvery,
				want: []string{"sensor-implausible"}},
		}},
		{"a frozen compartment reading warns on that compartment after 20 minutes, though nothing switches", fridge, []step{
			{what: "frozen at 3.0 °C while the compartment warms", do: func(h *harness) { h.stuck = true; temp(2, 3)(h) },
				wait: 20*time.Minute - tick, want: nil},
			{what: "20 minutes", wait: 2 * tick, want: []string{"sensor-stuck:1", "sensor-stuck:2", "sensor-stuck"}},
			{what: "moves again", do: func(h *harness) { h.stuck = false }, wait: 2 * snapshotEvery},
		}},
		{"a frozen enclosure reading is the unit's", bank, []step{
			{what: "frozen at -10.6 °C", do: func(h *harness) { h.stuck = true; h.world.EnclosureC = f(-10.6) },
				wait: 20*time.Minute + snapshotEvery + tick, want: []string{"sensor-stuck"}},
		}},

		{"lost telemetry warns, and resolves after an hour without loss", bank, []step{
			{what: "5 lost", do: func(h *harness) {
				h.seq += 5
				h.observe(wire.Telemetry{V: 1, Seq: h.seq, TS: h.clock.UnixMilli(), Doors: h.world.Doors}, 5)
			},
				wait: tick, want: []string{"telemetry-loss"}},
			{what: "an hour", wait: time.Hour - 2*tick, want: []string{"telemetry-loss"}},
			{what: "over an hour", wait: 3 * tick},
		}},
		{"dropped snapshots count as lost", bank, []step{
			{what: "outbox dropped 3", do: func(h *harness) { h.world.Dropped = 3 }, wait: snapshotEvery, want: []string{"telemetry-loss"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.dev)
			for _, s := range tc.steps {
				if s.do != nil {
					s.do(h)
					h.publishNow()
				}
				h.advance(s.wait)
				h.expect(s.what, s.want...)
			}
		})
	}
}

// A technician must see which compartment's sensor to replace: a compartment's stuck sensor is
// the compartment's alert, the enclosure's or ambient sensor the unit's.
func TestStuckSensorScope(t *testing.T) {
	h := newHarness(t, fridge)
	h.stuck = true
	h.advance(21 * time.Minute)
	alerts, err := h.store.FindAlerts(context.Background(), fleet.AlertFilter{Open: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		want := fleet.ScopeCompartment
		if a.Door == 0 {
			want = fleet.ScopeDevice
		}
		if a.Rule != "sensor-stuck" || a.Scope != want || a.Severity != fleet.SeverityWarning || a.Door > 0 && a.Value == nil {
			t.Errorf("alert %+v: want sensor-stuck, scope %s, severity warning, with the frozen reading", a, want)
		}
	}
	if len(alerts) != 3 {
		t.Fatalf("%d alerts, want one per compartment and one for the ambient sensor", len(alerts))
	}
}

// A reading is stuck once it has been the same for the rule's for, counted from when it was
// first read: its first repeat, a snapshot later, is when the hub can tell, not when it began.
func TestStuckSensorCountsFromFirstReading(t *testing.T) {
	h := newHarness(t, fridge)
	h.stuck = true // frozen at new values, first read by the next snapshot
	temp(1, 3.2)(h)
	temp(2, 3)(h)
	h.world.AmbientC = f(13)
	firstRead := h.clock.Add(snapshotEvery)
	for h.clock.Before(firstRead.Add(25 * time.Minute)) {
		h.advance(time.Second)
		if open := h.open(); len(open) > 0 {
			if late := h.clock.Sub(firstRead.Add(20 * time.Minute)); late < 0 || late > 2*time.Second {
				t.Fatalf("%q opened %s after the readings froze, want 20 minutes", open, h.clock.Sub(firstRead))
			}
			return
		}
	}
	t.Fatal("no alert for readings frozen for 25 minutes")
}

// A freezer that has just started (after installation, a power cut, a defrost) pulls down from
// room temperature: while it cools at the expected rate its temperature and compressor rules
// wait, up to the class's pull-down max; one that stops cooling alerts at once.
func TestPulldown(t *testing.T) {
	// start is a freezer that came online warm with its compressor running flat out.
	start := func(t *testing.T) *harness {
		h := newHarness(t, freezer)
		h.world.Compressor.On, h.world.Compressor.Duty = true, 1
		temp(1, 3)(h)
		temp(2, 3.5)(h)
		h.publishNow()
		return h
	}
	// cool lowers both compartments by perMinute every minute for d.
	cool := func(h *harness, d time.Duration, perMinute float64) {
		for range int(d / time.Minute) {
			for i := range h.world.Doors {
				h.world.Doors[i].TempC = f(*h.world.Doors[i].TempC - perMinute)
			}
			h.advance(time.Minute)
		}
	}

	t.Run("cooling at 6 °C an hour raises nothing", func(t *testing.T) {
		h := start(t)
		cool(h, 210*time.Minute, 0.1) // down to -18 and -17.5
		h.expect("pulled down")
		h.world.Compressor.Duty = 0.4 // the thermostat holds it
		h.advance(time.Hour)
		h.expect("an hour later")
	})
	t.Run("one that stops cooling alerts at once", func(t *testing.T) {
		h := start(t)
		cool(h, 80*time.Minute, 0.1) // to -5 and -4.5, then stuck there
		h.expect("cooling for 80 minutes")
		h.advance(16 * time.Minute)
		h.expect("stopped cooling", "compressor-ineffective", "freezer-warm:1", "freezer-warm:2")
	})
	t.Run("pull-down lasts at most its max", func(t *testing.T) {
		h := start(t)
		cool(h, 4*time.Hour-time.Minute, 0.06) // 3.6 °C an hour, just above the expected 3: -11.3 at 4 h
		h.expect("cooling slowly for 4 hours")
		h.advance(2 * time.Minute)
		h.expect("4 hours", "compressor-ineffective", "freezer-warm:1", "freezer-warm:2")
	})
}

// An alert about repeated failures says how many there are now, not how many there were when
// it fired.
func TestUnlockFailedSummaryFollowsTheCount(t *testing.T) {
	h := newHarness(t, bank)
	summary := func() string {
		t.Helper()
		alerts, err := h.store.FindAlerts(context.Background(), fleet.AlertFilter{Open: true, DeviceID: bank.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range alerts {
			if a.Rule == "unlock-not-opened" {
				return a.Summary
			}
		}
		t.Fatal("no unlock-not-opened alert")
		return ""
	}
	h.unlock(2, wire.OutcomeJammed)
	h.advance(time.Second)
	if s := summary(); !strings.Contains(s, "after 1 unlock commands") {
		t.Fatalf("summary %q after one failure", s)
	}
	h.unlock(2, wire.OutcomeJammed)
	h.unlock(2, wire.OutcomeFailed)
	h.advance(time.Second)
	if s := summary(); !strings.Contains(s, "after 3 unlock commands") {
		t.Fatalf("summary %q after three failures", s)
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
		{"parcel overdue without after", func(c *Config) { c.Rules[15].After = 0 }, "after"},
		{"perishable overdue without a freezer limit", func(c *Config) { c.Rules[16].Freezer = 0 }, "freezer"},
		{"keypad lockout without a quiet period", func(c *Config) { c.Rules[17].ClearFor = 0 }, "clear_for"},
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

// The parcel views call a parcel overdue when the rules first could alert on it: the shortest
// threshold of each kind, the defaults where no rule is configured.
func TestDwellLimitsFollowTheRules(t *testing.T) {
	cfg := DefaultConfig()
	if got := cfg.DwellLimits(); got != fleet.DefaultDwellLimits {
		t.Fatalf("default rules: %+v, want %+v", got, fleet.DefaultDwellLimits)
	}
	cfg.Rules = append(cfg.Rules,
		Rule{Name: "parcel-overdue-soon", Kind: KindParcelOverdue, Severity: fleet.SeverityMinor, After: 48 * time.Hour},
		Rule{Name: "perishable-overdue-soon", Kind: KindPerishableOverdue, Severity: fleet.SeverityMajor, Fridge: 30 * time.Hour, Freezer: 6 * time.Hour})
	want := fleet.DwellLimits{Dry: 48 * time.Hour, Fridge: 24 * time.Hour, Freezer: 6 * time.Hour}
	if got := cfg.DwellLimits(); got != want {
		t.Fatalf("with shorter rules: %+v, want %+v", got, want)
	}
	if got := (&Config{}).DwellLimits(); got != fleet.DefaultDwellLimits {
		t.Fatalf("no rules: %+v, want the defaults", got)
	}
}
