package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/edge-agent/simctl/panel"
	"github.com/lockerhub/lockerhub/fleet"
)

// demoFaultRate makes the demo look like a fleet on a normal day: over the default 24 units,
// a fault starts about every two minutes and lasts 3 to 10 minutes, so that about four are
// on at a time and most units are green. Each lasts long enough for its rule to fire at the
// demo's fifth of the rules' durations (a door ajar 2 minutes, a unit offline 1, a stuck sensor
// 4); the faults a technician would only meet later (a failing compressor warms a fridge by
// 2 °C in a quarter of an hour) come and go unseen, as they often do.
var demoFaultRate = simctl.FaultRate{PerUnitHour: 1.5, MinLasts: 3 * time.Minute, MaxLasts: 10 * time.Minute}

// demoFaults tells which faults the demo injected: a line on stdout as each starts and
// clears, and the dashboard's demo panel.
type demoFaults struct {
	w     io.Writer
	panel panel.Log
}

// observe is given to the simulated fleet (simctl.Fleet.Observe).
func (d *demoFaults) observe(e simctl.FaultEvent) {
	what := string(e.Fault)
	if e.Door > 0 {
		what = fmt.Sprintf("door %d %s", e.Door, e.Fault)
	}
	var how string
	switch {
	case e.OnDemand:
		how = " (on demand)"
	case e.On:
		how = fmt.Sprintf(" (for %s)", e.Lasts.Round(time.Second))
	}
	state := "cleared"
	if e.On {
		state = "started"
	}
	fmt.Fprintf(d.w, "%s fault %s: %s %s%s\n", e.At.Format(time.TimeOnly), state, e.Unit, what, how)
	d.panel.Record(e)
}

// printIntro says what the demo's own lines on stdout will be, and which fridges start warm.
func (d *demoFaults) printIntro(commission map[string]bool) {
	ids := slices.Sorted(maps.Keys(commission))
	if len(ids) > 0 {
		fmt.Fprintf(d.w, "Being commissioned: %s starts at room temperature and pulls down to its setpoint in about an\n"+
			"hour; the hub's pull-down rule keeps it from alerting meanwhile (docs/alerts.md).\n", strings.Join(ids, ", "))
	}
	fmt.Fprintf(d.w, "Faults are printed below as they start and clear, and listed on the dashboard's demo panel.\n\n")
}

// commissioned picks the fridge that the demo commissions: the last chilled one, a fridge just
// installed next to the others at its site. Freezers are left out: a simulated freezer pulls
// down for longer than the pull-down rule waits.
func commissioned(devices []fleet.Device) map[string]bool {
	for _, d := range slices.Backward(devices) {
		if d.Kind == fleet.KindFridge && fleet.ClassOf(&d) == fleet.ClassChilled {
			return map[string]bool{d.ID: true}
		}
	}
	return nil
}
