package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/logs"
	"github.com/lockerhub/lockerhub/internal/promreg"
	"github.com/lockerhub/lockerhub/internal/ratelog"
	"github.com/lockerhub/lockerhub/telemetry/influx"
	"github.com/lockerhub/lockerhub/telemetry/spool"
)

// Plausible edge timestamps: a unit whose clock says 1970 or next week would write points where
// no query finds them; such readings are refused and counted instead.
var (
	earliestTS = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	maxSkew    = 24 * time.Hour
)

// DeviceDirectory finds registered devices. The pipeline caches what it finds until
// InvalidateDevices.
type DeviceDirectory interface {
	FindDeviceByID(ctx context.Context, id string) (*fleet.Device, error)
	FindDevices(ctx context.Context, f fleet.DeviceFilter) ([]*fleet.Device, error)
}

// Options carries the pipeline's collaborators.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Events, optional, is told of every message applied (see Apply): telemetry snapshots, door
	// events and keypad events in the order they were stored, and command results as the hub delivered
	// them (not stored here, but numbered with the rest of the unit's stream), with how many
	// sequence numbers the message showed to be lost. For an ingested message it is told
	// before the message is acknowledged, on the goroutine that waits for the device's
	// messages to be stored.
	Events fleet.EventPublisher
	// HoleTimeout is how long a hole in a unit's sequence may stay open (its messages may
	// still arrive out of order) before they count as lost; DefaultHoleTimeout when 0.
	HoleTimeout time.Duration
	// DoorKeyframeInterval is how often, in edge time, a unit's snapshot stores every door's
	// state; in between, a snapshot stores only the doors that changed (docs/telemetry.md).
	// 0 stores every door of every snapshot. A hub that stores only a share of each unit's
	// stream (a cluster's) must use 0: it cannot know what the other hubs stored.
	DoorKeyframeInterval time.Duration
}

// Pipeline validates device messages, stores them durably in the spool and keeps the live state
// of every device.
type Pipeline struct {
	spool   *spool.Spool
	devices DeviceDirectory
	log     *slog.Logger
	warn    *ratelog.Limiter // for what a misbehaving unit can repeat at will
	metrics *metrics
	now     func() time.Time
	events  fleet.EventPublisher
	holeTO  time.Duration
	doors   *doorWrites

	cache sync.Map // device id → *fleet.Device, until InvalidateDevices

	mu   sync.RWMutex // guards the map; each device's state has its own lock
	live map[string]*liveDevice
}

// liveDevice is a device's live state plus what the pipeline needs to keep it. Every message
// of every device passes here, from as many goroutines as there are connections sending:
// one lock for all of them made them queue behind each other under load.
//
// It is the state of one registration of the id (fleet.Device.Registration): a unit registered
// again under the id starts with an empty state and sequence, never with the earlier unit's.
type liveDevice struct {
	registration string    // never changes
	registered   time.Time // the registration's CreatedAt; never changes
	mu           sync.Mutex
	fleet.LiveState
	// snapshot and event hold what LiveState's Snapshot and LastEvent point to, so that
	// keeping the latest message allocates nothing; LiveState hands out copies.
	snapshot wire.Telemetry
	event    wire.Event
	doorTS   map[int]int64 // edge time each door's state is from
	seq      seqTracker
}

var _ fleet.LiveStateService = (*Pipeline)(nil)

var _ fleet.Receipt = (*receipt)(nil)

// NewPipeline returns a pipeline storing into sp and checking devices against devices.
func NewPipeline(sp *spool.Spool, devices DeviceDirectory, opts Options) (*Pipeline, error) {
	opts.Logger = logs.OrDiscard(opts.Logger)
	opts.Registerer = promreg.OrPrivate(opts.Registerer)
	p := &Pipeline{spool: sp, devices: devices, log: opts.Logger, warn: ratelog.New(opts.Logger, 10*time.Second), now: time.Now,
		events: opts.Events, holeTO: cmp.Or(opts.HoleTimeout, DefaultHoleTimeout), live: make(map[string]*liveDevice)}
	p.doors = newDoorWrites(opts.DoorKeyframeInterval)
	var err error
	p.metrics, err = newMetrics(opts.Registerer,
		func() float64 { return float64(sp.Stats().Records) },
		func() float64 { return float64(sp.Stats().Bytes) })
	if err != nil {
		return nil, fmt.Errorf("register telemetry metrics: %w", err)
	}
	return p, nil
}

// errInvalid marks a message that contradicts the registry or is implausible.
type errInvalid struct{ reason, detail string }

func (e errInvalid) Error() string { return e.reason + ": " + e.detail }

// Ingest stores a telemetry snapshot or door event from device id, as Store does, and once it
// is durable applies it, as Apply does: the live state and the hub's events see only stored
// messages, in each device's order, before the device's acknowledgement. The embedded broker
// ingests the telemetry and events it receives. A command result is not stored (it only counts
// in the unit's sequence) and is applied at once.
func (p *Pipeline) Ingest(ctx context.Context, id string, ch wire.Channel, msg wire.Message) (fleet.Receipt, error) {
	return p.store(ctx, id, ch, msg, true)
}

// Store checks a decoded telemetry snapshot or door event from device id and hands it to the
// spool without waiting for the disk. Its receipt's Wait returns nil once the message is
// durable, or the error that kept it from the spool; the caller must not acknowledge the
// message before, and must wait for one device's receipts in the order of its messages. A
// message refused as invalid (counted and logged: resending it would not help) and messages
// of other channels get a receipt that is done at once. Store itself fails only when the
// registry cannot be read or the spool refuses the message at once (closed, or too large).
//
// A hub of a cluster stores the share of the device stream the external broker gives it, and
// applies the whole stream.
func (p *Pipeline) Store(ctx context.Context, id string, ch wire.Channel, msg wire.Message) (fleet.Receipt, error) {
	return p.store(ctx, id, ch, msg, false)
}

// Apply checks a message like Store and, without storing it, updates the live state and
// publishes it. It takes command results too, which share the unit's sequence counter with
// its telemetry: each would otherwise leave a hole that counts as lost. It fails only when the
// registry cannot be read.
func (p *Pipeline) Apply(ctx context.Context, id string, ch wire.Channel, msg wire.Message) error {
	d, err := p.accept(ctx, id, ch, msg)
	if d == nil {
		return err
	}
	p.apply(d, msg)
	return nil
}

// store is Store, and Ingest when apply is set.
func (p *Pipeline) store(ctx context.Context, id string, ch wire.Channel, msg wire.Message, apply bool) (fleet.Receipt, error) {
	d, err := p.accept(ctx, id, ch, msg)
	if d == nil {
		return done{}, err
	}
	var lines []byte
	var points int
	var stored prometheus.Counter
	switch m := msg.(type) {
	case wire.Telemetry:
		lines, points = influx.TelemetryLines(d, m, p.doors.snapshot(d, m))
		stored = p.metrics.storedTelemetry
	case wire.Event:
		if m.Kind == wire.EventDoor { // a keypad event says nothing of the door's state
			p.doors.event(d, m)
		}
		lines, points = influx.EventLines(d, m)
		stored = p.metrics.storedEvents
	default:
		// A result is stored by the commands service; here it only counts in the sequence.
		if apply {
			p.apply(d, msg)
		}
		return done{}, nil
	}
	pending, err := p.spool.Enqueue(lines)
	if err != nil {
		p.doors.forget(d.ID)
		p.metrics.refused.Inc()
		return done{}, fmt.Errorf("spool: %w", err)
	}
	return &receipt{p: p, d: d, stored: stored, msg: msg, points: points, pending: pending, apply: apply}, nil
}

// accept returns the registered device of a telemetry snapshot, door event or command result
// that fits it. It
// returns a nil device for anything else: with a nil error for a message of another channel or
// one refused as invalid (counted and logged), with an error when the registry cannot be read.
func (p *Pipeline) accept(ctx context.Context, id string, ch wire.Channel, msg wire.Message) (*fleet.Device, error) {
	var door int // the highest door the message names
	var ts int64
	switch m := msg.(type) {
	case wire.Telemetry:
		ts = m.TS
		for _, d := range m.Doors {
			door = max(door, d.Door)
		}
	case wire.Event:
		ts, door = m.TS, m.Door
	case wire.Result:
		ts = m.TS
	default:
		return nil, nil
	}
	d, err := p.device(ctx, id)
	if err != nil {
		return nil, p.invalid(id, ch, err)
	}
	if !d.Enabled {
		// The embedded broker refuses a disabled device's connection; an external one lets it
		// in until its files are exported again.
		return nil, p.invalid(id, ch, errInvalid{"disabled_device", "the device is disabled in the registry"})
	}
	if door > d.Doors {
		return nil, p.invalid(id, ch, errInvalid{"unknown_door", fmt.Sprintf("door %d on a unit with %d doors", door, d.Doors)})
	}
	if t := time.UnixMilli(ts); t.Before(earliestTS) || t.After(p.now().Add(maxSkew)) {
		return nil, p.invalid(id, ch, errInvalid{"timestamp", fmt.Sprintf("edge time %s is implausible; check the unit's clock", t.UTC().Format(time.RFC3339))})
	}
	return d, nil
}

// done is the receipt of a message that needs no storing.
type done struct{}

func (done) Wait(context.Context) error { return nil }

// Settled reports that Wait returns at once.
func (done) Settled() bool { return true }

// receipt is a message on its way into the spool.
type receipt struct {
	p       *Pipeline
	d       *fleet.Device // as accepted: a registration that ends meanwhile keeps its message
	stored  prometheus.Counter
	msg     wire.Message
	points  int
	pending spool.Pending
	apply   bool // apply the message once stored (Ingest)
}

// Settled reports whether the spool is done with the message, so that Wait would not block:
// the broker acknowledges the messages of one spool commit together.
func (r *receipt) Settled() bool { return r.pending.Settled() }

// Wait waits for the spool, then counts the message and, for Ingest, applies it.
func (r *receipt) Wait(ctx context.Context) error {
	p := r.p
	if _, err := r.pending.Wait(ctx); err != nil {
		p.doors.forget(r.d.ID)
		p.metrics.refused.Inc()
		return fmt.Errorf("spool: %w", err)
	}
	r.stored.Inc()
	p.metrics.pointsIn.Add(float64(r.points))
	if r.apply {
		p.apply(r.d, r.msg)
	}
	return nil
}

// apply updates the live state of d's registration with a message and publishes it.
func (p *Pipeline) apply(d *fleet.Device, msg wire.Message) {
	lost := p.track(d, msg)
	if p.events == nil {
		return
	}
	ev := fleet.Event{Device: d, Message: msg, Lost: lost}
	switch m := msg.(type) {
	case wire.Telemetry:
		ev.Kind = fleet.EventTelemetryStored
	case wire.Event:
		ev.Kind = fleet.EventDoorChanged
		if m.Kind == wire.EventKeypad {
			ev.Kind = fleet.EventKeypadEntered
		}
	case wire.Result:
		ev.Kind = fleet.EventResultReceived
	}
	p.events.Publish(ev)
}

// invalid counts and logs a refused message and returns nil: it is acknowledged and dropped.
func (p *Pipeline) invalid(id string, ch wire.Channel, err error) error {
	var inv errInvalid
	switch {
	case errors.As(err, &inv):
	case fleet.ErrorCode(err) == fleet.ENOTFOUND:
		inv = errInvalid{"unknown_device", err.Error()}
	default:
		return fmt.Errorf("look up device %s: %w", id, err) // the registry failed: try again later
	}
	p.metrics.invalid.WithLabelValues(inv.reason).Inc()
	p.warn.Warn(inv.reason, "telemetry refused", "device", id, "channel", ch, "reason", inv.reason, "error", inv.detail)
	return nil
}

func (p *Pipeline) device(ctx context.Context, id string) (*fleet.Device, error) {
	if d, ok := p.cache.Load(id); ok {
		return d.(*fleet.Device), nil
	}
	d, err := p.devices.FindDeviceByID(ctx, id)
	if err != nil {
		return nil, err
	}
	p.cache.Store(id, d)
	return d, nil
}

// InvalidateDevices reads the whole registry once into the pipeline's cache, and forgets the
// live state and stored door states of devices no longer registered under the registration
// they were kept for (removed, or removed and registered again), so that a new registration
// starts empty and its first snapshot stores every door. Call it when the hub starts, so that
// the first messages of a fleet that connects at once do not each query the registry, and
// whenever the registry changes. It fails when the registry cannot be read, and then forgets
// only the cache.
func (p *Pipeline) InvalidateDevices(ctx context.Context) error {
	p.cache.Clear()
	devices, err := p.devices.FindDevices(ctx, fleet.DeviceFilter{})
	if err != nil {
		return fmt.Errorf("telemetry: list devices: %w", err)
	}
	current := make(map[string]string, len(devices))
	for _, d := range devices {
		current[d.ID] = d.Registration
		p.cache.Store(d.ID, d)
	}
	p.doors.keep(current)
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, s := range p.live {
		if reg, ok := current[id]; !ok || reg != s.registration {
			delete(p.live, id)
		}
	}
	return nil
}

// track updates the live state and the sequence accounting of d's registration with a message,
// and returns how many sequence numbers it showed to be lost.
func (p *Pipeline) track(d *fleet.Device, msg wire.Message) uint64 {
	s := p.liveDevice(d)
	if s == nil {
		return 0 // from an earlier registration, looked up before the registry changed
	}
	s.mu.Lock()
	var seq uint64
	var ts int64
	switch m := msg.(type) {
	case wire.Telemetry:
		seq, ts = m.Seq, m.TS
		if s.Snapshot == nil || m.TS >= s.Snapshot.TS {
			s.snapshot = m
			s.Snapshot = &s.snapshot
		}
		for _, d := range m.Doors {
			s.setDoor(d, m.TS)
		}
	case wire.Event:
		seq, ts = m.Seq, m.TS
		if m.Kind == wire.EventKeypad {
			break // numbered with the rest, but no door's state: the live door view keeps its own
		}
		if s.LastEvent == nil || m.TS >= s.LastEvent.TS {
			s.event = m
			s.LastEvent = &s.event
		}
		s.setDoor(wire.DoorState{Door: m.Door, Open: m.Open, Locked: m.Locked}, m.TS)
	case wire.Result:
		seq, ts = m.Seq, m.TS
	}
	if t := time.UnixMilli(ts).UTC(); t.After(s.UpdatedAt) {
		s.UpdatedAt = t
	}
	dup, lost := s.seq.record(seq, p.now(), p.holeTO)
	if dup {
		s.Duplicates++
	}
	s.Gaps += lost
	s.mu.Unlock()
	if dup {
		p.metrics.duplicates.Inc()
	}
	if lost > 0 {
		p.metrics.gaps.Add(float64(lost))
		p.warn.Warn("gap", "telemetry sequence gap", "device", d.ID, "lost", lost)
	}
	return lost
}

// liveDevice returns the live state of d's registration, made on its first message in place of
// an earlier registration's. It returns nil for a message of a registration older than the one
// whose state is kept: one that was on its way through the pipeline when the id was registered
// again.
func (p *Pipeline) liveDevice(d *fleet.Device) *liveDevice {
	p.mu.RLock()
	s := p.live[d.ID]
	p.mu.RUnlock()
	if s != nil && s.registration == d.Registration {
		return s
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s = p.live[d.ID]; {
	case s != nil && s.registration == d.Registration:
	case s != nil && s.registered.After(d.CreatedAt):
		return nil
	default:
		s = &liveDevice{registration: d.Registration, registered: d.CreatedAt, doorTS: make(map[int]int64)}
		p.live[d.ID] = s
	}
	return s
}

// setDoor keeps the newest known state of a door; a replayed old message does not overwrite it.
func (s *liveDevice) setDoor(d wire.DoorState, ts int64) {
	if ts < s.doorTS[d.Door] {
		return
	}
	s.doorTS[d.Door] = ts
	d.TempC = nil // temperatures live in the snapshot
	for i := range s.Doors {
		if s.Doors[i].Door == d.Door {
			s.Doors[i] = d
			return
		}
	}
	s.Doors = append(s.Doors, d)
}

// LiveState returns a copy of the live state of d's registration.
func (p *Pipeline) LiveState(d *fleet.Device) (fleet.LiveState, bool) {
	p.mu.RLock()
	s := p.live[d.ID]
	p.mu.RUnlock()
	if s == nil || s.registration != d.Registration {
		return fleet.LiveState{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.LiveState
	c.Doors = append([]wire.DoorState(nil), s.Doors...)
	if c.Snapshot != nil {
		snap := *c.Snapshot // its Doors are the message's, never changed once decoded
		c.Snapshot = &snap
	}
	if c.LastEvent != nil {
		ev := *c.LastEvent
		c.LastEvent = &ev
	}
	return c, true
}
