// Package external connects a hub to an operator's MQTT 5 broker or cluster (Mosquitto, EMQX,
// VerneMQ, HiveMQ) instead of embedding one, so that several hubs share the fleet and any of
// them can die. The broker authenticates devices and enforces their ACL (docs/brokers.md);
// the hub consumes the device stream over one MQTT 5 connection with two subscriptions told
// apart by their subscription identifiers:
//
//   - shared, QoS 1, $share/<group>/lockers/+/{telemetry,events,result}: the broker gives
//     each message to one hub of the group, which stores it (telemetry into its spool, results
//     into the command store) and only then acknowledges it, so that a message a hub received
//     but had not stored is sent again when its session resumes. The session outlives the
//     connection (session expiry), and the broker keeps the hub's share while it restarts.
//   - plain, QoS 0, lockers/+/{telemetry,events,result,status} and lockers/+/cmd/request:
//     every hub sees the whole stream, which keeps its live state, presence and health rules
//     complete, tells it of results wherever they are stored and of commands other hubs sent.
//
// Commands are published by whichever hub the API call reached, at QoS 1.
//
// What the broker needs from the hub to check devices lives here too, per broker: the password
// and ACL files of Mosquitto (mosquitto.go, written by `lockerhub device export-acl`) and the
// HTTP endpoints EMQX and VerneMQ call (httpauth.go). Both grant what the embedded broker grants.
package external

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/backoff"
	"github.com/lockerhub/lockerhub/internal/logs"
	"github.com/lockerhub/lockerhub/internal/promreg"
	"github.com/lockerhub/lockerhub/internal/ratelog"
)

// Config is the connection to the external broker: mqtt.external in the hub's configuration.
type Config struct {
	// URL is mqtt://host:1883, mqtts://host:8883 (TLS), ws:// or wss://; empty runs the
	// embedded broker instead.
	URL string `mapstructure:"url"`
	// Username and Password are this hub's credentials at the broker; the client ID is the
	// username. Every hub needs its own: the broker keeps a hub's share of the stream in the
	// session of that ID while the hub restarts.
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
	// CAFile verifies a TLS broker against these PEM certificates instead of the system's.
	CAFile string `mapstructure:"ca_file"`
	// ShareGroup names the shared subscription the hubs of one cluster split the stream in.
	ShareGroup string `mapstructure:"share_group"`
	// SessionExpiry is how long the broker keeps a disconnected hub's session and its share of
	// the stream: longer than a hub takes to restart.
	SessionExpiry time.Duration `mapstructure:"session_expiry"`
	// Inflight is how many shared messages the broker may send before the hub acknowledged
	// them (MQTT 5 receive maximum): the hub's batch into its spool.
	Inflight int `mapstructure:"inflight"`
}

// DefaultConfig is the configuration when nothing overrides it: the embedded broker.
func DefaultConfig() Config {
	return Config{ShareGroup: "lockerhub", SessionExpiry: time.Hour, Inflight: 256}
}

// Enabled reports whether the hub uses an external broker.
func (c Config) Enabled() bool { return c.URL != "" }

// Validate reports the first bad setting, naming its key.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("mqtt.external.url: %q is not a URL like mqtt://host:1883", c.URL)
	}
	switch u.Scheme {
	case "mqtt", "tcp", "mqtts", "tls", "ssl", "ws", "wss":
	default:
		return fmt.Errorf("mqtt.external.url: scheme %q: want mqtt, mqtts, ws or wss", u.Scheme)
	}
	switch {
	case c.Username == "":
		return errors.New("mqtt.external.username: must not be empty: each hub connects with its own identity")
	case strings.ContainsAny(c.ShareGroup, "/+#$") || c.ShareGroup == "":
		return fmt.Errorf("mqtt.external.share_group: %q: want a name without / + # $", c.ShareGroup)
	case c.SessionExpiry < time.Minute:
		return fmt.Errorf("mqtt.external.session_expiry: %s is below the minimum 1m", c.SessionExpiry)
	case c.Inflight < 1 || c.Inflight > 65535:
		return fmt.Errorf("mqtt.external.inflight: %d out of range 1..65535", c.Inflight)
	}
	return nil
}

// Ingester takes the device stream (telemetry.Pipeline).
type Ingester interface {
	// Store stores a telemetry snapshot or door event of this hub's share: its receipt's
	// Wait returns nil once it is durable.
	Store(ctx context.Context, id string, ch wire.Channel, msg wire.Message) (fleet.Receipt, error)
	// Apply keeps the live state from the whole stream, command results included.
	Apply(ctx context.Context, id string, ch wire.Channel, msg wire.Message) error
}

// Options carries the link's collaborators.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Ingester   Ingester // required
	// Events, optional, is told of the commands any hub of the cluster sends, as the broker
	// delivers them to the devices (fleet.EventCommandSeen), and of devices connecting and
	// disconnecting (fleet.EventPresenceChanged).
	Events fleet.EventPublisher
}

// Subscription identifiers of the two subscriptions.
const (
	subShared = 1
	subAll    = 2
)

// Pauses before trying again: storing a shared message after the spool refused it, and
// subscribing after the broker refused.
const (
	retryDelay     = time.Second
	subscribeRetry = 5 * time.Second
)

// reconnectBackoff is the wait before each attempt to reach the broker again, the first one
// immediate. Jittered because every hub of a cluster loses the broker at the same moment and
// would otherwise reconnect in step when it is back.
var reconnectBackoff = backoff.Policy{Min: 500 * time.Millisecond, Max: 5 * time.Second, Jitter: backoff.Full}

// Link is a hub's connection to the external broker.
type Link struct {
	cfg     Config
	log     *slog.Logger
	warn    *ratelog.Limiter
	ingest  Ingester
	events  fleet.EventPublisher
	metrics *metrics
	cm      *autopaho.ConnectionManager
	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc

	queue   chan job                       // this hub's share, handled and acknowledged in order
	answers chan func(ctx context.Context) // results from the whole stream, handled at once
	workers sync.WaitGroup                 // the goroutines draining queue and answers

	ready   atomic.Bool  // connected and subscribed
	conns   atomic.Int64 // connections made so far
	current atomic.Value // *paho.Client of the connection up now

	mu       sync.RWMutex
	presence map[string]fleet.Presence
	results  []func(topic string, payload []byte)
}

// job is a received message the handler goroutine finishes: it runs, then, for a shared
// message of the connection it came on, the message is acknowledged.
type job struct {
	run    func(ctx context.Context)
	ack    *paho.Publish // nil: nothing to acknowledge
	client *paho.Client
}

var _ fleet.PresenceService = (*Link)(nil)

// New returns a link that connects once Start is called.
func New(cfg Config, opts Options) (*Link, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts.Logger = logs.OrDiscard(opts.Logger)
	opts.Registerer = promreg.OrPrivate(opts.Registerer)
	l := &Link{cfg: cfg, log: opts.Logger, warn: ratelog.New(opts.Logger, 10*time.Second), ingest: opts.Ingester,
		events: opts.Events, queue: make(chan job, cfg.Inflight+64), answers: make(chan func(context.Context), 256), presence: make(map[string]fleet.Presence)}
	var err error
	if l.metrics, err = newMetrics(opts.Registerer, l.online); err != nil {
		return nil, fmt.Errorf("register external broker metrics: %w", err)
	}
	return l, nil
}

// Start connects to the broker and keeps reconnecting until Close. It returns once the first
// connection attempt is under way; Ready tells when the hub receives the stream.
func (l *Link) Start() error {
	u, err := url.Parse(l.cfg.URL)
	if err != nil {
		return err
	}
	var tlsCfg *tls.Config
	if l.cfg.CAFile != "" {
		pem, err := os.ReadFile(l.cfg.CAFile)
		if err != nil {
			return fmt.Errorf("mqtt.external.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("mqtt.external.ca_file: %s holds no PEM certificate", l.cfg.CAFile)
		}
		tlsCfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	inflight := uint16(l.cfg.Inflight)
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        tlsCfg,
		KeepAlive:                     20,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(l.cfg.SessionExpiry / time.Second),
		ReconnectBackoff:              reconnectBackoff.Delay,
		ConnectTimeout:                10 * time.Second,
		OnConnectionUp:                l.connectionUp,
		OnConnectionDown: func() bool {
			l.ready.Store(false)
			l.metrics.connected.Set(0)
			l.log.Warn("external mqtt broker connection lost; reconnecting", "url", l.cfg.URL)
			return true
		},
		OnConnectError: func(err error) {
			l.warn.Warn("connect", "external mqtt broker unreachable; retrying", "url", l.cfg.URL, "error", err)
		},
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			c.Properties.ReceiveMaximum = &inflight
			return c, nil
		},
		ClientConfig: paho.ClientConfig{
			ClientID:                   l.cfg.Username,
			EnableManualAcknowledgment: true,
			SendAcksInterval:           5 * time.Millisecond,
			OnPublishReceived:          []func(paho.PublishReceived) (bool, error){l.received},
			OnClientError:              func(err error) { l.log.Warn("external mqtt broker client error", "error", err) },
			OnServerDisconnect: func(d *paho.Disconnect) {
				reason := ""
				if d.Properties != nil {
					reason = d.Properties.ReasonString
				}
				l.log.Warn("external mqtt broker disconnected the hub", "code", d.ReasonCode, "reason", reason)
			},
		},
	}
	cfg.ConnectUsername = l.cfg.Username
	cfg.ConnectPassword = []byte(l.cfg.Password)
	if l.cm, err = autopaho.NewConnection(l.ctx, cfg); err != nil {
		l.cancel()
		return fmt.Errorf("mqtt.external: %w", err)
	}
	l.workers.Go(l.handle)
	l.workers.Go(l.handleResults)
	return nil
}

// connectionUp subscribes on every connection: a broker that lost the session (expired, or
// restarted without persistence) has lost the subscriptions with it.
func (l *Link) connectionUp(cm *autopaho.ConnectionManager, ack *paho.Connack) {
	l.metrics.connected.Set(1)
	conn := l.conns.Add(1)
	l.log.Info("connected to external mqtt broker", "url", l.cfg.URL, "session_present", ack.SessionPresent)
	go func() {
		// Retried while this connection lasts: a refusal (the hub user's ACL, say) may be fixed
		// at the broker without the hub reconnecting.
		for l.conns.Load() == conn {
			err := l.subscribe(cm)
			if err == nil {
				l.ready.Store(true)
				return
			}
			l.log.Error("subscribe at external mqtt broker failed; the hub receives nothing and is not ready; retrying", "error", err)
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(subscribeRetry):
			}
		}
	}()
}

func (l *Link) subscribe(cm *autopaho.ConnectionManager) error {
	ctx, cancel := context.WithTimeout(l.ctx, 30*time.Second)
	defer cancel()
	var shared, all []paho.SubscribeOptions
	for _, ch := range []wire.Channel{wire.ChannelTelemetry, wire.ChannelEvents, wire.ChannelResult} {
		shared = append(shared, paho.SubscribeOptions{Topic: "$share/" + l.cfg.ShareGroup + "/" + wire.Topic("+", ch), QoS: 1})
	}
	for _, ch := range []wire.Channel{wire.ChannelTelemetry, wire.ChannelEvents, wire.ChannelResult, wire.ChannelStatus, wire.ChannelCommand} {
		all = append(all, paho.SubscribeOptions{Topic: wire.Topic("+", ch), QoS: 0})
	}
	for _, s := range []struct {
		id   int
		opts []paho.SubscribeOptions
	}{{subAll, all}, {subShared, shared}} { // the whole stream first: live state before storing
		id := s.id
		ack, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: s.opts, Properties: &paho.SubscribeProperties{SubscriptionIdentifier: &id}})
		if err != nil {
			return err
		}
		for i, code := range ack.Reasons {
			if code >= 0x80 {
				return fmt.Errorf("broker refused the subscription to %s (reason code 0x%02x): check the hub user's ACL", s.opts[i].Topic, code)
			}
		}
	}
	return nil
}

// received runs on paho's single delivery goroutine: it must not block for long. Work that
// waits for a disk or a database goes to the handler goroutine through the queue, in order.
func (l *Link) received(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	l.current.Store(pr.Client)
	sub := 0
	if p.Properties != nil && p.Properties.SubscriptionIdentifier != nil {
		sub = *p.Properties.SubscriptionIdentifier
	}
	id, ch, ok := wire.ParseTopic(p.Topic)
	var ack *paho.Publish
	if p.QoS > 0 {
		ack = p
	}
	switch {
	case !ok:
		l.metrics.rejected.WithLabelValues("topic").Inc()
		l.enqueue(job{ack: ack, client: pr.Client})
	case sub == subShared:
		l.enqueue(job{run: l.shared(id, ch, p.Payload), ack: ack, client: pr.Client})
	default:
		l.live(id, ch, p.Payload)
		if ack != nil { // the broker sent a QoS 1 copy anyway: acknowledge it in its turn
			l.enqueue(job{ack: ack, client: pr.Client})
		}
	}
	return true, nil
}

func (l *Link) enqueue(j job) {
	select {
	case l.queue <- j:
	case <-l.ctx.Done():
	}
}

// decode decodes a device message, counting and logging one that breaks the contract.
func (l *Link) decode(id string, ch wire.Channel, payload []byte) (wire.Message, bool) {
	msg, err := wire.Decode(ch, payload)
	if err != nil {
		reason := string(wire.ReasonOf(err))
		l.metrics.rejected.WithLabelValues(reason).Inc()
		l.warn.Warn("decode-"+reason, "device message rejected", "device", id, "channel", ch, "error", err)
		return nil, false
	}
	return msg, true
}

// shared returns the work for this hub's share of the stream: storing it.
func (l *Link) shared(id string, ch wire.Channel, payload []byte) func(context.Context) {
	if ch == wire.ChannelCommand || ch == wire.ChannelStatus {
		return nil
	}
	msg, ok := l.decode(id, ch, payload)
	if !ok {
		return nil
	}
	l.metrics.received.WithLabelValues("shared", string(ch)).Inc()
	if ch == wire.ChannelResult {
		topic := wire.Topic(id, ch)
		return func(context.Context) {
			for _, fn := range l.resultHandlers() {
				fn(topic, payload)
			}
		}
	}
	// Queued into the spool now, so that the spool commits many messages together; waited
	// for in order on the handler goroutine. A refusal (the spool full for too long, the
	// registry unreadable) is retried: the broker sends nothing past the unacknowledged window,
	// which is the backpressure.
	receipt, err := l.ingest.Store(l.ctx, id, ch, msg)
	return func(ctx context.Context) {
		for {
			if err == nil {
				if err = receipt.Wait(ctx); err == nil {
					return
				}
			}
			l.warn.Warn("store", "telemetry not stored; retrying before acknowledging it", "device", id, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(retryDelay):
			}
			receipt, err = l.ingest.Store(ctx, id, ch, msg)
		}
	}
}

// live follows the whole stream: presence, live state and the commands hubs sent.
func (l *Link) live(id string, ch wire.Channel, payload []byte) {
	msg, ok := l.decode(id, ch, payload)
	if !ok {
		return
	}
	l.metrics.received.WithLabelValues("all", string(ch)).Inc()
	switch m := msg.(type) {
	case wire.Status:
		p := l.setPresence(id, m)
		if l.events != nil {
			l.events.Publish(fleet.Event{Kind: fleet.EventPresenceChanged, Presence: p})
		}
		return
	case wire.Command:
		if l.events != nil {
			l.events.Publish(fleet.Event{Kind: fleet.EventCommandSeen,
				Command: fleet.Command{ID: m.ID, DeviceID: id, Type: m.Type, Door: m.Door, Status: fleet.CommandCreated}})
		}
		return
	case wire.Result:
		// Not behind the share's queue, where it would wait for telemetry to be spooled: the
		// API call waiting for this result may be on this hub.
		l.seen(id)
		l.apply(id, ch, msg) // numbered with the unit's telemetry: not a lost message
		topic := wire.Topic(id, ch)
		select {
		case l.answers <- func(context.Context) {
			for _, fn := range l.resultHandlers() {
				fn(topic, payload)
			}
		}:
		case <-l.ctx.Done():
		}
		return
	}
	l.seen(id)
	l.apply(id, ch, msg)
}

func (l *Link) apply(id string, ch wire.Channel, msg wire.Message) {
	if err := l.ingest.Apply(l.ctx, id, ch, msg); err != nil {
		l.warn.Warn("apply", "live state not updated", "device", id, "error", err)
	}
}

// handle finishes queued messages in the order they came and acknowledges them.
func (l *Link) handle() {
	for {
		select {
		case <-l.ctx.Done():
			return
		case j := <-l.queue:
			if j.run != nil {
				j.run(l.ctx)
			}
			if l.ctx.Err() != nil {
				return // not stored: the broker sends it again to the next session
			}
			// A message of a connection that has gone is not acknowledged on the new one: its
			// packet identifier may name another message there. The broker resends it.
			if j.ack != nil && j.client == l.current.Load() {
				if err := j.client.Ack(j.ack); err != nil {
					l.log.Debug("acknowledge", "error", err)
				}
			}
		}
	}
}

// handleResults handles the results of the whole stream as they come.
func (l *Link) handleResults() {
	for {
		select {
		case <-l.ctx.Done():
			return
		case fn := <-l.answers:
			fn(l.ctx)
		}
	}
}

// setPresence takes a retained status document: devices publish it themselves on a plain
// broker (online after connecting, offline as their will). It returns the new presence.
func (l *Link) setPresence(id string, st wire.Status) fleet.Presence {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.presence[id]
	p.DeviceID, p.Online = id, st.Online
	since := time.UnixMilli(st.Since).UTC()
	if st.Since == 0 {
		since = time.UnixMilli(st.TS).UTC()
	}
	if st.Online {
		p.ConnectedSince, p.DisconnectedAt = since, time.Time{}
		p.LastSeen = time.Now().UTC()
	} else {
		p.DisconnectedAt = since
	}
	p.Remote = st.Remote
	l.presence[id] = p
	return p
}

// seen marks a device's message: the heartbeat of the device-offline rule.
func (l *Link) seen(id string) {
	now := time.Now().UTC()
	l.mu.Lock()
	if p, ok := l.presence[id]; ok {
		p.LastSeen = now
		l.presence[id] = p
	}
	l.mu.Unlock()
}

// Presence implements fleet.PresenceService from the devices' retained status documents.
func (l *Link) Presence(id string) (fleet.Presence, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	p, ok := l.presence[id]
	return p, ok
}

func (l *Link) online() float64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	n := 0
	for _, p := range l.presence {
		if p.Online {
			n++
		}
	}
	return float64(n)
}

// Subscribe takes the handler of device results (commands.Service.TakeResults): it runs for
// every result of the whole stream as it comes, and again for a result of this hub's share,
// in the share's order, which is acknowledged once it returned; so it must be idempotent. Only
// the results filter is supported.
func (l *Link) Subscribe(filter string, fn func(topic string, payload []byte)) error {
	if filter != wire.Topic("+", wire.ChannelResult) {
		return fmt.Errorf("external broker: only %s can be followed, not %s", wire.Topic("+", wire.ChannelResult), filter)
	}
	l.mu.Lock()
	l.results = append(l.results, fn)
	l.mu.Unlock()
	return nil
}

func (l *Link) resultHandlers() []func(string, []byte) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.results
}

// PublishRequest publishes a command at QoS 1 and returns once the broker has it. The MQTT 5
// request properties go along for devices that use them.
func (l *Link) PublishRequest(topic string, payload []byte, expiry time.Duration, responseTopic string, correlation []byte) error {
	if !l.ready.Load() {
		return errors.New("not connected to the external mqtt broker")
	}
	secs := uint32(max(expiry.Round(time.Second)/time.Second, 1))
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	_, err := l.cm.Publish(ctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload,
		Properties: &paho.PublishProperties{MessageExpiry: &secs, ResponseTopic: responseTopic, CorrelationData: correlation}})
	return err
}

// Ready returns nil while the hub is connected and subscribed: a load balancer sends it API
// calls, whose commands it can then publish.
func (l *Link) Ready(context.Context) error {
	if !l.ready.Load() {
		return fmt.Errorf("not connected to the external mqtt broker at %s", l.cfg.URL)
	}
	return nil
}

// Close disconnects. Messages received but not yet stored are not acknowledged: the broker
// keeps them in the hub's session for its next start.
func (l *Link) Close() error {
	if l.cm == nil {
		return nil
	}
	l.ready.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := l.cm.Disconnect(ctx)
	l.cancel()
	l.workers.Wait()
	if errors.Is(err, autopaho.ConnectionDownError) {
		err = nil
	}
	return err
}
