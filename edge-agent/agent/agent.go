// Package agent is the edge agent of one locker bank or refrigerated unit: it keeps the unit
// safe on its own (the thermostat runs whether or not the hub is reachable), reports door
// changes at once and a full snapshot every interval through a durable outbox, and executes the
// hub's commands exactly as the wire contract asks: never late, never twice.
//
// The agent talks to the hardware only through hardware.Device and to the hub only through
// paho and the wire contract; it links no broker, database or InfluxDB code.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/lockerhub/lockerhub/edge-agent/hardware"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/backoff"
	"github.com/lockerhub/lockerhub/internal/logs"
	"github.com/lockerhub/lockerhub/internal/privdir"
)

// Timing of the agent's own loops. Doors are polled rather than interrupt-driven so that any
// driver works; 100 ms is well below how fast a person opens a door.
const (
	doorPollInterval = 100 * time.Millisecond
	// While an unlock waits for its door, the sensor is read far more often: it is brief, and
	// the operator is waiting for the answer.
	confirmPollInterval = 10 * time.Millisecond
	publishTimeout      = 30 * time.Second
	sendWindow          = 32 // publishes in flight at once
	minReconnect        = time.Second
)

// Options carries the agent's collaborators.
type Options struct {
	Logger  *slog.Logger // defaults to discarding
	Version string       // reported in the online status
}

// Agent runs one unit. Create it with New, run it with Run.
type Agent struct {
	cfg     Config
	hw      hardware.Device
	log     *slog.Logger
	version string
	client  paho.Client
	outbox  *Outbox
	state   *state
	codes   *codeStore
	now     func() time.Time // the device clock that code expiry and keypad lockouts go by

	mu     sync.Mutex // orders sequence numbers with outbox entries
	seq    uint64
	lastTS int64 // edge timestamps strictly increase, so two events never share a point in time

	online    atomic.Bool
	connMu    sync.Mutex
	connGone  chan struct{} // closed when the current connection ends; nil while disconnected
	wake      chan struct{} // the sender re-checks the connection
	lost      chan struct{} // the session loop reconnects
	netDown   atomic.Bool
	netChange chan struct{}
	// telemetryPaused stops the periodic snapshots (a simulated fault: a unit whose sensor bus
	// hangs keeps its connection and its door events but reports no telemetry).
	telemetryPaused atomic.Bool
	commands        chan inbound
	snapshots       chan chan struct{}

	unlockMu     sync.Mutex
	remoteUnlock map[int]time.Time  // door -> until when an opening counts as the remote unlock's
	codeUnlocks  map[int]codeUnlock // door -> the pickup code that released it

	wg sync.WaitGroup
}

// New prepares an agent for the unit behind hw: it opens the outbox and the state in
// cfg.DataDir and configures the MQTT client. It does not connect until Run.
func New(cfg Config, hw hardware.Device, opts Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	secret, err := cfg.secret()
	if err != nil {
		return nil, err
	}
	opts.Logger = logs.OrDiscard(opts.Logger)
	if err := privdir.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	a := &Agent{
		cfg:          cfg,
		hw:           hw,
		log:          opts.Logger.With("device", cfg.DeviceID),
		version:      opts.Version,
		wake:         make(chan struct{}, 1),
		lost:         make(chan struct{}, 1),
		netChange:    make(chan struct{}, 1),
		now:          time.Now,
		commands:     make(chan inbound, 64),
		snapshots:    make(chan chan struct{}),
		remoteUnlock: make(map[int]time.Time),
		codeUnlocks:  make(map[int]codeUnlock),
	}
	if a.state, err = openState(cfg.DataDir); err != nil {
		return nil, err
	}
	if a.codes, err = openCodes(cfg.DataDir); err != nil {
		return nil, err
	}
	if a.outbox, err = OpenOutbox(cfg.DataDir+"/outbox", OutboxOptions{MaxBytes: cfg.Outbox.MaxBytes, Fsync: cfg.Outbox.Fsync}); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	a.seq = a.outbox.LastSeq()
	if a.client, err = a.newClient(secret); err != nil {
		a.outbox.Close()
		return nil, err
	}
	return a, nil
}

func (a *Agent) newClient(secret string) (paho.Client, error) {
	id := a.cfg.DeviceID
	o := paho.NewClientOptions().
		SetClientID(id).SetUsername(id).SetPassword(secret).
		// A persistent session lets the hub queue commands while the unit is offline; the agent
		// refuses those that expired meanwhile.
		SetCleanSession(false).
		// The outbox is the one place messages wait and are resent; paho's store would resend a
		// second copy of whatever was in flight when a connection dropped.
		SetStore(nullStore{}).
		SetAutoReconnect(false).SetConnectRetry(false). // Run reconnects, with jitter
		SetKeepAlive(a.cfg.KeepAlive).SetPingTimeout(20 * time.Second).
		SetConnectTimeout(30 * time.Second).SetWriteTimeout(publishTimeout).
		SetProtocolVersion(4).
		SetOnConnectHandler(a.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			a.connectionEnded()
			a.log.Warn("connection to hub lost", "error", err)
			signal(a.lost)
		})
	offline, err := wire.Marshal(wire.Status{V: wire.Version, TS: time.Now().UnixMilli(), Online: false, Agent: a.version})
	if err != nil {
		return nil, err
	}
	o.SetBinaryWill(wire.Topic(id, wire.ChannelStatus), offline, 1, true)
	for _, h := range a.cfg.Hubs {
		o.AddBroker(h)
	}
	if a.cfg.CAFile != "" {
		pem, err := os.ReadFile(a.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: %s holds no PEM certificate", a.cfg.CAFile)
		}
		o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	return paho.NewClient(o), nil
}

// onConnect runs in its own goroutine after every successful connect.
func (a *Agent) onConnect(c paho.Client) {
	tok := c.Subscribe(wire.CommandFilter(a.cfg.DeviceID), 1, func(_ paho.Client, m paho.Message) {
		id, ch, ok := wire.ParseTopic(m.Topic())
		if !ok || id != a.cfg.DeviceID {
			a.log.Warn("message on an unexpected topic dropped", "topic", m.Topic())
			return
		}
		// Never block paho's delivery goroutine on command work; the command loop drains this.
		a.commands <- inbound{ch: ch, payload: m.Payload()}
	})
	if tok.WaitTimeout(publishTimeout) && tok.Error() == nil {
		now := time.Now().UnixMilli()
		if st, err := wire.Marshal(wire.Status{V: wire.Version, TS: now, Online: true, Since: now, Agent: a.version}); err == nil {
			c.Publish(wire.Topic(a.cfg.DeviceID, wire.ChannelStatus), 1, true, st)
		}
	} else {
		a.log.Error("subscribe to commands", "error", tok.Error())
	}
	a.connMu.Lock()
	a.connGone = make(chan struct{})
	a.connMu.Unlock()
	a.online.Store(true)
	a.log.Info("connected to hub")
	signal(a.wake)
}

// connectionEnded marks the agent offline and releases whoever waits on the connection.
func (a *Agent) connectionEnded() {
	a.online.Store(false)
	a.connMu.Lock()
	defer a.connMu.Unlock()
	if a.connGone != nil {
		close(a.connGone)
		a.connGone = nil
	}
}

// connection returns a channel closed when the current connection ends, or nil if there is none.
func (a *Agent) connection() <-chan struct{} {
	a.connMu.Lock()
	defer a.connMu.Unlock()
	return a.connGone
}

// Run runs the agent until ctx is done, then says goodbye to the hub and closes the outbox.
func (a *Agent) Run(ctx context.Context) error {
	loops := []func(context.Context){a.session, a.sender, a.control, a.commandLoop}
	if kp, ok := a.hw.(hardware.Keypad); ok {
		loops = append(loops, func(ctx context.Context) { a.keypadLoop(ctx, kp) })
	}
	for _, loop := range loops {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			loop(ctx)
		}()
	}
	<-ctx.Done()
	a.wg.Wait()
	if a.client.IsConnected() {
		if st, err := wire.Marshal(wire.Status{V: wire.Version, TS: time.Now().UnixMilli(), Online: false, Agent: a.version}); err == nil {
			a.client.Publish(wire.Topic(a.cfg.DeviceID, wire.ChannelStatus), 1, true, st).WaitTimeout(time.Second)
		}
		a.client.Disconnect(250)
	}
	return a.outbox.Close()
}

// SetNetwork simulates the loss (false) and return (true) of the unit's network: while it is
// down the agent stays disconnected and its outbox fills, as on a real unit in a dead zone.
func (a *Agent) SetNetwork(up bool) {
	a.netDown.Store(!up)
	signal(a.netChange)
}

// NetworkUp reports whether the unit's network is up, that is not taken down by SetNetwork.
func (a *Agent) NetworkUp() bool { return !a.netDown.Load() }

// SetTelemetry pauses (false) or resumes (true) the periodic telemetry snapshots, to simulate a
// unit that stays connected but stops reporting its readings. Door events, command results and
// the snapshots a command asks for go on.
func (a *Agent) SetTelemetry(on bool) { a.telemetryPaused.Store(!on) }

// TelemetryOn reports whether periodic snapshots are being sent (see SetTelemetry).
func (a *Agent) TelemetryOn() bool { return !a.telemetryPaused.Load() }

// Online reports whether the agent is connected to the hub.
func (a *Agent) Online() bool { return a.online.Load() }

// CodesVersion returns the version of the pickup code set the unit holds, 0 for none.
func (a *Agent) CodesVersion() uint64 { return a.codes.Version() }

// Pending returns how many messages wait in the outbox for the hub's acknowledgement.
func (a *Agent) Pending() int { return a.outbox.Len() }

// session keeps the MQTT connection up, reconnecting with exponential backoff and full jitter
// so that a fleet that lost its hub does not reconnect in lockstep when it returns.
func (a *Agent) session(ctx context.Context) {
	reconnect := backoff.Policy{Min: minReconnect, Max: a.cfg.ReconnectMax, Jitter: backoff.Full}
	failures := 0
	for ctx.Err() == nil {
		if a.netDown.Load() {
			if !wait(ctx, a.netChange) {
				return
			}
			continue
		}
		tok := a.client.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return // paho gives up on its own at the connect timeout; Run disconnects
		}
		if err := tok.Error(); err != nil {
			failures++
			delay := reconnect.Delay(failures)
			a.log.Warn("connect to hub failed", "error", err, "retry_in", delay.Round(time.Millisecond))
			if !sleep(ctx, delay) {
				return
			}
			continue
		}
		failures = 0
		select {
		case <-ctx.Done():
			return
		case <-a.lost:
		case <-a.netChange:
			if a.netDown.Load() {
				a.connectionEnded() // paho reports no loss for a disconnect it was asked for
				a.client.Disconnect(0)
				a.log.Warn("network down (simulated)")
			}
		}
	}
}

// sender publishes the outbox in order, up to sendWindow at a time, and deletes each entry once
// the hub has acknowledged it. Anything not acknowledged is sent again after a reconnect.
func (a *Agent) sender(ctx context.Context) {
	for ctx.Err() == nil {
		conn := a.connection()
		if conn == nil {
			if !wait(ctx, a.wake) {
				return
			}
			continue
		}
		entries := a.outbox.Pending(sendWindow)
		if len(entries) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-a.outbox.Notify():
			case <-a.wake:
			case <-conn:
			}
			continue
		}
		toks := make([]paho.Token, len(entries))
		for i, e := range entries {
			toks[i] = a.client.Publish(e.Topic, 1, false, e.Payload)
		}
		for i, tok := range toks {
			if err := awaitAck(ctx, tok, conn); err != nil {
				a.log.Warn("publish not acknowledged; will resend", "topic", entries[i].Topic, "error", err)
				sleep(ctx, minReconnect)
				break
			}
			if err := a.outbox.Ack(entries[i].ID); err != nil {
				// The entry stays pending; resending it at once would only spin on a full disk.
				a.log.Error("outbox ack", "error", err)
				sleep(ctx, minReconnect)
				break
			}
		}
	}
}

// awaitAck waits for the hub's PUBACK of tok. It gives up when the connection ends: without a
// paho store nothing will complete the token after a reconnect, and the outbox resends anyway.
func awaitAck(ctx context.Context, tok paho.Token, conn <-chan struct{}) error {
	t := time.NewTimer(publishTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-conn:
		return errors.New("connection lost")
	case <-t.C:
		return errors.New("no acknowledgement within " + publishTimeout.String())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// emit numbers a message, encodes it and puts it in the outbox. Sequence numbers and outbox
// order are assigned under one lock, so they agree.
func (a *Agent) emit(lane Lane, ch wire.Channel, build func(seq uint64, ts int64) wire.Message) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	seq, ts := a.seq+1, max(time.Now().UnixMilli(), a.lastTS+1)
	payload, err := wire.Marshal(build(seq, ts))
	if err != nil {
		return fmt.Errorf("encode %s: %w", ch, err)
	}
	if _, err := a.outbox.Put(lane, seq, wire.Topic(a.cfg.DeviceID, ch), payload); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	a.seq, a.lastTS = seq, ts
	return nil
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// wait blocks until ch fires (true) or ctx is done (false).
func wait(ctx context.Context, ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// sleep waits for d unless ctx is done first; it reports whether the full time passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
