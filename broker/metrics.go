package broker

import "github.com/prometheus/client_golang/prometheus"

// metrics are the broker's Prometheus series, registered on the registerer given to New.
type metrics struct {
	authFailures *prometheus.CounterVec
	hashChecks   prometheus.Counter
	aclDenied    *prometheus.CounterVec
	received     *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	connects     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, online func() float64) (*metrics, error) {
	m := &metrics{
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_auth_failures_total",
			Help: "MQTT connects refused, by reason.",
		}, []string{"reason"}),
		hashChecks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_auth_hash_verifications_total",
			Help: "Device secrets checked against their slow stored hash (cache misses).",
		}),
		aclDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_acl_denied_total",
			Help: "Publishes and subscriptions refused by the ACL, by action.",
		}, []string{"action"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_messages_received_total",
			Help: "Valid messages received from devices, by channel.",
		}, []string{"channel"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_messages_rejected_total",
			Help: "Device messages dropped because their payload failed to decode, by reason.",
		}, []string{"reason"}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_connects_total",
			Help: "Device connections established.",
		}),
	}
	for _, c := range []prometheus.Collector{m.authFailures, m.hashChecks, m.aclDenied, m.received, m.rejected, m.connects,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lockerhub_devices_connected",
			Help: "Devices with a live MQTT connection.",
		}, online),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
