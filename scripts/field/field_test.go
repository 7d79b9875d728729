package main

import (
	"strings"
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/alerts"
)

func TestScaledRules(t *testing.T) {
	c := scaledRules(10)
	def := alerts.DefaultConfig()
	if len(c.Rules) != len(def.Rules) {
		t.Fatalf("%d rules, want the %d built-in ones", len(c.Rules), len(def.Rules))
	}
	kinds := map[alerts.Kind]bool{}
	for i, r := range c.Rules {
		d := def.Rules[i]
		kinds[r.Kind] = true
		if r.For != d.For/10 || r.ClearFor != d.ClearFor/10 || r.Window != d.Window/10 {
			t.Errorf("%s: for %s clear_for %s window %s, want a tenth of %s %s %s", r.Name, r.For, r.ClearFor, r.Window, d.For, d.ClearFor, d.Window)
		}
		if r.Threshold != d.Threshold || r.Count != d.Count {
			t.Errorf("%s: threshold or count changed", r.Name)
		}
	}
	for _, k := range []alerts.Kind{alerts.KindOffline, alerts.KindStale, alerts.KindDoorOpen, alerts.KindForcedEntry, alerts.KindUnlockFailed,
		alerts.KindTempAbove, alerts.KindHeaterFailure, alerts.KindHeaterStuck, alerts.KindCompressorIneffective, alerts.KindSensorImplausible,
		alerts.KindSensorStuck, alerts.KindSequenceGap} {
		if !kinds[k] {
			t.Errorf("no rule of kind %s", k)
		}
	}
	if c.HeartbeatTimeout != 18*time.Second || c.AuthorizeWindow != def.AuthorizeWindow {
		t.Errorf("heartbeat %s, authorize window %s", c.HeartbeatTimeout, c.AuthorizeWindow)
	}
	y := rulesYAML(c)
	for _, want := range []string{"heartbeat_timeout: 18s\n", "  - name: cold-holding\n    kind: temp_above\n    severity: major\n    for: 1m30s\n",
		"    class: chilled\n", "  - name: door-jammed\n", "    count: 3\n    window: 6m0s\n", "    threshold: 5\n    clear_threshold: 4.5\n"} {
		if !strings.Contains(y, want) {
			t.Errorf("rules YAML lacks %q:\n%s", want, y)
		}
	}
}

func TestWindows(t *testing.T) {
	c := scaledRules(10)
	tests := []struct {
		rule        string
		fire, clear time.Duration
		label       string
	}{
		{"telemetry-stale", 30 * time.Second, 0, "30s silent (3 × 10s)"},
		{"door-jammed", 0, 0, "at the 3rd failure within 6m"},
		{"forced-entry", 0, 0, "at once"},
		{"cold-holding", 90 * time.Second, 12 * time.Second, "for 1m30s"},
		{"cold-holding-critical", 0, 12 * time.Second, "at once"},
		{"device-offline", 30 * time.Second, 3 * time.Second, "for 30s"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			r, ok := ruleByName(c, tt.rule)
			if !ok {
				t.Fatal("no such rule")
			}
			fire, clear, label := windows(r, 10*time.Second)
			if fire != tt.fire || clear != tt.clear || label != tt.label {
				t.Errorf("windows = %s, %s, %q; want %s, %s, %q", fire, clear, label, tt.fire, tt.clear, tt.label)
			}
		})
	}
}

func TestAssign(t *testing.T) {
	var units []simctl.UnitStatus
	for i, s := range []string{"a", "a", "b", "b", "c", "c"} {
		kind := fleet.KindLockerBank
		if i%2 == 0 {
			kind = fleet.KindFridge
		}
		units = append(units, simctl.UnitStatus{ID: string(rune('0' + i)), Kind: string(kind), Site: s})
	}
	cases := []*faultCase{
		{name: "door", kind: fleet.KindLockerBank},
		{name: "cold", kind: fleet.KindLockerBank, ownSite: true},
		{name: "fridge", kind: fleet.KindFridge},
	}
	got, err := assign(cases, units)
	if err != nil {
		t.Fatal(err)
	}
	// The site-changing case is placed first, on site a; the others avoid site a.
	if got["cold"].Site != "a" || got["door"].Site == "a" || got["fridge"].Site == "a" {
		t.Errorf("assigned %v", got)
	}
	if got["door"].ID == got["cold"].ID {
		t.Error("two cases on one unit")
	}
	cases = append(cases, &faultCase{name: "hot", kind: fleet.KindLockerBank, ownSite: true}, &faultCase{name: "warm", kind: fleet.KindFridge, ownSite: true})
	if _, err := assign(cases, units); err == nil || !strings.Contains(err.Error(), "fault") {
		t.Errorf("three sites for three own-site cases and two more: err %v, want one naming a fault", err)
	}
}

func TestMatchAndMeasure(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	all := []fleet.Alert{
		{ID: 1, Rule: "cold-holding", DeviceID: "f1", Door: 2, FiredAt: at(100), State: fleet.AlertResolved, ResolvedAt: at(400), ResolvedBy: "hub"},
		{ID: 2, Rule: "cold-holding", DeviceID: "f1", Door: 1, FiredAt: at(95), State: fleet.AlertResolved, ResolvedAt: at(410), ResolvedBy: "hub"},
		{ID: 3, Rule: "cold-holding", DeviceID: "f1", Door: 1, FiredAt: at(-50), State: fleet.AlertResolved}, // before the fault
		{ID: 4, Rule: "cold-holding", DeviceID: "f2", Door: 1, FiredAt: at(90)},                              // another unit
		{ID: 5, Rule: "telemetry-loss", DeviceID: "f1", FiredAt: at(300), State: fleet.AlertFiring, Summary: "lost 3"},
	}
	m := matchAlerts(all, "cold-holding", "f1", anyDoor, t0)
	if len(m) != 2 || m[0].ID != 2 || m[1].ID != 1 {
		t.Fatalf("matched %v, want alerts 2 then 1", m)
	}
	if m := matchAlerts(all, "cold-holding", "f1", 2, t0); len(m) != 1 || m[0].ID != 1 {
		t.Errorf("door 2 matched %v", m)
	}
	row := &faultRow{FireWindowS: 90, ClearWindowS: 12}
	t1 := at(300)
	measure(row, m, t0, t1, at(4), true, at(390), true)
	if *row.AlertS != 95 || *row.AlertAfterConditionS != 91 || *row.ResolveS != 110 || *row.ResolveAfterClearS != 20 || row.Alerts != 2 {
		t.Errorf("measured %s %s %s %s", secs(row.AlertS), secs(row.AlertAfterConditionS), secs(row.ResolveS), secs(row.ResolveAfterClearS))
	}
	judge(row, 13*time.Second)
	if !row.Pass {
		t.Errorf("91 s after its condition with a 90 s window passes with 13 s of slack: %s", row.Detail)
	}
	judge(row, 5*time.Second)
	if row.Pass || !strings.Contains(row.Detail, "resolved 20.0 s after its clear condition") {
		t.Errorf("resolve 20 s after clear, clear_for 12 s, slack 5 s: pass %v, %q", row.Pass, row.Detail)
	}
	others := otherAlerts(all, []expect{{rule: "cold-holding"}}, t0)
	if len(others) != 1 || !strings.HasPrefix(others[0], "telemetry-loss") {
		t.Errorf("other alerts %v", others)
	}
}

func TestJudge(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name string
		row  faultRow
		pass bool
		want string
	}{
		{"no alert", faultRow{FireWindowS: 30}, false, "no alert"},
		{"late", faultRow{FireWindowS: 30, AlertS: f(50), AlertAfterConditionS: f(50), ResolveS: f(1), ResolveAfterClearS: f(1)}, false, "window 30 s"},
		{"not resolved", faultRow{FireWindowS: 30, AlertS: f(31), AlertAfterConditionS: f(31)}, false, "not resolved"},
		{"forced stays open", faultRow{AlertS: f(0.2), AlertAfterConditionS: f(0.2), PersonResolves: true}, true, ""},
		{"forced resolved by the hub", faultRow{AlertS: f(0.2), AlertAfterConditionS: f(0.2), PersonResolves: true, ResolveS: f(3), ResolvedBy: "hub"}, false, "only a person"},
		{"condition never seen", faultRow{AlertS: f(5)}, false, "never seen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := tt.row
			judge(&row, 10*time.Second)
			if row.Pass != tt.pass || !strings.Contains(row.Detail, tt.want) {
				t.Errorf("pass %v detail %q; want %v with %q", row.Pass, row.Detail, tt.pass, tt.want)
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	rep := &report{Started: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), Machine: machineInfo{CPU: "cpu", Cores: 2, Memory: "24.0 GiB", Go: "go1.26"},
		Faults: &faultsResult{Scale: 10, Slack: 13, Interval: "10s", Rows: []*faultRow{
			{Fault: "forced", Rule: "forced-entry", Door: 5, Window: "at once", ConditionS: f(0), AlertS: f(0.2), AlertAfterConditionS: f(0.2), PersonResolves: true, Pass: true},
			{Fault: "compressor", Rule: "cold-holding", Door: anyDoor, Alerts: 4, Window: "for 1m30s", ClearWindowS: 12, Detail: "not resolved",
				Others: []string{"telemetry-loss (door 0, firing): lost 3"}},
		}},
		Quiet: &quietResult{Units: 60, LockerBanks: 42, Fridges: 18, Sites: 3, Duration: "1h0m0s", Rules: "defaults", ByRule: map[string]int{"telemetry-loss": 1},
			Pickups: pickups{Delivered: 200, PickedUp: 170, CodeOpenings: 171, OtherOpenings: 2},
			Alerts:  []quietAlert{{Rule: "telemetry-loss", Unit: "sim-fridge-0001", FiredAt: time.Date(2026, 1, 1, 10, 5, 0, 0, time.UTC), AfterS: 300, State: "firing", Summary: "a | b"}}},
	}
	rep.decide([]string{"faults", "quiet"})
	if rep.Pass {
		t.Error("a failed row and a false alert pass")
	}
	md := rep.markdown()
	for _, want := range []string{
		"| forced | forced-entry (door 5) | at once | 0.0 s | 0.2 s | 0.2 s | a person | open (by design) | – | pass |",
		"| compressor | cold-holding (4 compartments) | for 1m30s | – | – | – | 12 s | – | – | **FAIL** |",
		"Also raised: telemetry-loss (door 0, firing): lost 3.",
		"200 delivered, 170 picked up; door openings by a pickup code 171, other 2.",
		"**False alerts: 1.**", "| telemetry-loss | 1 |", "| 10:05:00 (5.0) | telemetry-loss |", "a / b",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
