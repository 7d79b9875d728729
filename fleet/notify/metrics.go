package notify

import (
	"github.com/prometheus/client_golang/prometheus"
)

// registerMetrics registers the notification counter and the queue gauge of senders on reg,
// and returns the counter.
func registerMetrics(reg prometheus.Registerer, senders []*sender) (*prometheus.CounterVec, error) {
	results := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lockerhub_alert_notifications_total",
		Help: "Alert notification requests (events and Alertmanager re-sends), by sender and result: " +
			"sent, retried (an attempt failed and is retried) or dead (given up on, or dropped with a full queue).",
	}, []string{"sender", "result"})
	queue := queueCollector{
		desc: prometheus.NewDesc("lockerhub_alert_notification_queue",
			"Alert events waiting in a sender's queue.", []string{"sender"}, nil),
		senders: senders,
	}
	for _, c := range []prometheus.Collector{results, queue} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every sender has its series from the start, so that "nothing lost" reads as 0.
	for _, s := range senders {
		for _, r := range []string{resultSent, resultRetried, resultDead} {
			results.WithLabelValues(s.name, r)
		}
	}
	return results, nil
}

// queueCollector reads the length of every sender's queue when scraped, which is exact where
// a gauge updated by both ends of the queue could be left stale by their interleaving.
type queueCollector struct {
	desc    *prometheus.Desc
	senders []*sender
}

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.senders {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(len(s.queue)), s.name)
	}
}
