package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lockerhub/lockerhub/scripts/internal/testbed"
)

// report is the whole run, written to results.json and results.md.
type report struct {
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Pass     bool              `json:"pass"`
	Options  map[string]string `json:"options"`
	Cases    []*caseResult     `json:"cases"`
}

// caseResult is one case: what it sent, what arrived and was lost, its checks and notes.
type caseResult struct {
	Name       string             `json:"name"`
	Title      string             `json:"title"`
	Pass       bool               `json:"pass"`
	Seconds    float64            `json:"seconds"`
	Error      string             `json:"error,omitempty"` // the case could not finish
	Delivery   *delivery          `json:"delivery,omitempty"`
	Checks     []check            `json:"checks"`
	Notes      []string           `json:"notes,omitempty"`
	HubMetrics map[string]float64 `json:"hub_metrics,omitempty"`
	Commands   *commandStats      `json:"commands,omitempty"`
	Flood      *floodStats        `json:"flood,omitempty"`
	Probes     []probeResult      `json:"probes,omitempty"`
	Soak       *soakStats         `json:"soak,omitempty"`
	Identity   []*identityRound   `json:"identity,omitempty"`
	FD         *fdStats           `json:"fd_exhaustion,omitempty"`
}

// check is one pass/fail judgement with what was measured against what was required.
type check struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

func (r *caseResult) check(name string, pass bool, format string, args ...any) {
	r.Checks = append(r.Checks, check{Name: name, Pass: pass, Detail: fmt.Sprintf(format, args...)})
}

func (r *caseResult) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// checkDelivery adds the checks every case with agents makes on its delivery.
func (r *caseResult) checkDelivery(d *delivery) {
	r.Delivery = d
	r.check("zero loss of acknowledged data", d.Lost == 0,
		"%d acknowledged, %d in InfluxDB (+%d command results, not stored by design), %d lost", d.Acked, d.Arrived, d.Results, d.Lost)
	r.check("no duplicate points", d.Duplicates == 0, "%d seqs stored more than once", d.Duplicates)
}

// finish decides the case: it passes if it ran to the end and every check passed.
func (r *caseResult) finish(start time.Time, err error) {
	r.Seconds = round1(time.Since(start).Seconds())
	if err != nil {
		r.Error = err.Error()
	}
	r.Pass = err == nil && len(r.Checks) > 0 && !slices.ContainsFunc(r.Checks, func(c check) bool { return !c.Pass })
}

// write saves the report as JSON and markdown in dir.
func (rep *report) write(dir string) error {
	return testbed.WriteResults(dir, rep, rep.markdown())
}

// markdown is the summary table, then each case's checks and notes.
func (rep *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Resilience suite, %s\n\n", rep.Started.Format("2006-01-02 15:04 MST"))
	b.WriteString("| case | sent | acknowledged | in InfluxDB | lost | time | result |\n|---|---|---|---|---|---|---|\n")
	for _, c := range rep.Cases {
		sent, acked, arrived, lost := "–", "–", "–", "–"
		if d := c.Delivery; d != nil {
			sent, acked, arrived, lost = thousands(d.Sent), thousands(d.Acked), thousands(d.Arrived), thousands(d.Lost)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.0f s | %s |\n", c.Name, sent, acked, arrived, lost, c.Seconds, verdict(c.Pass))
	}
	b.WriteString("\nCounts are messages with a seq, verified per unit and seq in InfluxDB. Command results take a seq but are not stored in InfluxDB, so \"in InfluxDB\" may be below \"acknowledged\" by their number without a loss.\n")
	for _, c := range rep.Cases {
		fmt.Fprintf(&b, "\n## %s: %s — %s\n\n", c.Name, c.Title, verdict(c.Pass))
		if c.Error != "" {
			fmt.Fprintf(&b, "**Did not finish:** %s\n\n", c.Error)
		}
		for _, ch := range c.Checks {
			mark := "✓"
			if !ch.Pass {
				mark = "✗"
			}
			fmt.Fprintf(&b, "- %s %s: %s\n", mark, ch.Name, ch.Detail)
		}
		for _, n := range c.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func verdict(pass bool) string {
	if pass {
		return "pass"
	}
	return "**FAIL**"
}

// thousands formats n with commas, as docs/PERFORMANCE.md does.
func thousands(n int64) string {
	if n < 0 {
		return "-" + thousands(-n)
	}
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of ds, or 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1]
}

// ms expresses d in milliseconds with one decimal, for reports.
func ms(d time.Duration) float64 { return round1(float64(d) / float64(time.Millisecond)) }

// trend is the flatness judgement of one soak series.
type trend struct {
	Series    string  `json:"series"`
	FirstMean float64 `json:"first_third_mean"`
	LastMean  float64 `json:"last_third_mean"`
	Limit     float64 `json:"limit"` // the last third's mean may be at most this
	Pass      bool    `json:"pass"`
}

// flatness compares the mean of the last third of values with the mean of the first third,
// after dropping the first warmup values (the hub's caches, pools and buffers filling up). A
// series is flat when the last third's mean stays within relTol (fraction) and absTol (units
// of the series) of the first's: a leak grows the last third without bound, noise does not.
// Fewer than three values after the warm-up cannot be judged and fail.
func flatness(series string, values []float64, warmup int, relTol, absTol float64) trend {
	t := trend{Series: series}
	if warmup < 0 || len(values)-warmup < 3 {
		return t
	}
	v := values[warmup:]
	third := len(v) / 3
	t.FirstMean, t.LastMean = mean(v[:third]), mean(v[len(v)-third:])
	t.Limit = t.FirstMean*(1+relTol) + absTol
	t.Pass = t.LastMean <= t.Limit
	return t
}

func mean(v []float64) float64 {
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}
