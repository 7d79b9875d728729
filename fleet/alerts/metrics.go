package alerts

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
)

type metrics struct {
	transitions *prometheus.CounterVec
	evaluation  prometheus.Histogram
	evaluations prometheus.Counter
}

// newMetrics registers the engine's metrics; firing counts the open alerts of each rule when
// they are scraped.
func newMetrics(reg prometheus.Registerer, rules []Rule, firing func() map[string]int) (*metrics, error) {
	m := &metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_alert_transitions_total",
			Help: "Alert lifecycle changes, by rule and event (fired, acknowledged, resolved).",
		}, []string{"rule", "event"}),
		evaluation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lockerhub_alerts_evaluation_seconds",
			Help:    "Time to evaluate the units that were due at once (a message, a deadline), including storing what changed.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_alerts_evaluations_total",
			Help: "Evaluations of one unit's rules: after its messages, at its deadlines, and once per unit when a hub starts or starts to lead.",
		}),
	}
	for _, c := range []prometheus.Collector{newFiringCollector(rules, firing), m.transitions, m.evaluation, m.evaluations} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every rule has its series from the start, so that "no alerts" reads as 0, not as absent.
	for _, r := range rules {
		for _, ev := range []fleet.AlertEventKind{fleet.AlertEventFired, fleet.AlertEventAcknowledged, fleet.AlertEventResolved} {
			m.transitions.WithLabelValues(r.Name, string(ev))
		}
	}
	return m, nil
}

// firingCollector reports the open alerts of each rule as they are when scraped: the engine no
// longer looks at every unit on its own, so nothing else would count them.
type firingCollector struct {
	desc   *prometheus.Desc
	rules  []Rule
	firing func() map[string]int
}

func newFiringCollector(rules []Rule, firing func() map[string]int) *firingCollector {
	return &firingCollector{
		desc: prometheus.NewDesc("lockerhub_alerts_firing",
			"Open alerts (firing or acknowledged) this hub tracks, by rule and severity.", []string{"rule", "severity"}, nil),
		rules: rules, firing: firing,
	}
}

func (c *firingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *firingCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.firing()
	for _, r := range c.rules {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n[r.Name]), r.Name, string(r.Severity))
	}
}
