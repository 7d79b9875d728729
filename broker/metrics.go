package broker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// metrics are the broker's Prometheus series, registered on the registerer given to New.
type metrics struct {
	authFailures *prometheus.CounterVec
	hashChecks   prometheus.Counter
	aclDenied    *prometheus.CounterVec
	received     map[wire.Channel]prometheus.Counter // per channel a device publishes on, resolved once
	rejected     *prometheus.CounterVec
	connects     prometheus.Counter
	refused      *prometheus.CounterVec
	acceptErrors *prometheus.CounterVec
	takeovers    prometheus.Counter
	acks         prometheus.Counter
	ackWrites    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, online func() float64, conns func() (open, pending float64)) (*metrics, error) {
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
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_messages_rejected_total",
			Help: "Device messages dropped because their payload failed to decode, by reason.",
		}, []string{"reason"}),
		connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_connects_total",
			Help: "Device connections established.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_connections_refused_total",
			Help: "Connections closed at accept by an admission bound, by reason.",
		}, []string{"reason"}),
		acceptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_accept_errors_total",
			Help: "Failed accepts (e.g. out of file descriptors), retried after a backoff, by listener.",
		}, []string{"listener"}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_session_takeovers_total",
			Help: "Live connections closed because their device connected again.",
		}),
		acks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_acks_total",
			Help: "Acknowledgements the hub sent for device messages it stored or delivered itself.",
		}),
		ackWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lockerhub_mqtt_ack_writes_total",
			Help: "Network writes that carried those acknowledgements: those of one connection's messages made durable by one spool commit leave in one write.",
		}),
	}
	received := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lockerhub_mqtt_messages_received_total",
		Help: "Valid messages received from devices, by channel.",
	}, []string{"channel"})
	// Every device message counts here: looking the child up by label each time cost a hash
	// and a lock per message.
	m.received = map[wire.Channel]prometheus.Counter{}
	for _, ch := range []wire.Channel{wire.ChannelTelemetry, wire.ChannelEvents, wire.ChannelStatus, wire.ChannelResult} {
		m.received[ch] = received.WithLabelValues(string(ch))
	}
	for _, c := range []prometheus.Collector{m.authFailures, m.hashChecks, m.aclDenied, received, m.rejected, m.connects, m.refused, m.acceptErrors, m.takeovers, m.acks, m.ackWrites,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lockerhub_devices_connected",
			Help: "Devices with a live MQTT connection.",
		}, online),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lockerhub_mqtt_connections",
			Help: "Network connections the broker holds, authenticated or not (mqtt.max_connections).",
		}, func() float64 { open, _ := conns(); return open }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "lockerhub_mqtt_connections_pending",
			Help: "Network connections whose device has not authenticated yet (mqtt.max_pending).",
		}, func() float64 { _, pending := conns(); return pending }),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
