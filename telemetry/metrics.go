package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// metrics are the pipeline's Prometheus series.
type metrics struct {
	messages *prometheus.CounterVec
	// storedTelemetry and storedEvents are messages' children, resolved once: every stored
	// message counts in one of them.
	storedTelemetry, storedEvents prometheus.Counter
	invalid                       *prometheus.CounterVec
	pointsIn                      prometheus.Counter
	pointsOut                     prometheus.Counter
	writeSeconds                  prometheus.Histogram
	retries                       prometheus.Counter
	quarantined                   prometheus.Counter
	refused                       prometheus.Counter
	gaps                          prometheus.Counter
	duplicates                    prometheus.Counter
	collectors                    []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer, spoolMessages, spoolBytes func() float64) (*metrics, error) {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_telemetry_messages_ingested_total",
			Help: "Device messages stored in the spool, by channel.",
		}, []string{"channel"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_telemetry_invalid_total",
			Help: "Device messages dropped because they contradict the registry or are implausible, by reason.",
		}, []string{"reason"}),
		pointsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_telemetry_points_ingested_total",
			Help: "Points stored in the spool.",
		}),
		pointsOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_telemetry_points_written_total",
			Help: "Points written to InfluxDB.",
		}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lockerhub_telemetry_write_duration_seconds",
			Help:    "Time of one batch write to InfluxDB, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_telemetry_write_retries_total",
			Help: "Batch writes to InfluxDB retried after a failure that can pass.",
		}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_telemetry_quarantined_batches_total",
			Help: "Messages InfluxDB refused as bad data, set aside in the data directory's quarantine.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_telemetry_backpressure_refusals_total",
			Help: "Messages not acknowledged because the spool stayed full; the device resends them. Nothing is dropped.",
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_telemetry_sequence_gaps_total",
			Help: "Device sequence numbers that never arrived (lost or dropped at the edge).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_telemetry_duplicates_total",
			Help: "Device messages received again (resent after a lost acknowledgement); stored once.",
		}),
	}
	m.storedTelemetry = m.messages.WithLabelValues(string(wire.ChannelTelemetry))
	m.storedEvents = m.messages.WithLabelValues(string(wire.ChannelEvents))
	collectors := []prometheus.Collector{m.messages, m.invalid, m.pointsIn, m.pointsOut, m.writeSeconds,
		m.retries, m.quarantined, m.refused, m.gaps, m.duplicates,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lockerhub_telemetry_spool_messages",
			Help: "Messages in the spool not yet written to InfluxDB.",
		}, spoolMessages),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lockerhub_telemetry_spool_bytes",
			Help: "Bytes in the spool not yet written to InfluxDB.",
		}, spoolBytes),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
