package external

import "github.com/prometheus/client_golang/prometheus"

// metrics are the link's Prometheus series, registered on the registerer given to New.
type metrics struct {
	received  *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	connected prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, online func() float64) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_external_messages_received_total",
			Help: "Valid device messages received from the external broker, by subscription (shared: this hub's share, stored here; all: the whole stream) and channel.",
		}, []string{"subscription", "channel"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_external_messages_rejected_total",
			Help: "Device messages from the external broker dropped because they failed to decode, by reason.",
		}, []string{"reason"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lockerhub_external_broker_connected",
			Help: "1 while the hub is connected to the external MQTT broker.",
		}),
	}
	for _, c := range []prometheus.Collector{m.received, m.rejected, m.connected,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lockerhub_devices_connected",
			Help: "Devices whose retained status says online.",
		}, online),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
