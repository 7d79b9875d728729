// Package broker runs lockerhub's embedded MQTT broker (mochi-mqtt): its TCP, TLS and
// WebSocket listeners, and three hooks, split as mochi's own are: the auth hook authenticates
// every device and confines it to its own topics (authhook.go), the presence hook keeps one
// session per device and its presence (presencehook.go), and the ingest hook validates payloads
// against the wire contract and stores telemetry before acknowledging it (ingesthook.go).
//
// Hub-internal traffic goes through mochi's inline client rather than a loopback MQTT
// connection: it bypasses the ACL by design and costs no socket or encoding.
package broker

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
	"github.com/lockerhub/lockerhub/internal/logs"
	"github.com/lockerhub/lockerhub/internal/promreg"
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

	// Admission bounds (see admission); 0 takes the default.
	MaxConnections      int `mapstructure:"max_connections"`        // connections held at once, all listeners
	MaxPending          int `mapstructure:"max_pending"`            // connections not yet authenticated
	MaxPendingPerSource int `mapstructure:"max_pending_per_source"` // of those, from one address (IPv6: /64)
}

// Admission defaults, for a hub of 10,000 units: every unit connected with room to spare, and
// enough pending connections for a whole fleet reconnecting after a restart (a connect takes
// milliseconds; a refused unit retries) while a flood of silent connections is cut short.
const (
	DefaultMaxConnections      = 15000
	DefaultMaxPending          = 1000
	DefaultMaxPendingPerSource = 100
)

// withDefaults returns c with every unset admission bound at its default.
func (c Config) withDefaults() Config {
	c.MaxConnections = cmp.Or(c.MaxConnections, DefaultMaxConnections)
	c.MaxPending = cmp.Or(c.MaxPending, DefaultMaxPending)
	c.MaxPendingPerSource = cmp.Or(c.MaxPendingPerSource, DefaultMaxPendingPerSource)
	return c
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
	for _, b := range []struct {
		key string
		n   int
	}{{"mqtt.max_connections", c.MaxConnections}, {"mqtt.max_pending", c.MaxPending}, {"mqtt.max_pending_per_source", c.MaxPendingPerSource}} {
		if b.n < 0 {
			return fmt.Errorf("%s: %d is negative; 0 takes the default", b.key, b.n)
		}
	}
	return nil
}

// Ingester takes the device messages the hub consumes (telemetry.Pipeline).
type Ingester interface {
	// Ingest starts storing a telemetry snapshot or door event and returns without waiting
	// for the disk. Its receipt's Wait returns nil once msg is durable (or deliberately
	// dropped). The broker waits for one connection's receipts one at a time, in the order of
	// its messages, and acknowledges each message once its receipt is done. An error from
	// Ingest or from Wait means msg could not be stored: it is not acknowledged and the
	// connection is closed, so that the device sends it again from its outbox after
	// reconnecting.
	Ingest(ctx context.Context, deviceID string, ch wire.Channel, msg wire.Message) (fleet.Receipt, error)
	// Apply takes a command result as it is delivered: the hub does not store it here, but a
	// result carries the unit's sequence number, shared with its telemetry and events, and a
	// sequence tracker that never saw it would count it as lost.
	Apply(ctx context.Context, deviceID string, ch wire.Channel, msg wire.Message) error
}

// Options carries the broker's collaborators.
type Options struct {
	Logger     *slog.Logger          // defaults to discarding
	Registerer prometheus.Registerer // defaults to a private registry
	// Ingester, optional, is where telemetry and events go before their PUBACK, and command
	// results as they are delivered.
	Ingester      Ingester
	IngestTimeout time.Duration // how long one message may wait for the Ingester, each phase; 30s by default
	// ConnectTimeout bounds how long a new connection may take to complete its TLS or
	// WebSocket handshake and send CONNECT; 10s by default. mochi itself waits for the CONNECT
	// without a deadline, so a client that opens a connection and says nothing would hold a
	// file descriptor, two goroutines and their buffers for ever, and enough of them would
	// lock every unit out. Once CONNECT is read, mochi's keepalive deadline takes over.
	ConnectTimeout time.Duration
	Audit          fleet.Auditor // optional: where failed logins are recorded (in batches)
	// Events, optional, is told of devices connecting and disconnecting
	// (fleet.EventPresenceChanged), after the presence service says so.
	Events fleet.EventPublisher
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
	adm      *admission
	// listeners are the raw TCP listeners, one per configured listener (see guardedListener).
	listeners []*guardedListener
	ingest    Ingester
	events    fleet.EventPublisher // nil: nobody follows presence changes
	ingestTO  time.Duration
	connTO    time.Duration
	ackers    sync.Map             // *mqtt.Client → *acker, for connections that sent telemetry or events
	logins    *loginaudit.Recorder // nil without an audit trail
	bgDone    chan struct{}
	subIDs    atomic.Int32 // inline subscription identifiers
	watchers  presenceWatchers
	// revalidations counts the calls of Revalidate, so that a connect can tell whether one
	// began while it authenticated.
	revalidations atomic.Uint64

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
	opts.Logger = logs.OrDiscard(opts.Logger)
	opts.Registerer = promreg.OrPrivate(opts.Registerer)
	cfg = cfg.withDefaults()
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
		events:   opts.Events,
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
	b.metrics, err = newMetrics(opts.Registerer, func() float64 { return float64(b.sessions.onlineCount()) }, func() (float64, float64) { return b.adm.counts() })
	if err != nil {
		return nil, fmt.Errorf("register broker metrics: %w", err)
	}
	b.adm = newAdmission(cfg, b.metrics.refused)
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = maxPacketBytes
	// Each client gets a buffered channel of this many pending outbound packets, allocated at
	// connect: mochi's default of 8,192 costs 64 KiB per device (docs/PERFORMANCE.md, tuning
	// choices). Devices receive nothing but their commands, at most 20 a minute per device
	// (commands.per_device_per_minute), so 32 holds more than a minute of them even for a device
	// that reads nothing; mochi would drop a packet that found it full, and such a command would
	// expire unanswered, never run late.
	caps.MaximumClientWritesPending = 32
	// MQTT 5 devices learn how many unacknowledged messages the hub takes (see maxUnacked);
	// mochi's default of 1,024 would promise more than the hub reads ahead.
	caps.ReceiveMaximum = maxUnacked
	b.srv = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: caps,
		// Each connection keeps a read buffer for as long as it lives. mochi's 2 KiB would
		// hold a whole snapshot of a large locker bank, but a packet larger than the buffer is
		// read past it straight into its own memory, with no more reads than a bigger buffer
		// takes. A unit's other packets (CONNECT, PINGREQ, events, results, PUBACKs) are a few
		// hundred bytes, so 512 bytes cost at most a read more for a burst of them and save
		// 1.5 KiB per unit (BenchmarkIdleConnection).
		ClientNetReadBufferSize: 512,
		Logger:                  mochiLogger(opts.Logger),
	})
	b.ctx, b.cancel = context.WithCancel(context.Background())
	// Each event is provided by one hook, so their order changes nothing; it is the order of a
	// connection's life: authenticated, established, publishing.
	for _, h := range []mqtt.Hook{&authHook{b: b}, &presenceHook{b: b}, &ingestHook{b: b}} {
		if err := b.srv.AddHook(h, nil); err != nil {
			return nil, fmt.Errorf("add broker hook %s: %w", h.ID(), err)
		}
	}
	return b, nil
}

// Start opens the configured listeners and starts serving. On error, listeners opened so far
// are closed.
func (b *Broker) Start() (err error) {
	defer func() {
		if err != nil {
			for _, ln := range b.listeners {
				ln.Close()
			}
		}
	}()
	if limit, ok := fileLimit(); ok && b.cfg.MaxConnections > limit-fileReserve {
		// Past the process's descriptor limit, accepting fails (and is retried) instead of
		// refusing cheaply, and the hub's own files and HTTP clients fail with it.
		b.log.Warn("mqtt.max_connections is above what the file descriptor limit allows; lowering it",
			"max_connections", b.cfg.MaxConnections, "nofile", limit, "lowered_to", max(limit-fileReserve, 1))
		b.adm.maxConns = max(limit-fileReserve, 1)
	}
	listen := func(key, name, addr string) (*guardedListener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		g := newGuardedListener(name, ln, b.adm, b.connTO, b.log, b.metrics.acceptErrors.WithLabelValues(name))
		b.listeners = append(b.listeners, g)
		b.addrs[name] = ln.Addr()
		return g, nil
	}
	add := func(name string, ln net.Listener) error {
		return b.srv.AddListener(mochiListener{listeners.NewNet(name, ln), b.closeListenerClients})
	}

	ln, err := listen("mqtt.addr", ListenerTCP, b.cfg.Addr)
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
		ln, err := listen("mqtt.tls_addr", ListenerTLS, b.cfg.TLSAddr)
		if err != nil {
			return err
		}
		tlsLn := tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		if err := add(ListenerTLS, tlsLn); err != nil {
			return err
		}
	}
	if b.cfg.WSAddr != "" {
		ln, err := listen("mqtt.ws_addr", ListenerWS, b.cfg.WSAddr)
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

// Checks returns a readiness check per listener ("mqtt_tcp", "mqtt_tls", "mqtt_ws"): each
// fails once its listener has stopped, and while accepting fails.
func (b *Broker) Checks() map[string]func(context.Context) error {
	checks := make(map[string]func(context.Context) error, len(b.listeners))
	for _, l := range b.listeners {
		checks["mqtt_"+l.name] = func(context.Context) error { return l.check() }
	}
	return checks
}

// Addr returns the bound address of a listener (ListenerTCP, ListenerTLS, ListenerWS), or nil
// if it is not configured or not started.
func (b *Broker) Addr(name string) net.Addr { return b.addrs[name] }

// Close disconnects every client, closes the listeners and stops the broker. Calls after the
// first do nothing.
func (b *Broker) Close() (err error) {
	b.closeOnce.Do(func() {
		b.adm.close()
		err = b.srv.Close()
		b.cancel()
		if b.bgDone != nil {
			<-b.bgDone // the last failed logins reach the audit trail
		}
	})
	return err
}

// mochiListener is the listener handed to mochi: its Close disconnects the listener's clients
// with closeClients instead of mochi's own, whose Clients.GetByListener takes the clients'
// read lock twice and so deadlocks the broker's Close when a client is removed in between
// (mochi v2.7.9; found as a hung test shutdown).
type mochiListener struct {
	*listeners.Net
	closeClients listeners.CloseFn
}

func (l mochiListener) Close(listeners.CloseFn) { l.Net.Close(l.closeClients) }

// closeListenerClients disconnects every client of a listener, as the broker shuts down.
func (b *Broker) closeListenerClients(listener string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// Presence returns the presence of one device; false if it has not connected since start.
func (b *Broker) Presence(id string) (fleet.Presence, bool) { return b.sessions.get(id) }

// Revalidate checks every device the broker holds a connection or session of against the
// registry: it disconnects devices that were disabled, removed or given a new secret, and
// forgets everything of removed devices. Call it whenever the registry changes.
func (b *Broker) Revalidate(ctx context.Context) error {
	b.revalidations.Add(1) // before the owners are listed: see checkConnect
	owners := b.sessions.owners()
	mochi := make(map[string]*mqtt.Client)
	for _, cl := range b.srv.Clients.GetAll() {
		if !cl.Net.Inline {
			mochi[cl.ID] = cl
		}
	}
	ids := make(map[string]struct{}, len(owners)+len(mochi))
	for id := range owners {
		ids[id] = struct{}{}
	}
	for id := range mochi {
		ids[id] = struct{}{}
	}
	for id := range ids {
		cred, err := b.store.DeviceCredential(ctx, id)
		removed := fleet.ErrorCode(err) == fleet.ENOTFOUND
		if err != nil && !removed {
			return fmt.Errorf("revalidate %s: %w", id, err)
		}
		if o, ok := owners[id]; ok {
			var why string
			switch {
			case removed:
				why = "removed"
			case !cred.Enabled:
				why = "disabled"
			case cred.SecretHash != o.secretHash:
				why = "secret rotated"
			}
			if why != "" {
				b.revoke(o.owner, why)
			}
		}
		if !removed {
			continue
		}
		if cl, ok := mochi[id]; ok {
			// mochi keeps persistent sessions of offline clients; a removed device's
			// subscriptions and queued messages must not wait for a reconnect that never
			// comes, nor pass to a new device registered under the same id.
			b.srv.UnsubscribeClient(cl)
			if cur, ok := b.srv.Clients.Get(id); ok && cur == cl {
				b.srv.Clients.Delete(id)
			}
		}
		b.sessions.forget(id)
	}
	return nil
}

// stillValid reads id's credential again and returns why a connection that authenticated
// against hash may no longer stay, or "".
func (b *Broker) stillValid(ctx context.Context, id, hash string) (reason string, err error) {
	cred, err := b.store.DeviceCredential(ctx, id)
	switch {
	case fleet.ErrorCode(err) == fleet.ENOTFOUND:
		return reasonUnknownDevice, nil
	case err != nil:
		return reasonStoreError, err
	case !cred.Enabled:
		return reasonDisabled, nil
	case cred.SecretHash != hash:
		return reasonBadSecret, nil
	}
	return "", nil
}

// revoke takes the device id from cl, whose credential is no longer valid, and closes it.
func (b *Broker) revoke(cl *mqtt.Client, why string) {
	if p, ok := b.sessions.release(cl); ok {
		b.publishPresence(p.DeviceID)
	}
	b.log.Info("disconnecting device", "device", cl.ID, "reason", why)
	b.disconnect(cl, packets.ErrNotAuthorized)
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

// Subscribe delivers every message matching filter to fn. A filter that matches status topics
// gets, at once, the current status of every device that connected since the broker started,
// then each device's status as it changes, as a retained document per device would give it
// (docs/protocol.md, Presence). fn runs on the goroutine of the client whose message or
// connection it reports, before that client's next packet is read, so it must not block, nor
// call Subscribe.
func (b *Broker) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	id := int(b.subIDs.Add(1))
	if err := b.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	}); err != nil {
		return err
	}
	b.watchPresence(filter, fn)
	return nil
}
