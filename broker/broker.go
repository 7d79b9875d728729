// Package broker runs lockerhub's embedded MQTT broker (mochi-mqtt): its TCP, TLS and
// WebSocket listeners, the hook that authenticates every device and confines it to its own
// topics, payload validation against the wire contract, and presence.
//
// Hub-internal traffic goes through mochi's inline client rather than a loopback MQTT
// connection: it bypasses the ACL by design and costs no socket or encoding.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/loginaudit"
	"github.com/lockerhub/lockerhub/internal/ratelog"
)

// maxPacketBytes caps every MQTT packet, CONNECT included. Without a cap mochi allocates
// whatever length an unauthenticated client announces. The margin over the payload limit
// leaves room for the topic and properties, so a slightly oversized payload still reaches the
// decoder and is rejected and counted there with a useful log line.
const maxPacketBytes = wire.MaxPayloadBytes + 1024

// Config holds the broker's listeners. Addresses are host:port; port 0 picks a free port.
type Config struct {
	Addr    string `mapstructure:"addr"`     // plain TCP listener, required
	TLSAddr string `mapstructure:"tls_addr"` // TLS listener, optional
	TLSCert string `mapstructure:"tls_cert"` // PEM certificate chain for TLSAddr
	TLSKey  string `mapstructure:"tls_key"`  // PEM private key for TLSAddr
	WSAddr  string `mapstructure:"ws_addr"`  // MQTT over WebSocket listener, optional
}

// Validate reports the first bad setting, naming its configuration key.
func (c Config) Validate() error {
	for _, a := range []struct{ key, addr string }{{"mqtt.addr", c.Addr}, {"mqtt.tls_addr", c.TLSAddr}, {"mqtt.ws_addr", c.WSAddr}} {
		if a.addr == "" && a.key != "mqtt.addr" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s: invalid address %q: want host:port, e.g. :1883", a.key, a.addr)
		}
	}
	if c.TLSAddr != "" && (c.TLSCert == "" || c.TLSKey == "") {
		return errors.New("mqtt.tls_cert and mqtt.tls_key are required when mqtt.tls_addr is set")
	}
	if c.TLSAddr == "" && (c.TLSCert != "" || c.TLSKey != "") {
		return errors.New("mqtt.tls_cert and mqtt.tls_key are set but mqtt.tls_addr is empty")
	}
	return nil
}

// Ingester stores device telemetry and events before the broker acknowledges them.
type Ingester interface {
	// Ingest starts storing msg and returns without waiting for the disk. Its wait returns
	// nil once msg is durable (or deliberately dropped). The broker calls the waits of one
	// connection one at a time, in the order of its messages, and acknowledges each message
	// when its wait has returned nil. An error from Ingest or from wait means msg could not
	// be stored: it is not acknowledged and the connection is closed, so that the device
	// sends it again from its outbox after reconnecting.
	Ingest(ctx context.Context, deviceID string, ch wire.Channel, msg wire.Message) (wait func(context.Context) error, err error)
}

// Options carries the broker's collaborators.
type Options struct {
	Logger        *slog.Logger          // defaults to discarding
	Registerer    prometheus.Registerer // defaults to a private registry
	Ingester      Ingester              // optional: where telemetry and events go before their PUBACK
	IngestTimeout time.Duration         // how long one message may wait for the Ingester, each phase; 30s by default
	// ConnectTimeout bounds how long a new connection may take to complete its TLS or
	// WebSocket handshake and send CONNECT; 10s by default. mochi itself waits for the CONNECT
	// without a deadline, so a client that opens a connection and says nothing would hold a
	// file descriptor, two goroutines and their buffers for ever, and enough of them would
	// lock every unit out. Once CONNECT is read, mochi's keepalive deadline takes over.
	ConnectTimeout time.Duration
	Audit          fleet.Auditor // optional: where failed logins are recorded (in batches)
}

// Broker is the embedded MQTT broker.
type Broker struct {
	cfg      Config
	store    CredentialStore
	log      *slog.Logger
	failLog  *ratelog.Limiter
	srv      *mqtt.Server
	auth     *authenticator
	sessions *sessions
	metrics  *metrics
	now      func() time.Time
	addrs    map[string]net.Addr
	ingest   Ingester
	ingestTO time.Duration
	connTO   time.Duration
	ackers   sync.Map             // *mqtt.Client → *acker, for connections that sent telemetry or events
	logins   *loginaudit.Recorder // nil without an audit trail
	bgDone   chan struct{}
	subIDs   atomic.Int32 // inline subscription identifiers

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// Listener names, as used by Addr.
const (
	ListenerTCP = "tcp"
	ListenerTLS = "tls"
	ListenerWS  = "ws"
)

// New returns a broker that authenticates devices against store. It does not listen until Start.
func New(cfg Config, store CredentialStore, opts Options) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	b := &Broker{
		cfg:      cfg,
		store:    store,
		log:      opts.Logger,
		failLog:  ratelog.New(opts.Logger, 10*time.Second),
		auth:     newAuthenticator(store),
		sessions: newSessions(),
		now:      time.Now,
		addrs:    make(map[string]net.Addr),
		ingest:   opts.Ingester,
		ingestTO: opts.IngestTimeout,
		connTO:   opts.ConnectTimeout,
	}
	if b.ingestTO <= 0 {
		b.ingestTO = 30 * time.Second
	}
	if b.connTO <= 0 {
		b.connTO = 10 * time.Second
	}
	if opts.Audit != nil {
		b.logins = loginaudit.New(opts.Audit, "mqtt", opts.Logger)
	}
	var err error
	b.metrics, err = newMetrics(opts.Registerer, func() float64 { return float64(b.sessions.onlineCount()) })
	if err != nil {
		return nil, fmt.Errorf("register broker metrics: %w", err)
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = maxPacketBytes
	// Each client gets a buffered channel of this many pending outbound packets, allocated at
	// connect: mochi's default of 8,192 costs 64 KiB per device (measured: hub heap in use with
	// 1,000 simulated units fell from 145 MB to 32 MB at 256). Devices receive nothing but their
	// commands, at most 20 a minute per device (commands.per_device_per_minute), so 32 holds
	// more than a minute of them even for a device that reads nothing; mochi would drop a
	// packet that found it full, and such a command would expire unanswered, never run late.
	caps.MaximumClientWritesPending = 32
	// MQTT 5 devices learn how many unacknowledged messages the hub takes (see maxUnacked);
	// mochi's default of 1,024 would promise more than the hub reads ahead.
	caps.ReceiveMaximum = maxUnacked
	b.srv = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: caps,
		// Each connection keeps a read buffer for as long as it lives. mochi's 2 KiB would
		// hold a whole snapshot of a large locker bank, but packets larger than the buffer
		// are read straight into their own memory, so 1 KiB costs nothing in speed and saves
		// 1 KiB per unit.
		ClientNetReadBufferSize: 1024,
		Logger:                  mochiLogger(opts.Logger),
	})
	b.ctx, b.cancel = context.WithCancel(context.Background())
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("add broker hook: %w", err)
	}
	return b, nil
}

// Start opens the configured listeners and starts serving. On error, listeners opened so far
// are closed.
func (b *Broker) Start() (err error) {
	var opened []net.Listener
	defer func() {
		if err != nil {
			for _, ln := range opened {
				ln.Close()
			}
		}
	}()
	listen := func(key, addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		opened = append(opened, ln)
		return connectDeadline{ln, b.connTO}, nil
	}
	add := func(name string, ln net.Listener) error {
		b.addrs[name] = ln.Addr()
		return b.srv.AddListener(listeners.NewNet(name, ln))
	}

	ln, err := listen("mqtt.addr", b.cfg.Addr)
	if err != nil {
		return err
	}
	if err := add(ListenerTCP, ln); err != nil {
		return err
	}
	if b.cfg.TLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(b.cfg.TLSCert, b.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("mqtt.tls_cert/mqtt.tls_key: %w", err)
		}
		ln, err := listen("mqtt.tls_addr", b.cfg.TLSAddr)
		if err != nil {
			return err
		}
		tlsLn := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		if err := add(ListenerTLS, tlsLn); err != nil {
			return err
		}
	}
	if b.cfg.WSAddr != "" {
		ln, err := listen("mqtt.ws_addr", b.cfg.WSAddr)
		if err != nil {
			return err
		}
		if err := add(ListenerWS, newWSListener(ln, maxPacketBytes, b.connTO)); err != nil {
			return err
		}
	}
	if err := b.srv.Serve(); err != nil {
		return err
	}
	if b.logins != nil {
		b.bgDone = make(chan struct{})
		go func() {
			defer close(b.bgDone)
			b.logins.Run(b.ctx)
		}()
	}
	return nil
}

// Addr returns the bound address of a listener (ListenerTCP, ListenerTLS, ListenerWS), or nil
// if it is not configured or not started.
func (b *Broker) Addr(name string) net.Addr { return b.addrs[name] }

// Close disconnects every client, closes the listeners and stops the broker. Calls after the
// first do nothing.
func (b *Broker) Close() (err error) {
	b.closeOnce.Do(func() {
		err = b.srv.Close()
		b.cancel()
		if b.bgDone != nil {
			<-b.bgDone // the last failed logins reach the audit trail
		}
	})
	return err
}

// Presence returns the presence of one device; false if it has not connected since start.
func (b *Broker) Presence(id string) (fleet.Presence, bool) { return b.sessions.get(id) }

// Revalidate checks every session the broker holds against the registry, disconnecting devices
// that were disabled, removed or given a new secret, and forgetting the sessions of removed
// devices. Call it whenever the registry changes.
func (b *Broker) Revalidate(ctx context.Context) error {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Inline {
			continue
		}
		cred, err := b.store.DeviceCredential(ctx, cl.ID)
		removed := fleet.ErrorCode(err) == fleet.ENOTFOUND
		if err != nil && !removed {
			return fmt.Errorf("revalidate %s: %w", cl.ID, err)
		}
		var why string
		switch hash, live := b.sessions.secretHash(cl); {
		case removed:
			why = "removed"
		case !live:
		case !cred.Enabled:
			why = "disabled"
		case cred.SecretHash != hash:
			why = "secret rotated"
		}
		if why == "" {
			continue
		}
		if !cl.Closed() {
			b.log.Info("disconnecting device", "device", cl.ID, "reason", why)
			_ = b.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		}
		if removed {
			// mochi keeps persistent sessions of offline clients; a removed device's
			// subscriptions and queued messages must not wait for a reconnect that never comes.
			b.srv.UnsubscribeClient(cl)
			if cur, ok := b.srv.Clients.Get(cl.ID); ok && cur == cl {
				b.srv.Clients.Delete(cl.ID)
			}
		}
	}
	return nil
}

// Publish publishes a message from the hub itself through mochi's inline client, which is not
// subject to the device ACL.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.srv.Publish(topic, payload, retain, qos)
}

// PublishRequest publishes a request to a device from the hub: QoS 1, with an MQTT 5 message
// expiry so that the broker itself drops it once stale, whatever protocol the device speaks, and
// a response topic and correlation data for devices that speak MQTT 5 (3.1.1 devices find the
// expiry and id in the payload). The broker's expiry is rounded up to whole seconds plus one: it
// is housekeeping, and the payload's millisecond expiry, which the device enforces, decides.
func (b *Broker) PublishRequest(topic string, payload []byte, expiry time.Duration, responseTopic string, correlation []byte) error {
	inline, ok := b.srv.Clients.Get(mqtt.InlineClientId)
	if !ok {
		return errors.New("broker: inline client missing")
	}
	return b.srv.InjectPacket(inline, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    1, // required for validity; the inline client never sees an acknowledgement
		Properties: packets.Properties{
			MessageExpiryInterval: uint32(math.Ceil(expiry.Seconds())) + 1,
			ResponseTopic:         responseTopic,
			CorrelationData:       correlation,
		},
	})
}

// Subscribe delivers every message matching filter to fn, including retained messages at once.
// fn runs on the publishing client's goroutine, before that client's next packet is read, so it
// must not block.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	id := int(b.subIDs.Add(1))
	return b.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	})
}

// connectDeadline gives every accepted connection until timeout to finish its handshake and
// send CONNECT (see Options.ConnectTimeout).
type connectDeadline struct {
	net.Listener
	timeout time.Duration
}

func (l connectDeadline) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		c.SetDeadline(time.Now().Add(l.timeout))
	}
	return c, err
}
