package commands

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
)

type metrics struct {
	commands *prometheus.CounterVec
	duration prometheus.Histogram
	limited  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_commands_total",
			Help: "Commands finished, by type and outcome (the device's outcome, or expired, or refused).",
		}, []string{"type", "outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lockerhub_command_duration_seconds",
			Help:    "Time from an operator's request to the device's result.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_commands_rate_limited_total",
			Help: "Command requests refused by a rate limit, by scope (token or device).",
		}, []string{"scope"}),
	}
	for _, c := range []prometheus.Collector{m.commands, m.duration, m.limited} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe counts a command that reached a final status.
func (m *metrics) observe(c *fleet.Command) {
	outcome := string(c.Outcome)
	switch c.Status {
	case fleet.CommandExpired:
		outcome = "expired"
	case fleet.CommandFailed:
		if outcome == "" {
			outcome = "refused" // never reached the device
		}
	}
	m.commands.WithLabelValues(string(c.Type), outcome).Inc()
	if d := c.Latency(); d > 0 && c.Outcome != "" {
		m.duration.Observe(d.Seconds())
	}
}
