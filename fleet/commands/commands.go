// Package commands relays operators' commands to devices and records what becomes of them: it
// checks the request against the registry, records it, publishes it through the broker with an
// expiry, waits for the device's result, and marks the command expired when none comes in time,
// at which moment the device refuses it too (it checks the same expiry). A device that started
// the command in time may still report after the expiry (its sensors' verdict takes a while):
// that result replaces the expired status, since it says what the device did. The record is
// the chain of custody: who asked, why, when it was sent and what the device reported. It
// belongs to the registration of the device it was sent to (fleet.Device.Registration), so that
// a unit registered later under the same id never shows it (fleet.CommandFilter.Current).
package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/logs"
	"github.com/lockerhub/lockerhub/internal/promreg"
)

// Limits on requests. DefaultTimeout, a command's lifetime when the operator does not choose
// one, must leave an agent's unlock verdict time to arrive: the agent's default confirm window
// ends 3 s before it (TestCommandDefaultsAgree in cmd/lockerhub).
const (
	DefaultTimeout = 10 * time.Second
	maxReasonBytes = 500
	maxKeyBytes    = 128
)

// Publisher sends a request to a device through the broker (broker.Broker.PublishRequest).
type Publisher interface {
	PublishRequest(topic string, payload []byte, expiry time.Duration, responseTopic string, correlation []byte) error
}

// Subscriber delivers the messages matching a topic filter (broker.Broker.Subscribe).
type Subscriber interface {
	Subscribe(filter string, fn func(topic string, payload []byte)) error
}

// Request is an operator's command; the operator is the actor in the context it is sent with
// (fleet.NewContextWithActor).
type Request struct {
	DeviceID       string
	Type           wire.CommandType // unlock, lock or setpoint
	Door           int              // unlock, lock
	Target         string           // setpoint: heater (locker banks) or compressor (fridges)
	SetpointC      *float64         // setpoint
	Reason         string
	IdempotencyKey string
	Timeout        time.Duration // how long the device has to act; the command's expiry
}

// Limits caps how fast commands may be sent: per operator token (a leaked or runaway script)
// and per device (a door cannot usefully be unlocked many times a minute), as commands created
// in the last minute. Zero disables one.
type Limits struct {
	PerTokenPerMinute  int `mapstructure:"per_token_per_minute"`
	PerDevicePerMinute int `mapstructure:"per_device_per_minute"`
}

// Options carries the service's settings and collaborators.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Limits     Limits
	Audit      fleet.Auditor // where every command and its outcome are recorded; optional
	// Events, optional, is told of every command as it is created and completed (the alert
	// rules tell a remote unlock from a forced door by it, so it hears of a command before
	// the device can). It is told on the paths of API calls and device results.
	Events fleet.EventPublisher
}

// Service relays commands. Create it with New.
type Service struct {
	store    fleet.CommandStore
	devices  fleet.DeviceService
	presence fleet.PresenceService
	pub      Publisher
	log      *slog.Logger
	now      func() time.Time
	limits   Limits
	metrics  *metrics
	audit    fleet.Auditor
	events   fleet.EventPublisher

	mu      sync.Mutex
	pending map[string]*pending  // commands sent by this hub and not yet answered or expired
	told    map[string]time.Time // commands whose outcome has been published, for toldFor
}

// toldFor is how long a command's outcome is remembered as published, so that the
// same result arriving again (a duplicate, or through another hub of a cluster) is told once.
const toldFor = time.Hour

// overdueGrace is how long after its expiry a command still created or sent is left to the
// hub that sent it (whose own timer expires it) before any hub marks it expired.
const overdueGrace = 5 * time.Second

// pending is a command on its way: the result goes to done (for a Send waiting for it), and
// timer expires it if no result comes first.
type pending struct {
	done  chan *fleet.Command // buffered: receives the command with its result
	timer *time.Timer
}

// New returns a command service.
func New(store fleet.CommandStore, devices fleet.DeviceService, presence fleet.PresenceService, pub Publisher, opts Options) (*Service, error) {
	opts.Logger = logs.OrDiscard(opts.Logger)
	opts.Registerer = promreg.OrPrivate(opts.Registerer)
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register command metrics: %w", err)
	}
	return &Service{store: store, devices: devices, presence: presence, pub: pub, log: opts.Logger, now: time.Now,
		limits:  opts.Limits,
		metrics: m, audit: opts.Audit, events: opts.Events, pending: make(map[string]*pending), told: make(map[string]time.Time)}, nil
}

// Send records and sends a command on behalf of the actor in ctx. With wait it returns once the device answered, or with an
// ETIMEOUT error once the command expired; without, as soon as it is sent. Errors: EINVALID for
// a bad request, ENOTFOUND for an unknown device or door, ECONFLICT for a disabled or offline
// device. A request repeating an earlier idempotency key of the same actor returns that
// earlier command (waiting for it if asked) and sends nothing; EKEYREUSED if the earlier
// command was a different request (device, type, door, target, setpoint or reason).
func (s *Service) Send(ctx context.Context, req Request, wait bool) (*fleet.Command, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	actor, err := fleet.ActorRequired(ctx, "command "+string(req.Type))
	if err != nil {
		return nil, err
	}
	d, err := s.devices.FindDeviceByID(ctx, req.DeviceID)
	if err != nil {
		return nil, err
	}
	if req.Door > d.Doors {
		return nil, fleet.Errorf(fleet.ENOTFOUND, "door %d not found: device %s has %d doors", req.Door, d.ID, d.Doors)
	}
	if want := thermalActuator[d.Kind]; req.Type == wire.CommandSetpoint && req.Target != want {
		return nil, fleet.Errorf(fleet.EINVALID, "target %q: a %s has a %s", req.Target, d.Kind, want)
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	if err := s.limit(ctx, actor, req, now); err != nil {
		return nil, err
	}
	c := &fleet.Command{ID: newID(), DeviceID: d.ID, Registration: d.Registration, Type: req.Type, Door: req.Door, Target: req.Target,
		SetpointC: req.SetpointC, Reason: req.Reason, Actor: actor.ID, ActorName: actor.Name,
		IdempotencyKey: req.IdempotencyKey, Status: fleet.CommandCreated, CreatedAt: now, ExpiresAt: now.Add(req.Timeout)}
	earlier, err := s.store.CreateCommand(ctx, c)
	if err != nil {
		return nil, err
	}
	if earlier != nil {
		if !sameRequest(earlier, c) {
			// Answering with the earlier command would tell the client that what it asked for
			// now was done, when something else was.
			return nil, fleet.Errorf(fleet.EKEYREUSED, "idempotency key %q was used for another request (command %s: %s of device %s): use a new key",
				req.IdempotencyKey, earlier.ID, earlier.Type, earlier.DeviceID)
		}
		if wait {
			return s.await(ctx, earlier)
		}
		return earlier, nil
	}
	p, _ := s.presence.Presence(d.ID)
	switch {
	case !d.Enabled:
		return s.refuse(ctx, c, "device is disabled")
	case !p.Online:
		return s.refuse(ctx, c, "device is offline")
	}
	s.changed(c)
	pd := s.track(c.ID) // before publishing: the result may come back at once
	if err := s.publish(c); err != nil {
		s.untrack(c.ID)
		return s.refuse(ctx, c, "could not send: "+err.Error())
	}
	sent := s.now().UTC()
	c.Status, c.SentAt = fleet.CommandSent, &sent
	// Not applied if the device's result came first: the command is already complete.
	if _, err := s.store.UpdateCommand(ctx, c, fleet.CommandCreated); err != nil {
		return nil, err
	}
	s.record(ctx, c, sentActions[c.Type])
	s.log.Info("command sent", "command", c.ID, "device", c.DeviceID, "type", c.Type, "door", c.Door, "actor", c.Actor, "reason", c.Reason)
	s.mu.Lock()
	if s.pending[c.ID] == pd { // else the result is in already
		pd.timer = time.AfterFunc(time.Until(c.ExpiresAt), func() { s.expire(c.ID) })
	}
	s.mu.Unlock()
	if !wait {
		return c, nil
	}
	select {
	case done := <-pd.done:
		return outcome(done)
	case <-time.After(time.Until(c.ExpiresAt)):
		s.expire(c.ID)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.final(ctx, c.ID)
}

// sameRequest reports whether commands a and b ask for the same thing.
func sameRequest(a, b *fleet.Command) bool {
	return a.DeviceID == b.DeviceID && a.Type == b.Type && a.Door == b.Door && a.Target == b.Target && a.Reason == b.Reason &&
		(a.SetpointC == nil) == (b.SetpointC == nil) && (a.SetpointC == nil || *a.SetpointC == *b.SetpointC)
}

// track registers a command about to be sent.
func (s *Service) track(id string) *pending {
	pd := &pending{done: make(chan *fleet.Command, 1)}
	s.mu.Lock()
	s.pending[id] = pd
	s.mu.Unlock()
	return pd
}

// untrack forgets a command that was answered, expired or never sent, stopping its expiry
// timer, and returns what was tracked (nil if nothing).
func (s *Service) untrack(id string) *pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	pd := s.pending[id]
	if pd != nil && pd.timer != nil {
		pd.timer.Stop()
	}
	delete(s.pending, id)
	return pd
}

// limit applies the rate limits: at most so many commands created in the last minute, by the
// token and for the device. They are counted in the store, which every hub of a cluster
// shares, so they hold for the cluster (up to the commands two hubs create at the same
// moment) and across restarts.
func (s *Service) limit(ctx context.Context, actor fleet.Actor, req Request, now time.Time) error {
	for _, l := range []struct {
		scope, actor, device string
		perMinute            int
	}{{"token", actor.ID, "", s.limits.PerTokenPerMinute}, {"device", "", req.DeviceID, s.limits.PerDevicePerMinute}} {
		if l.perMinute <= 0 {
			continue
		}
		n, err := s.store.CountCommands(ctx, l.actor, l.device, now.Add(-time.Minute))
		if err != nil {
			return err
		}
		if n >= l.perMinute {
			s.metrics.limited.WithLabelValues(l.scope).Inc()
			return fleet.Errorf(fleet.ERATELIMITED, "too many commands for this %s: at most %d a minute", l.scope, l.perMinute)
		}
	}
	return nil
}

// await waits for an earlier command to finish.
func (s *Service) await(ctx context.Context, c *fleet.Command) (*fleet.Command, error) {
	for !c.Done() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(100*time.Millisecond, time.Until(c.ExpiresAt)+10*time.Millisecond)):
		}
		if s.now().After(c.ExpiresAt) {
			s.expire(c.ID)
		}
		var err error
		if c, err = s.store.FindCommandByID(ctx, c.ID); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// final returns the stored command, as an ETIMEOUT error if it expired.
func (s *Service) final(ctx context.Context, id string) (*fleet.Command, error) {
	c, err := s.store.FindCommandByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return outcome(c)
}

// outcome returns a completed command, as an ETIMEOUT error if it expired.
func outcome(c *fleet.Command) (*fleet.Command, error) {
	if c.Status == fleet.CommandExpired {
		return c, fleet.Errorf(fleet.ETIMEOUT, "device %s did not answer command %s before it expired at %s; it refuses the command "+
			"from then on, but if it had already started, its outcome is still recorded with the command",
			c.DeviceID, c.ID, c.ExpiresAt.Format(time.RFC3339Nano))
	}
	return c, nil
}

// refuse records a command that could not be sent as failed and returns an ECONFLICT error.
func (s *Service) refuse(ctx context.Context, c *fleet.Command, why string) (*fleet.Command, error) {
	done := s.now().UTC()
	c.Status, c.Detail, c.CompletedAt = fleet.CommandFailed, why, &done
	if _, err := s.store.UpdateCommand(ctx, c, fleet.CommandCreated); err != nil {
		return nil, err
	}
	s.metrics.observe(c)
	s.record(ctx, c, fleet.AuditCommandRefused)
	return c, fleet.Errorf(fleet.ECONFLICT, "%s: %s", c.DeviceID, why)
}

func (s *Service) publish(c *fleet.Command) error {
	payload, err := wire.Marshal(wire.Command{V: wire.Version, ID: c.ID, Type: c.Type, Door: c.Door,
		Target: c.Target, SetpointC: c.SetpointC, Issued: c.CreatedAt.UnixMilli(), Expires: c.ExpiresAt.UnixMilli()})
	if err != nil {
		return err
	}
	return s.pub.PublishRequest(wire.Topic(c.DeviceID, wire.ChannelCommand), payload, c.ExpiresAt.Sub(s.now()),
		wire.Topic(c.DeviceID, wire.ChannelResult), []byte(c.ID))
}

// expire marks a sent command expired if no result has arrived. The store decides a race with
// the result: whichever changes the stored status first wins, the other is not applied.
func (s *Service) expire(id string) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Hub)
	s.untrack(id)
	c, err := s.store.FindCommandByID(ctx, id)
	if err != nil || c.Done() {
		return
	}
	from, now := c.Status, s.now().UTC()
	c.Status, c.CompletedAt = fleet.CommandExpired, &now
	if ok, err := s.store.UpdateCommand(ctx, c, from); err != nil || !ok {
		if err != nil {
			s.log.Error("mark command expired", "command", id, "error", err)
		}
		return
	}
	s.metrics.observe(c)
	s.record(ctx, c, fleet.AuditCommandExpired)
	s.log.Warn("command expired without a result", "command", id, "device", c.DeviceID)
}

// sentActions are the audit trail's names for a command sent, by its type.
var sentActions = map[wire.CommandType]fleet.AuditAction{
	wire.CommandUnlock:   fleet.AuditCommandUnlock,
	wire.CommandLock:     fleet.AuditCommandLock,
	wire.CommandSetpoint: fleet.AuditCommandSetpoint,
}

// record appends a command event to the audit trail, by the actor in ctx: the operator for a
// command sent or refused, the hub for what the device or the clock decided. A failure to
// record is logged loudly but does not undo what already happened to the door.
func (s *Service) record(ctx context.Context, c *fleet.Command, action fleet.AuditAction) {
	if s.audit == nil {
		return
	}
	detail := map[string]any{"command": c.ID, "status": string(c.Status), "reason": c.Reason}
	for k, v := range map[string]any{"door": c.Door, "outcome": string(c.Outcome), "detail": c.Detail, "target": c.Target} {
		if v != 0 && v != "" {
			detail[k] = v
		}
	}
	if c.SetpointC != nil {
		detail["setpoint_c"] = *c.SetpointC
	}
	e, err := fleet.NewAuditEntry(ctx, action, c.DeviceID, detail)
	if err == nil {
		err = s.audit.Append(ctx, e)
	}
	if err != nil {
		s.log.Error("audit trail: command not recorded", "command", c.ID, "action", action, "error", err)
	}
}

// changed publishes c as it is now.
func (s *Service) changed(c *fleet.Command) {
	if s.events != nil {
		s.events.Publish(fleet.Event{Kind: fleet.EventCommandChanged, Command: *c})
	}
}

// List returns the commands matching f, newest first.
func (s *Service) List(ctx context.Context, f fleet.CommandFilter) ([]*fleet.Command, error) {
	if f.Limit < 0 || f.Limit > 1000 {
		return nil, fleet.Errorf(fleet.EINVALID, "limit %d: want 1..1000", f.Limit)
	}
	return s.store.FindCommands(ctx, f)
}

// Find returns a command by id.
func (s *Service) Find(ctx context.Context, id string) (*fleet.Command, error) {
	return s.store.FindCommandByID(ctx, id)
}

// TakeResults subscribes the service to every device's result channel through the broker.
func (s *Service) TakeResults(b Subscriber) error {
	return b.Subscribe(wire.Topic("+", wire.ChannelResult), func(topic string, payload []byte) {
		// The broker validated the payload already; decoding again only gives it a type.
		if id, _, ok := wire.ParseTopic(topic); ok {
			if r, err := wire.DecodeResult(payload); err == nil {
				s.HandleResult(id, r)
			}
		}
	})
}

// HandleResult records a device's result. A result for another device's command, or for an
// unknown command, is ignored and logged: a device cannot complete what was not sent to it.
// Results are handled concurrently, each command's transition decided by the store; a result
// that loses a race (with the expiry, or a duplicate) is decided again on what was stored.
func (s *Service) HandleResult(deviceID string, r wire.Result) {
	ctx := fleet.NewContextWithActor(context.Background(), fleet.Hub)
	for range 3 {
		c, err := s.store.FindCommandByID(ctx, r.ID)
		if err != nil || c.DeviceID != deviceID {
			s.log.Warn("result for no command of this device ignored", "device", deviceID, "command", r.ID)
			return
		}
		if c.Status == fleet.CommandSucceeded || c.Status == fleet.CommandFailed || c.Status == fleet.CommandExpired && c.Outcome != "" {
			// A repeated result (the device answers duplicates again), or one another hub of
			// the cluster stored first: a Send waiting here still learns the outcome.
			s.completed(c)
			return
		}
		from, now := c.Status, s.now().UTC()
		late := c.Status == fleet.CommandExpired
		c.Outcome, c.Detail, c.CompletedAt = r.Outcome, r.Detail, &now
		c.Status = fleet.CommandFailed
		switch r.Outcome {
		case wire.OutcomeOpened, wire.OutcomeAlreadyOpen, wire.OutcomeLocked, wire.OutcomeOK:
			c.Status = fleet.CommandSucceeded
		}
		if late {
			if r.Outcome == wire.OutcomeExpired {
				// The device refused it too: it stays expired, with the device's word beside it.
				c.Status = fleet.CommandExpired
				c.Detail = "result arrived after the command expired: " + c.Detail
			} else {
				// A device refuses a command that arrives expired, and checks again just before
				// it actuates a lock, so any other outcome means it started in time: the
				// command was carried out, and its outcome is what the device's sensors found,
				// however long they took to say so.
				s.log.Info("command result arrived after the command's expiry", "command", c.ID, "device", deviceID,
					"outcome", r.Outcome, "after", now.Sub(c.ExpiresAt))
			}
		}
		ok, err := s.store.UpdateCommand(ctx, c, from)
		if err != nil {
			s.log.Error("record command result", "command", c.ID, "error", err)
			return
		}
		if !ok {
			continue
		}
		if !late { // counted already, as expired
			s.metrics.observe(c)
		}
		s.record(ctx, c, fleet.AuditCommandResult)
		s.log.Info("command result", "command", c.ID, "device", deviceID, "outcome", r.Outcome, "latency", now.Sub(c.CreatedAt))
		s.completed(c)
		return
	}
	s.log.Error("command result not recorded: its status kept changing", "command", r.ID, "device", deviceID)
}

// completed publishes a command's outcome, once however often it is learnt, and
// hands it to the Send waiting for it, if any.
func (s *Service) completed(c *fleet.Command) {
	now := s.now()
	s.mu.Lock()
	_, told := s.told[c.ID]
	if !told {
		if len(s.told) >= 10000 {
			for id, at := range s.told {
				if now.Sub(at) > toldFor {
					delete(s.told, id)
				}
			}
		}
		s.told[c.ID] = now
	}
	s.mu.Unlock()
	if !told {
		s.changed(c)
	}
	if pd := s.untrack(c.ID); pd != nil {
		pd.done <- c
	}
}

// ExpireOverdue marks expired the commands still created or sent well after their expiry:
// those whose hub died before its timer could, in a cluster or across a restart. It looks at
// the newest 1000 commands in each status, far more than are ever in flight.
func (s *Service) ExpireOverdue(ctx context.Context) error {
	for _, st := range []fleet.CommandStatus{fleet.CommandCreated, fleet.CommandSent} {
		cs, err := s.store.FindCommands(ctx, fleet.CommandFilter{Status: st, Limit: 1000})
		if err != nil {
			return fmt.Errorf("find overdue commands: %w", err)
		}
		for _, c := range cs {
			if s.now().After(c.ExpiresAt.Add(overdueGrace)) {
				s.expire(c.ID)
			}
		}
	}
	return nil
}

// RunExpiry calls ExpireOverdue every interval until ctx is done.
func (s *Service) RunExpiry(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.ExpireOverdue(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("expire overdue commands", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// thermalActuator is what a setpoint command targets on each kind of unit.
var thermalActuator = map[fleet.Kind]string{fleet.KindLockerBank: "heater", fleet.KindFridge: "compressor"}

func (r Request) validate() error {
	door := r.Type == wire.CommandUnlock || r.Type == wire.CommandLock
	switch {
	case !door && r.Type != wire.CommandSetpoint:
		return fleet.Errorf(fleet.EINVALID, "command type %q: want unlock, lock or setpoint", r.Type)
	case door && r.Door < 1:
		return fleet.Errorf(fleet.EINVALID, "door %d: doors are numbered from 1", r.Door)
	case !door && (r.SetpointC == nil || *r.SetpointC < -40 || *r.SetpointC > 40):
		return fleet.Errorf(fleet.EINVALID, "setpoint_c: required, -40..40 °C")
	case r.Reason == "" || len(r.Reason) > maxReasonBytes || !utf8.ValidString(r.Reason):
		return fleet.Errorf(fleet.EINVALID, "reason: required, at most %d bytes of UTF-8", maxReasonBytes)
	case len(r.IdempotencyKey) > maxKeyBytes:
		return fleet.Errorf(fleet.EINVALID, "idempotency key: at most %d bytes", maxKeyBytes)
	case r.Timeout < time.Second || r.Timeout > wire.MaxCommandTTL:
		return fleet.Errorf(fleet.EINVALID, "timeout %s: want 1s..%s", r.Timeout, wire.MaxCommandTTL)
	}
	return nil
}

// newID returns a random command id: 16 bytes in hex, safe for the wire contract.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
