package alerts

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
)

type metrics struct {
	firing      *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	evaluation  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, rules []Rule) (*metrics, error) {
	m := &metrics{
		firing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lockerhub_alerts_firing",
			Help: "Open alerts (firing or acknowledged), by rule and severity, as of the last evaluation.",
		}, []string{"rule", "severity"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_alert_transitions_total",
			Help: "Alert lifecycle changes, by rule and event (fired, acknowledged, resolved).",
		}, []string{"rule", "event"}),
		evaluation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lockerhub_alerts_evaluation_seconds",
			Help:    "Time to evaluate every rule on every unit once, including storing what changed.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
	}
	for _, c := range []prometheus.Collector{m.firing, m.transitions, m.evaluation} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every rule has its series from the start, so that "no alerts" reads as 0, not as absent.
	for _, r := range rules {
		m.firing.WithLabelValues(r.Name, string(r.Severity))
		for _, ev := range []fleet.AlertEventKind{fleet.AlertEventFired, fleet.AlertEventAcknowledged, fleet.AlertEventResolved} {
			m.transitions.WithLabelValues(r.Name, string(ev))
		}
	}
	return m, nil
}
