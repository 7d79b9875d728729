package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/alerts"
	"github.com/lockerhub/lockerhub/fleet/wire"
)

// The faults part's fleet: 6 sites of 2 fridges and 2 locker banks each, so that each fault
// that changes a site's outside air has a site of its own and the others share the rest.
const (
	faultUnits       = 24
	faultSites       = 6
	faultFridgeShare = 0.2
)

// expect is an alert a fault should raise. onset, when set, is the rule's condition as the
// hub's live state shows it: the delay to the alert is then measured from when it first held,
// since how long a compartment takes to warm is physics, not the rule. cleared is the same for
// the clear condition after the repair.
type expect struct {
	rule    string
	door    int // the door or compartment; 0 for a unit's rule; anyDoor for every compartment
	onset   func(l *fleet.LiveState, r alerts.Rule) bool
	cleared func(l *fleet.LiveState, r alerts.Rule) bool
}

// anyDoor matches a compartment rule's alerts on every compartment of the unit.
const anyDoor = -1

// faultCase is one fault, on one unit of kind.
type faultCase struct {
	name    string
	kind    fleet.Kind
	ownSite bool // changes the outside air of its site
	door    int
	setup   string // how the fault is made to show, for the report
	expect  []expect
	// personResolves: the alert is resolved by a person, never by the hub (forced entry); the
	// case checks it is still open after the repair, then resolves it.
	personResolves bool
	inject, repair func(ctx context.Context, c *caseRun) error
	cleanup        func(ctx context.Context, c *caseRun) error
}

// caseRun is one case while it runs.
type caseRun struct {
	fc    *faultCase
	unit  simctl.UnitStatus
	b     *bench
	rules alerts.Config
	mu    sync.Mutex
	onset map[string]time.Time // rule -> when its condition was first seen (or caused)
	clear map[string]time.Time // rule -> when its clear condition was first seen
}

func (c *caseRun) fault(ctx context.Context, f hardware.Fault, door int, on bool) error {
	_, err := c.b.ctl.SetFault(ctx, simctl.FaultRequest{Unit: c.unit.ID, Fault: f, Door: door, On: on})
	return err
}

func (c *caseRun) ambient(ctx context.Context, celsius *float64) error {
	_, err := c.b.ctl.SetAmbient(ctx, simctl.AmbientRequest{Site: c.unit.Site, C: celsius})
	return err
}

// mark records t as rule's onset (or clear) unless one is recorded.
func (c *caseRun) mark(m map[string]time.Time, rule string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := m[rule]; !ok {
		m[rule] = t
	}
}

func celsius(v float64) *float64 { return &v }

// The conditions of the rules that wait on a temperature, as the live state shows them.
func heaterCold(l *fleet.LiveState, r alerts.Rule) bool {
	s := l.Snapshot
	return s != nil && s.Heater != nil && s.Heater.On && s.EnclosureC != nil && *s.EnclosureC < r.Threshold
}

func heaterWarm(l *fleet.LiveState, r alerts.Rule) bool {
	s := l.Snapshot
	return s != nil && s.EnclosureC != nil && *s.EnclosureC > r.ClearThreshold
}

func heaterHot(l *fleet.LiveState, r alerts.Rule) bool {
	s := l.Snapshot
	return s != nil && s.Heater != nil && s.Heater.On && s.EnclosureC != nil && *s.EnclosureC > s.Heater.SetpointC+r.Threshold
}

func heaterCalm(l *fleet.LiveState, r alerts.Rule) bool {
	s := l.Snapshot
	return s != nil && s.Heater != nil && (!s.Heater.On || s.EnclosureC != nil && *s.EnclosureC <= s.Heater.SetpointC+r.ClearThreshold)
}

// warmest is the warmest compartment reading of a snapshot.
func warmest(l *fleet.LiveState) (float64, bool) {
	if l.Snapshot == nil {
		return 0, false
	}
	w, ok := 0.0, false
	for _, d := range l.Snapshot.Doors {
		if d.TempC != nil && (!ok || *d.TempC > w) {
			w, ok = *d.TempC, true
		}
	}
	return w, ok
}

func compartmentWarm(l *fleet.LiveState, r alerts.Rule) bool {
	w, ok := warmest(l)
	return ok && w > r.Threshold
}

func compartmentsCold(l *fleet.LiveState, r alerts.Rule) bool {
	w, ok := warmest(l)
	return ok && w <= r.ClearThreshold
}

func compressorLosing(l *fleet.LiveState, r alerts.Rule) bool {
	w, ok := warmest(l)
	c := l.Snapshot.Compressor
	return ok && c != nil && c.Duty >= r.Duty && w > c.SetpointC+r.Threshold
}

func compressorHolding(l *fleet.LiveState, r alerts.Rule) bool {
	w, ok := warmest(l)
	c := l.Snapshot.Compressor
	return ok && c != nil && w <= c.SetpointC+r.ClearThreshold
}

func doorOpen(door int) func(*fleet.LiveState, alerts.Rule) bool {
	return func(l *fleet.LiveState, _ alerts.Rule) bool {
		return slices.ContainsFunc(l.Doors, func(d wire.DoorState) bool { return d.Door == door && d.Open })
	}
}

func doorShut(door int) func(*fleet.LiveState, alerts.Rule) bool {
	return func(l *fleet.LiveState, _ alerts.Rule) bool {
		return slices.ContainsFunc(l.Doors, func(d wire.DoorState) bool { return d.Door == door && !d.Open })
	}
}

// faultCases are every fault of the simulator (docs/simulator.md), each with what makes it show.
// The outside temperatures that speed up the thermal faults stay within the plausible range of
// the sensor-implausible rule (-40..60 °C), which would otherwise fire on the ambient sensor.
func faultCases() []*faultCase {
	unitFault := func(f hardware.Fault, on bool) func(context.Context, *caseRun) error {
		return func(ctx context.Context, c *caseRun) error { return c.fault(ctx, f, 0, on) }
	}
	return []*faultCase{
		{name: "jammed", kind: fleet.KindLockerBank, door: 3,
			setup:  "3 unlocks through the hub's API, one after the other; repair: fault off, one unlock",
			expect: []expect{{rule: "unlock-not-opened", door: 3, cleared: doorOpen(3)}, {rule: "door-jammed", door: 3, cleared: doorOpen(3)}},
			inject: func(ctx context.Context, c *caseRun) error {
				if err := c.fault(ctx, hardware.FaultJammed, 3, true); err != nil {
					return err
				}
				for i := 1; i <= 3; i++ {
					cmd, err := c.b.api.unlock(ctx, c.unit.ID, 3, "field trial: jammed door")
					if err != nil {
						return err
					}
					if cmd.Outcome != "jammed" {
						return fmt.Errorf("unlock %d ended %s/%s, want jammed", i, cmd.Status, cmd.Outcome)
					}
					done := time.Now()
					if cmd.CompletedAt != nil {
						done = *cmd.CompletedAt
					}
					switch i {
					case 1:
						c.mark(c.onset, "unlock-not-opened", done)
					case 3:
						c.mark(c.onset, "door-jammed", done)
					}
				}
				return nil
			},
			repair: func(ctx context.Context, c *caseRun) error {
				if err := c.fault(ctx, hardware.FaultJammed, 3, false); err != nil {
					return err
				}
				_, err := c.b.api.unlock(ctx, c.unit.ID, 3, "field trial: jammed door repaired")
				return err
			}},
		{name: "ajar", kind: fleet.KindLockerBank, door: 2,
			setup:  "an unlock through the hub's API opens the door, nobody closes it; repair: fault off (the door is closed)",
			expect: []expect{{rule: "door-ajar", door: 2, onset: doorOpen(2), cleared: doorShut(2)}},
			inject: func(ctx context.Context, c *caseRun) error {
				if err := c.fault(ctx, hardware.FaultAjar, 2, true); err != nil {
					return err
				}
				_, err := c.b.api.unlock(ctx, c.unit.ID, 2, "field trial: door left ajar")
				return err
			},
			repair: func(ctx context.Context, c *caseRun) error { return c.fault(ctx, hardware.FaultAjar, 2, false) }},
		{name: "forced", kind: fleet.KindLockerBank, door: 5, personResolves: true,
			setup:  "the door forced open at once; repair: fault off (shut and relatched); a person resolves the alert",
			expect: []expect{{rule: "forced-entry", door: 5}},
			inject: func(ctx context.Context, c *caseRun) error { return c.fault(ctx, hardware.FaultForced, 5, true) },
			repair: func(ctx context.Context, c *caseRun) error { return c.fault(ctx, hardware.FaultForced, 5, false) }},
		{name: "heater", kind: fleet.KindLockerBank, ownSite: true,
			setup:  "with a cold snap: the site's outside air held at -35 °C; repair: heater fixed, outside air 20 °C until resolved",
			expect: []expect{{rule: "heater-failure", onset: heaterCold, cleared: heaterWarm}},
			inject: func(ctx context.Context, c *caseRun) error {
				if err := c.ambient(ctx, celsius(-35)); err != nil {
					return err
				}
				return c.fault(ctx, hardware.FaultHeater, 0, true)
			},
			repair: func(ctx context.Context, c *caseRun) error {
				if err := c.fault(ctx, hardware.FaultHeater, 0, false); err != nil {
					return err
				}
				return c.ambient(ctx, celsius(20))
			},
			cleanup: func(ctx context.Context, c *caseRun) error { return c.ambient(ctx, nil) }},
		{name: "heater-stuck", kind: fleet.KindLockerBank, ownSite: true,
			setup:  "the site's outside air held at 55 °C (sun on the enclosure) to heat it faster; repair: relay freed",
			expect: []expect{{rule: "heater-stuck", onset: heaterHot, cleared: heaterCalm}},
			inject: func(ctx context.Context, c *caseRun) error {
				if err := c.ambient(ctx, celsius(55)); err != nil {
					return err
				}
				return c.fault(ctx, hardware.FaultHeaterStuck, 0, true)
			},
			repair:  unitFault(hardware.FaultHeaterStuck, false),
			cleanup: func(ctx context.Context, c *caseRun) error { return c.ambient(ctx, nil) }},
		{name: "compressor", kind: fleet.KindFridge, ownSite: true,
			setup: "the room held at 55 °C to warm it faster; repair: compressor fixed, room at -35 °C until resolved",
			expect: []expect{{rule: "cold-holding", door: anyDoor, onset: compartmentWarm, cleared: compartmentsCold},
				{rule: "compressor-ineffective", onset: compressorLosing, cleared: compressorHolding}},
			inject: func(ctx context.Context, c *caseRun) error {
				if err := c.ambient(ctx, celsius(55)); err != nil {
					return err
				}
				return c.fault(ctx, hardware.FaultCompressor, 0, true)
			},
			repair: func(ctx context.Context, c *caseRun) error {
				if err := c.fault(ctx, hardware.FaultCompressor, 0, false); err != nil {
					return err
				}
				return c.ambient(ctx, celsius(-35))
			},
			cleanup: func(ctx context.Context, c *caseRun) error { return c.ambient(ctx, nil) }},
		{name: "stuck-sensor", kind: fleet.KindFridge, setup: "every reading frozen; repair: readings move again",
			expect: []expect{{rule: "sensor-stuck"}},
			inject: unitFault(hardware.FaultStuckSensor, true), repair: unitFault(hardware.FaultStuckSensor, false)},
		{name: "dead-sensor", kind: fleet.KindLockerBank, setup: "no temperature readings; repair: readings again",
			expect: []expect{{rule: "sensor-implausible"}},
			inject: unitFault(hardware.FaultDeadSensor, true), repair: unitFault(hardware.FaultDeadSensor, false)},
		{name: "stale-telemetry", kind: fleet.KindLockerBank, setup: "connected, no periodic snapshots; repair: snapshots again",
			expect: []expect{{rule: "telemetry-stale"}},
			inject: unitFault(simctl.FaultStaleTelemetry, true), repair: unitFault(simctl.FaultStaleTelemetry, false)},
		{name: "network", kind: fleet.KindFridge, setup: "network down (the unit goes offline, its outbox records); repair: network up",
			expect: []expect{{rule: "device-offline"}},
			inject: func(ctx context.Context, c *caseRun) error {
				_, err := c.b.ctl.SetNetwork(ctx, simctl.NetworkRequest{Unit: c.unit.ID, Up: false})
				return err
			},
			repair: func(ctx context.Context, c *caseRun) error {
				_, err := c.b.ctl.SetNetwork(ctx, simctl.NetworkRequest{Unit: c.unit.ID, Up: true})
				return err
			}},
	}
}

// pickCases returns the cases named in names (comma-separated), or every case when it is empty.
func pickCases(all []*faultCase, names string) ([]*faultCase, error) {
	if names == "" {
		return all, nil
	}
	var out []*faultCase
	for _, n := range strings.Split(names, ",") {
		i := slices.IndexFunc(all, func(c *faultCase) bool { return c.name == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown fault %q", n)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// assign gives each case a unit of its kind: first the cases that change their site's outside
// air, each on a site no other case uses, then the others on the remaining sites. It returns
// an error naming the first case it cannot place.
func assign(cases []*faultCase, units []simctl.UnitStatus) (map[string]simctl.UnitStatus, error) {
	out := map[string]simctl.UnitStatus{}
	used, claimed, busy := map[string]bool{}, map[string]bool{}, map[string]bool{} // unit; site claimed by an ownSite case; site with any case
	for _, pass := range []bool{true, false} {
		for _, c := range cases {
			if c.ownSite != pass {
				continue
			}
			i := slices.IndexFunc(units, func(u simctl.UnitStatus) bool {
				return u.Kind == string(c.kind) && !used[u.ID] && !claimed[u.Site] && (!c.ownSite || !busy[u.Site])
			})
			if i < 0 {
				return nil, fmt.Errorf("no %s left for fault %s", c.kind, c.name)
			}
			u := units[i]
			out[c.name], used[u.ID], busy[u.Site] = u, true, true
			if c.ownSite {
				claimed[u.Site] = true
			}
		}
	}
	return out, nil
}

// faults runs the faults part.
func (t *trial) faults(ctx context.Context) (*faultsResult, error) {
	rules := scaledRules(t.o.scale)
	dir, err := filepath.Abs(t.o.out)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rulesFile := filepath.Join(dir, "faults-alerts.yaml")
	if err := os.WriteFile(rulesFile, []byte(rulesYAML(rules)), 0o644); err != nil {
		return nil, err
	}
	res := &faultsResult{Scale: t.o.scale, Slack: slackFor(t.o.interval, rules.Tick).Seconds(), Interval: t.o.interval.String(), RulesFile: rulesFile}
	start := time.Now()
	defer func() { res.Seconds = round1(time.Since(start).Seconds()) }()
	// The cases send unlocks faster than the default limits allow for one token.
	b, err := t.startBench(ctx, "faults", rulesFile, simArgs{units: faultUnits, sites: faultSites, fridgeShare: faultFridgeShare},
		"LOCKERHUB_COMMANDS_PER_TOKEN_PER_MINUTE=0", "LOCKERHUB_COMMANDS_PER_DEVICE_PER_MINUTE=0")
	if err != nil {
		return res, err
	}
	defer b.stop()
	// The hub learns each unit's snapshot interval from its fourth snapshot on and assumes the
	// configured telemetry_interval before; a unit silent before then is a different case.
	t.logf("faults: letting the hub learn the units' snapshot interval (%s)", learnInterval*t.o.interval)
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(learnInterval * t.o.interval):
	}
	cases, err := pickCases(faultCases(), t.o.faultNames)
	if err != nil {
		return res, err
	}
	units, err := assign(cases, b.units)
	if err != nil {
		return res, err
	}
	var wg sync.WaitGroup
	results := make([][]*faultRow, len(cases))
	for i, fc := range cases {
		c := &caseRun{fc: fc, unit: units[fc.name], b: b, rules: rules, onset: map[string]time.Time{}, clear: map[string]time.Time{}}
		wg.Go(func() { results[i] = t.runCase(ctx, c) })
	}
	wg.Wait()
	for _, rows := range results {
		res.Rows = append(res.Rows, rows...)
	}
	res.Pass = len(res.Rows) > 0 && !slices.ContainsFunc(res.Rows, func(r *faultRow) bool { return !r.Pass })
	return res, ctx.Err()
}

// learnInterval is how many snapshot intervals the trial waits after the units came online.
const learnInterval = 5

// pollEvery is how often a case reads the hub's alerts and live state.
const pollEvery = time.Second

// slackFor is what a delay may exceed its rule's window by and still pass: the unit's next
// snapshot may show a change up to one interval after it happened, the rules run once a tick
// (twice: the condition starts counting at one and fires at a later one), and the live state
// that times a condition is polled every pollEvery.
func slackFor(interval, tick time.Duration) time.Duration {
	return interval + 2*tick + pollEvery
}

// runCase injects c's fault, waits for its alerts, repairs it and waits for them to resolve.
func (t *trial) runCase(ctx context.Context, c *caseRun) []*faultRow {
	fc := c.fc
	rows := make([]*faultRow, len(fc.expect))
	for i, e := range fc.expect {
		r, _ := ruleByName(c.rules, e.rule)
		fire, clear, label := windows(r, t.o.interval)
		rows[i] = &faultRow{Fault: fc.name, Unit: c.unit.ID, Door: max(e.door, 0), Rule: e.rule, Kind: string(r.Kind), Severity: string(r.Severity),
			Setup: fc.setup, Window: label, FireWindowS: fire.Seconds(), ClearWindowS: clear.Seconds(), PersonResolves: fc.personResolves}
		if e.door == anyDoor {
			rows[i].Door = anyDoor
		}
	}
	fail := func(format string, args ...any) []*faultRow {
		for _, r := range rows {
			r.Detail = fmt.Sprintf(format, args...)
		}
		t.logf("fault %s on %s: %s", fc.name, c.unit.ID, rows[0].Detail)
		return rows
	}
	t.logf("fault %s on %s (site %s)", fc.name, c.unit.ID, c.unit.Site)
	t0 := time.Now()
	if err := fc.inject(ctx, c); err != nil {
		return fail("inject: %v", err)
	}
	var seen []fleet.Alert
	poll := func(cleared bool) bool {
		l, err := c.b.api.live(ctx, c.unit.ID)
		if err == nil && l != nil {
			at := time.Now()
			for _, e := range fc.expect {
				r, _ := ruleByName(c.rules, e.rule)
				if !cleared && e.onset != nil && e.onset(l, r) {
					c.mark(c.onset, e.rule, at)
				}
				if cleared && e.cleared != nil && e.cleared(l, r) {
					c.mark(c.clear, e.rule, at)
				}
			}
		}
		if seen, err = c.b.api.alerts(ctx, c.unit.ID); err != nil {
			return false
		}
		for i, e := range fc.expect {
			m := matchAlerts(seen, e.rule, c.unit.ID, e.door, t0)
			if len(m) == 0 {
				return false
			}
			if cleared && !fc.personResolves && !allResolved(m) {
				return false
			}
			_ = i
		}
		return true
	}
	fired := t.waitFor(ctx, t.o.caseTimeout, func() bool { return poll(false) })
	t1 := time.Now()
	if fired {
		t.logf("fault %s on %s: alerted after %s; repairing", fc.name, c.unit.ID, t1.Sub(t0).Round(time.Second))
	} else {
		t.logf("fault %s on %s: not every alert within %s; repairing", fc.name, c.unit.ID, t.o.caseTimeout)
	}
	if err := fc.repair(ctx, c); err != nil {
		for _, r := range rows {
			r.Detail = "repair: " + err.Error()
		}
	}
	switch {
	case !fired:
	case fc.personResolves:
		sleepCtx(ctx, 15*time.Second) // long enough for a rule that resolved itself to have done so
		poll(true)
	default:
		t.waitFor(ctx, t.o.caseTimeout, func() bool { return poll(true) })
	}
	if fc.cleanup != nil {
		fc.cleanup(ctx, c)
	}
	slack := slackFor(t.o.interval, c.rules.Tick)
	for i, e := range fc.expect {
		c.mu.Lock()
		onset, hasOnset := c.onset[e.rule]
		clearAt, hasClear := c.clear[e.rule]
		c.mu.Unlock()
		if e.onset == nil && !hasOnset {
			onset, hasOnset = t0, true
		}
		if e.cleared == nil && !hasClear {
			clearAt, hasClear = t1, true
		}
		measure(rows[i], matchAlerts(seen, e.rule, c.unit.ID, e.door, t0), t0, t1, onset, hasOnset, clearAt, hasClear)
		judge(rows[i], slack)
	}
	if fc.personResolves {
		for _, a := range matchAlerts(seen, fc.expect[0].rule, c.unit.ID, fc.expect[0].door, t0) {
			if a.State.Open() {
				if err := c.b.api.resolve(ctx, a.ID, "field trial: forced door checked and relatched"); err != nil {
					t.logf("fault %s: resolve alert %d: %v", fc.name, a.ID, err)
				}
			}
		}
	}
	rows[0].Others = otherAlerts(seen, fc.expect, t0)
	for _, r := range rows {
		t.logf("fault %s: %s %s", fc.name, r.Rule, r.summary())
	}
	return rows
}

// waitFor polls done every pollEvery until it holds (true) or timeout passes (false).
func (t *trial) waitFor(ctx context.Context, timeout time.Duration, done func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if done() {
			return true
		}
		if time.Now().After(deadline) || sleepCtx(ctx, pollEvery) != nil {
			return false
		}
	}
}

// matchAlerts returns the alerts of rule on device (and door, anyDoor for every door) that
// fired at or after since, oldest first.
func matchAlerts(all []fleet.Alert, rule, device string, door int, since time.Time) []fleet.Alert {
	var out []fleet.Alert
	for _, a := range all {
		if a.Rule == rule && a.DeviceID == device && (door == anyDoor || a.Door == door) && !a.FiredAt.Before(since) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b fleet.Alert) int { return a.FiredAt.Compare(b.FiredAt) })
	return out
}

func allResolved(as []fleet.Alert) bool {
	return !slices.ContainsFunc(as, func(a fleet.Alert) bool { return a.State != fleet.AlertResolved })
}

// otherAlerts lists the alerts that fired at or after since on the case's unit from rules the
// case does not expect: what else a technician would have been shown.
func otherAlerts(all []fleet.Alert, expected []expect, since time.Time) []string {
	var out []string
	for _, a := range all {
		if a.FiredAt.Before(since) || slices.ContainsFunc(expected, func(e expect) bool { return e.rule == a.Rule }) {
			continue
		}
		out = append(out, fmt.Sprintf("%s (door %d, %s): %s", a.Rule, a.Door, a.State, a.Summary))
	}
	return out
}
