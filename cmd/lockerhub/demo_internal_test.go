package main

import (
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/fleet/alerts"
)

// The demo's rules: every duration a fifth, and the parcel thresholds in minutes, so that an
// overdue parcel shows within the few minutes someone watches the demo; still valid rules.
func TestDemoRules(t *testing.T) {
	def := alerts.DefaultConfig()
	demo := demoRules(def)
	if err := demo.Validate(); err != nil {
		t.Fatalf("the demo's rules are invalid: %v", err)
	}
	var overdue, perishable bool
	for i, r := range demo.Rules {
		if r.For != def.Rules[i].For/demoSpeedup || r.ClearFor != def.Rules[i].ClearFor/demoSpeedup {
			t.Errorf("%s: for %s, clear_for %s: want a fifth of %s, %s", r.Name, r.For, r.ClearFor, def.Rules[i].For, def.Rules[i].ClearFor)
		}
		switch r.Kind {
		case alerts.KindParcelOverdue:
			overdue = r.After == 3*time.Minute
		case alerts.KindPerishableOverdue:
			perishable = r.Fridge == 3*time.Minute && r.Freezer == 2*time.Minute
		}
	}
	if !overdue || !perishable {
		t.Errorf("parcel rules not shortened to minutes: %+v", demo.Rules)
	}
}
