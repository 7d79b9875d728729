package panel

import (
	"testing"
	"time"

	"github.com/lockerhub/lockerhub/edge-agent/simctl"
	"github.com/lockerhub/lockerhub/fleet"
)

// The panel keeps a fault active from its start to its clear, then lists it among the latest
// cleared, and shows a token only the units at its sites.
func TestLog(t *testing.T) {
	var l Log
	t0 := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	l.Record(simctl.FaultEvent{At: t0, Unit: "bank-1", Site: "oak", Fault: "ajar", Door: 3, On: true, Lasts: 5 * time.Minute})
	l.Record(simctl.FaultEvent{At: t0, Unit: "fridge-1", Site: "pine", Fault: "compressor", On: true, Lasts: time.Minute})
	l.Record(simctl.FaultEvent{At: t0.Add(time.Minute), Unit: "fridge-1", Site: "pine", Fault: "compressor"})
	l.Record(simctl.FaultEvent{At: t0.Add(time.Minute), Unit: "bank-1", Site: "oak", Fault: "ajar", Door: 2}) // never started: nothing to clear

	all := l.Answer(&fleet.Token{})
	if len(all.Active) != 1 || all.Active[0].Unit != "bank-1" || all.Active[0].Door != 3 || !all.Active[0].Until.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("active: %+v", all.Active)
	}
	if len(all.Cleared) != 1 || all.Cleared[0].Unit != "fridge-1" || !all.Cleared[0].Cleared.Equal(t0.Add(time.Minute)) {
		t.Errorf("cleared: %+v", all.Cleared)
	}
	if oak := l.Answer(&fleet.Token{Sites: []string{"oak"}}); len(oak.Active) != 1 || len(oak.Cleared) != 0 {
		t.Errorf("a token of site oak sees %+v", oak)
	}
	for i := range keepCleared + 2 {
		at := t0.Add(time.Duration(i) * time.Second)
		l.Record(simctl.FaultEvent{At: at, Unit: "bank-2", Site: "oak", Fault: "forced", Door: 1, On: true})
		l.Record(simctl.FaultEvent{At: at, Unit: "bank-2", Site: "oak", Fault: "forced", Door: 1})
	}
	if c := l.Answer(&fleet.Token{}).Cleared; len(c) != keepCleared || !c[0].Cleared.After(*c[1].Cleared) {
		t.Errorf("after many faults, cleared keeps %d, latest first: %+v", len(c), c)
	}
}
