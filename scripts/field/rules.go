package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet/alerts"
)

// scaledRules returns the hub's built-in rules (alerts.DefaultConfig, which configs/alerts.yaml
// documents) with every rule's for, clear_for and window, and the heartbeat timeout and pickup
// grace, divided by scale. Thresholds, counts and the authorize window stay: they say what is
// wrong, not how long to wait for it, and a shorter authorize window would only make remote
// pickups look forced.
func scaledRules(scale float64) alerts.Config {
	c := alerts.DefaultConfig()
	div := func(d time.Duration) time.Duration {
		return (time.Duration(float64(d) / scale)).Round(100 * time.Millisecond)
	}
	c.HeartbeatTimeout, c.PickupGrace = div(c.HeartbeatTimeout), div(c.PickupGrace)
	for i := range c.Rules {
		r := &c.Rules[i]
		r.For, r.ClearFor, r.Window = div(r.For), div(r.ClearFor), div(r.Window)
	}
	return c
}

// rulesYAML renders c as an alerts file the hub reads (alerts_file): the top-level durations
// and every rule with all its keys.
func rulesYAML(c alerts.Config) string {
	var b strings.Builder
	b.WriteString("# Written by scripts/field: the built-in rules with shortened windows.\n")
	fmt.Fprintf(&b, "tick: %s\nauthorize_window: %s\npickup_grace: %s\nheartbeat_timeout: %s\ntelemetry_interval: %s\nrules:\n",
		c.Tick, c.AuthorizeWindow, c.PickupGrace, c.HeartbeatTimeout, c.TelemetryInterval)
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for _, r := range c.Rules {
		fmt.Fprintf(&b, "  - name: %s\n    kind: %s\n    severity: %s\n    for: %s\n    clear_for: %s\n", r.Name, r.Kind, r.Severity, r.For, r.ClearFor)
		fmt.Fprintf(&b, "    threshold: %s\n    clear_threshold: %s\n", num(r.Threshold), num(r.ClearThreshold))
		if r.Class != "" {
			fmt.Fprintf(&b, "    class: %s\n", r.Class)
		}
		fmt.Fprintf(&b, "    count: %d\n    window: %s\n    intervals: %s\n    duty: %s\n    min: %s\n    max: %s\n",
			r.Count, r.Window, num(r.Intervals), num(r.Duty), num(r.Min), num(r.Max))
	}
	return b.String()
}

// ruleByName returns the rule named name in c.
func ruleByName(c alerts.Config, name string) (alerts.Rule, bool) {
	for _, r := range c.Rules {
		if r.Name == name {
			return r, true
		}
	}
	return alerts.Rule{}, false
}

// windows returns how long rule r lets its condition hold before it fires and its clear
// condition before it resolves, for units sending a snapshot every interval, and how the
// report names them. A stale unit is one silent for Intervals snapshots; it clears with the
// next. unlock_failed fires on the Count-th failure within Window, so at once from it.
func windows(r alerts.Rule, interval time.Duration) (fire, clear time.Duration, label string) {
	switch r.Kind {
	case alerts.KindStale:
		fire = time.Duration(r.Intervals * float64(interval))
		return fire, 0, fmt.Sprintf("%s silent (%g × %s)", short(fire), r.Intervals, short(interval))
	case alerts.KindUnlockFailed:
		return 0, r.ClearFor, fmt.Sprintf("at the %s failure within %s", ordinal(r.Count), short(r.Window))
	case alerts.KindForcedEntry:
		return 0, 0, "at once"
	}
	if r.For == 0 {
		return 0, r.ClearFor, "at once"
	}
	return r.For, r.ClearFor, "for " + short(r.For)
}

// short formats d without zero units: 1m30s, 6s, 2m, 500ms.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "1st"
	case 2:
		return "2nd"
	case 3:
		return "3rd"
	}
	return fmt.Sprintf("%dth", n)
}
