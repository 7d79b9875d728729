package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// report is the whole run, written to results.json and results.md.
type report struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Pass     bool              `json:"pass"`
	Machine  machineInfo       `json:"machine"`
	Options  map[string]string `json:"options"`
	Faults   *faultsResult     `json:"faults,omitempty"`
	Quiet    *quietResult      `json:"quiet,omitempty"`
}

// faultsResult is the faults part: one row per alert a fault should raise.
type faultsResult struct {
	Pass      bool        `json:"pass"`
	Seconds   float64     `json:"seconds"`
	Scale     float64     `json:"scale"`   // the rules' windows divided by this
	Slack     float64     `json:"slack_s"` // see slackFor
	Interval  string      `json:"telemetry_interval"`
	RulesFile string      `json:"-"`
	Rows      []*faultRow `json:"rows"`
}

// faultRow is one alert of one fault. Times are seconds; a nil one was not observed.
type faultRow struct {
	Fault    string `json:"fault"`
	Unit     string `json:"unit"`
	Door     int    `json:"door,omitempty"` // anyDoor: every compartment of the unit
	Rule     string `json:"rule"`
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Setup    string `json:"setup"`
	Window   string `json:"window"` // how the rule waits, for people
	// FireWindowS and ClearWindowS are the rule's for (or its equivalent) and clear_for.
	FireWindowS  float64 `json:"fire_window_s"`
	ClearWindowS float64 `json:"clear_window_s"`
	// ConditionS is when the rule's condition first held, after the fault; AlertS when the
	// alert fired, after the fault; AlertAfterConditionS the difference, which the window
	// bounds.
	ConditionS           *float64 `json:"condition_s,omitempty"`
	AlertS               *float64 `json:"alert_s,omitempty"`
	AlertAfterConditionS *float64 `json:"alert_after_condition_s,omitempty"`
	// ClearS is when the clear condition first held, after the repair; ResolveS when the
	// alert resolved, after the repair; ResolveAfterClearS the difference.
	ClearS             *float64 `json:"clear_s,omitempty"`
	ResolveS           *float64 `json:"resolve_s,omitempty"`
	ResolveAfterClearS *float64 `json:"resolve_after_clear_s,omitempty"`
	Alerts             int      `json:"alerts"` // alerts of the rule on the unit (compartments count one each)
	PersonResolves     bool     `json:"person_resolves,omitempty"`
	ResolvedBy         string   `json:"resolved_by,omitempty"`
	Pass               bool     `json:"pass"`
	Detail             string   `json:"detail,omitempty"`
	Others             []string `json:"other_alerts,omitempty"` // other rules' alerts on the unit during the case
}

// quietResult is the quiet part: a fleet without faults, and every alert it raised.
type quietResult struct {
	Pass        bool           `json:"pass"`
	Units       int            `json:"units"`
	Fridges     int            `json:"fridges"`
	LockerBanks int            `json:"locker_banks"`
	Sites       int            `json:"sites"`
	Duration    string         `json:"duration"`
	Rules       string         `json:"rules"`
	Pickups     pickups        `json:"pickups"`
	Alerts      []quietAlert   `json:"alerts"`
	ByRule      map[string]int `json:"alerts_by_rule"`
	Progress    []progressLine `json:"progress"`
}

// pickups are the parcels delivered and collected during the quiet run, as the hub saw them.
type pickups struct {
	Delivered     int    `json:"delivered"`      // parcels the simulated carriers delivered (the API)
	PickedUp      int    `json:"picked_up"`      // of them, picked up with their codes
	CodeOpenings  int64  `json:"code_openings"`  // door openings with cause code (InfluxDB)
	OtherOpenings int64  `json:"other_openings"` // any other cause
	Counted       string `json:"counted"`        // a note when the API's 1,000 cap was reached
}

// quietAlert is one alert of the quiet run: a false alert.
type quietAlert struct {
	Rule     string    `json:"rule"`
	Severity string    `json:"severity"`
	Unit     string    `json:"unit"`
	Kind     string    `json:"kind"`
	Door     int       `json:"door,omitempty"`
	FiredAt  time.Time `json:"fired_at"`
	AfterS   float64   `json:"after_s"` // since the fleet was online
	State    string    `json:"state"`
	Summary  string    `json:"summary"`
}

// progressLine is one minute of the quiet run.
type progressLine struct {
	Minute    int `json:"minute"`
	Delivered int `json:"delivered"`
	PickedUp  int `json:"picked_up"`
	Alerts    int `json:"alerts"`
}

// seconds is d in seconds with one decimal, as a pointer for optional report fields.
func seconds(d time.Duration) *float64 {
	v := round1(d.Seconds())
	return &v
}

// measure fills in row's times from the alerts matched to it: fired after the fault at t0 (and
// after its condition, at onset when known), resolved after the repair at t1 (and after the
// clear condition, at clearAt when known). With several alerts (one per compartment) the first
// firing and the last resolution count.
func measure(row *faultRow, matched []fleet.Alert, t0, t1, onset time.Time, hasOnset bool, clearAt time.Time, hasClear bool) {
	row.Alerts = len(matched)
	if hasOnset {
		row.ConditionS = seconds(onset.Sub(t0))
	}
	if len(matched) == 0 {
		return
	}
	first := matched[0]
	row.AlertS = seconds(first.FiredAt.Sub(t0))
	if hasOnset {
		row.AlertAfterConditionS = seconds(first.FiredAt.Sub(onset))
	}
	if hasClear {
		row.ClearS = seconds(clearAt.Sub(t1))
	}
	if !allResolved(matched) {
		return
	}
	last := slices.MaxFunc(matched, func(a, b fleet.Alert) int { return a.ResolvedAt.Compare(b.ResolvedAt) })
	row.ResolvedBy = last.ResolvedBy
	row.ResolveS = seconds(last.ResolvedAt.Sub(t1))
	if hasClear {
		row.ResolveAfterClearS = seconds(last.ResolvedAt.Sub(clearAt))
	}
}

// judge decides a row: the alert fired within its window plus slack of its condition, and
// resolved by the hub within clear_for plus slack of its clear condition; or, for alerts a
// person resolves, was still open after the repair.
func judge(row *faultRow, slack time.Duration) {
	var why []string
	s := slack.Seconds()
	switch {
	case row.AlertS == nil:
		why = append(why, "no alert")
	case row.AlertAfterConditionS == nil:
		why = append(why, "alert, but its condition was never seen in the live state")
	case *row.AlertAfterConditionS > row.FireWindowS+s:
		why = append(why, fmt.Sprintf("alert %.1f s after its condition, window %g s + slack %g s", *row.AlertAfterConditionS, row.FireWindowS, s))
	case *row.AlertAfterConditionS < -s:
		why = append(why, fmt.Sprintf("alert %.1f s before its condition was seen", -*row.AlertAfterConditionS))
	}
	if row.AlertS != nil {
		switch {
		case row.PersonResolves && row.ResolveS != nil:
			why = append(why, "resolved by "+row.ResolvedBy+", but only a person may resolve it")
		case row.PersonResolves:
		case row.ResolveS == nil:
			why = append(why, "not resolved")
		case row.ResolveAfterClearS == nil:
			why = append(why, "resolved, but its clear condition was never seen in the live state")
		case *row.ResolveAfterClearS > row.ClearWindowS+s:
			why = append(why, fmt.Sprintf("resolved %.1f s after its clear condition, clear_for %g s + slack %g s", *row.ResolveAfterClearS, row.ClearWindowS, s))
		}
	}
	row.Pass = len(why) == 0
	if !row.Pass {
		row.Detail = strings.Join(append(why, row.Detail), "; ")
		row.Detail = strings.TrimSuffix(row.Detail, "; ")
	}
}

// summary is a row in one line, for progress.
func (r *faultRow) summary() string {
	return fmt.Sprintf("condition %s, alert %s (window %s), resolved %s after repair: %s %s",
		secs(r.ConditionS), secs(r.AlertS), r.Window, secs(r.ResolveS), verdict(r.Pass), r.Detail)
}

// secs formats an optional time in seconds: "12.3 s", or "–".
func secs(v *float64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf("%.1f s", *v)
}

func verdict(pass bool) string {
	if pass {
		return "pass"
	}
	return "**FAIL**"
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// decide sets the run's verdict: every part asked for ran and passed.
func (rep *report) decide(parts []string) {
	rep.Pass = true
	for _, p := range parts {
		switch {
		case p == "faults" && (rep.Faults == nil || !rep.Faults.Pass), p == "quiet" && (rep.Quiet == nil || !rep.Quiet.Pass):
			rep.Pass = false
		}
	}
}

// write saves the report as JSON and markdown in dir.
func (rep *report) write(dir string) error {
	return testbed.WriteResults(dir, rep, rep.markdown())
}

// markdown is the fault table, then the quiet run.
func (rep *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Field trial of the alert rules, %s\n\n", rep.Started.Format("2006-01-02 15:04 MST"))
	m := rep.Machine
	fmt.Fprintf(&b, "Machine: %s, %d cores, %s, %s, %s. Result: %s.\n", m.CPU, m.Cores, m.Memory, m.Go, m.OS, verdict(rep.Pass))
	if f := rep.Faults; f != nil {
		b.WriteString(f.markdown())
	}
	if q := rep.Quiet; q != nil {
		b.WriteString(q.markdown())
	}
	return b.String()
}

func (f *faultsResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Faults: from fault to alert, from repair to resolve — %s\n\n", verdict(f.Pass))
	fmt.Fprintf(&b, "The hub's rules with every window divided by %g, snapshots every %s, every fault at once on its own unit (%.0f s in all). ", f.Scale, f.Interval, f.Seconds)
	fmt.Fprintf(&b, "Times are seconds after the fault (alert) and after the repair (resolved); \"condition\" is when the hub's live state first met the rule's condition, which the window counts from. A delay passes within the window + %g s of slack (one snapshot interval, two ticks, one poll).\n\n", f.Slack)
	b.WriteString("| fault | rule | window | condition | alert | alert − condition | clear_for | resolved | resolved − clear | result |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range f.Rows {
		rule := r.Rule
		switch {
		case r.Door == anyDoor:
			rule += fmt.Sprintf(" (%d compartments)", r.Alerts)
		case r.Door > 0:
			rule += fmt.Sprintf(" (door %d)", r.Door)
		}
		clearFor, resolved := fmt.Sprintf("%g s", r.ClearWindowS), secs(r.ResolveS)
		if r.PersonResolves {
			clearFor, resolved = "a person", "open (by design)"
			if r.ResolveS != nil {
				resolved = secs(r.ResolveS) + " by " + r.ResolvedBy
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Fault, rule, r.Window, secs(r.ConditionS), secs(r.AlertS),
			secs(r.AlertAfterConditionS), clearFor, resolved, secs(r.ResolveAfterClearS), verdict(r.Pass))
	}
	b.WriteString("\nHow each fault was made to show, and what else the unit raised:\n\n")
	for _, r := range f.Rows {
		fmt.Fprintf(&b, "- **%s** on %s (%s): %s.", r.Fault, r.Unit, r.Rule, r.Setup)
		if r.Detail != "" {
			fmt.Fprintf(&b, " %s.", r.Detail)
		}
		if len(r.Others) > 0 {
			fmt.Fprintf(&b, " Also raised: %s.", strings.Join(r.Others, "; "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (q *quietResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Quiet fleet: false alerts — %s\n\n", verdict(q.Pass))
	fmt.Fprintf(&b, "%d simulated units (%d locker banks, %d fridges) over %d sites, no faults, simulated carriers delivering parcels and residents collecting them with their codes, for %s against %s. Target: no alert.\n\n",
		q.Units, q.LockerBanks, q.Fridges, q.Sites, q.Duration, q.Rules)
	p := q.Pickups
	fmt.Fprintf(&b, "Parcels the hub saw: %d delivered, %d picked up; door openings by a pickup code %d, other %d.%s\n\n",
		p.Delivered, p.PickedUp, p.CodeOpenings, p.OtherOpenings, p.Counted)
	fmt.Fprintf(&b, "**False alerts: %d.**\n", len(q.Alerts))
	if len(q.Alerts) == 0 {
		return b.String()
	}
	b.WriteString("\n| rule | alerts |\n|---|---|\n")
	for _, rule := range sortedKeys(q.ByRule) {
		fmt.Fprintf(&b, "| %s | %d |\n", rule, q.ByRule[rule])
	}
	b.WriteString("\n| fired (min after online) | rule | severity | unit | door | state | summary |\n|---|---|---|---|---|---|---|\n")
	for _, a := range q.Alerts {
		door := "–"
		if a.Door > 0 {
			door = fmt.Sprint(a.Door)
		}
		fmt.Fprintf(&b, "| %s (%.1f) | %s | %s | %s | %s | %s | %s |\n", a.FiredAt.Format(time.TimeOnly), a.AfterS/60, a.Rule, a.Severity, a.Unit, door, a.State,
			strings.ReplaceAll(a.Summary, "|", "/"))
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
