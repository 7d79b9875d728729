// Package alerts watches the fleet's health: it evaluates the health rules (configs/alerts.yaml)
// on the live stream of every unit and keeps each alert's lifecycle, firing -> acknowledged ->
// resolved, in the alert store.
//
// Cost follows change, not fleet size. A message (telemetry snapshot, door event, command sent
// or ended) or a presence change (fleet.EventPresenceChanged) updates its unit's small state
// and makes that unit due at once; Run evaluates it within moments, and only it. Each
// evaluation also says the earliest time its outcome could change without a new message: a
// connected unit's heartbeat deadline, the end of a stale-telemetry limit, of a for or
// clear_for window, of a pickup's grace or a pull-down, the moment a failed unlock leaves its
// window. The engine keeps that time per unit in a schedule (a min-heap with one entry per
// unit, schedule.go), and Run sleeps until the earliest one. With every unit connected and
// nothing happening, the engine only looks once per heartbeat timeout at whether the broker
// still hears each unit's pings, and then reschedules it without evaluating its rules (the
// rules' own next deadline is kept apart from the heartbeat's for that). A tick
// (alerts.tick) is left only where a condition is an event rather than a state (a loss of
// telemetry is active at the evaluation that takes it up, and the next one, a tick later,
// starts counting the time without a loss), as the retry delay of an alert the store refused,
// and as how often a hub of a cluster looks at its leadership.
//
// Between two evaluations of a unit nothing its rules look at changes, by construction: so a
// tracker's count over that interval is exact however far apart the evaluations are, and the
// offline condition counts from when the unit began to count as offline (its disconnect, or
// the end of its heartbeat timeout; not before this hub began to judge, as the tick engine
// counted from its first evaluation), so that a disconnect the engine learns of late (through
// the presence service, at the heartbeat deadline) still fires on time. A timer wheel was not
// needed: deadlines are per unit, not per condition, so the heap holds at most one entry per
// unit, and a message only moves its unit's entry (O(log n)). There is no periodic sweep as a
// safety net: every input that changes a unit goes through touch, and every change that time
// alone brings is one of the deadlines above, which the tests of schedule_test.go pin down.
//
// In a cluster only the leader evaluates; a follower only keeps the door openings of units
// that had messages bounded. A hub that starts to lead, or starts, evaluates every unit once;
// a registry change evaluates only the units it changed.
//
// Each (rule, unit, door) has a tracker: the condition must hold for the rule's For before the
// alert fires, and the clear condition (with its own threshold: hysteresis) for ClearFor before
// it resolves itself. Between the two thresholds a firing alert stays and a pending one goes on
// counting, so a reading that wavers around a limit neither fires nor resolves over and over,
// nor restarts the wait of one that is due. The store allows one open alert per
// (rule, device, door); alerts that were open when the hub stopped are taken up again when it
// starts.
//
// A unit is one registration of its device (fleet.Device.Registration): when a device is removed,
// or removed and registered again under the same id, the engine drops the unit, with every
// pending condition and door event, and resolves its open alerts as the hub, noting that the
// device was removed from the registry. It does so when it learns of the change (Sync, on every
// registry change) or, for a change made while no hub ran, when it starts (an open alert whose
// registration is not watched is resolved). The new registration starts as a new unit. An
// alert is thus resolved within registry.watch_interval of the removal, and notified as
// resolved; until then it is of an ended registration, which readers never show.
//
// Reading order: engine.go (the engine, what it follows: events and the registry; Run), unit.go
// and conditions.go (a unit's state and each rule kind's condition), custody.go (the parcels
// inside a unit and its keypad lockouts, and their rules), evaluate.go (an
// evaluation of the due units: conditions -> trackers (tracker.go) -> transitions -> fire,
// resolve; the next deadline -> schedule.go), lifecycle.go (an alert's life in the store:
// restore at start, acknowledge, resolve, announce), cluster.go (a hub of a cluster following
// the leader's alerts and mirroring what other hubs changed).
package alerts

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lockerhub/lockerhub/fleet"
	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/logs"
	"github.com/lockerhub/lockerhub/internal/promreg"
)

// DeviceLister lists the registry (fleet.DeviceService).
type DeviceLister interface {
	FindDevices(ctx context.Context, f fleet.DeviceFilter) ([]*fleet.Device, error)
}

// Options carries the engine's collaborators; all are optional.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Events is told of every alert fired, acknowledged and resolved; in a cluster, of those
	// other hubs made too, marked Mirrored (the hub that made a change notifies it).
	Events fleet.EventPublisher
	Audit  fleet.Auditor // acknowledgements and manual resolutions are recorded here
	// Parcels, optional, finds the parcels inside the units when the engine starts, and in a
	// cluster when it starts to lead and every minute while it leads (custody.go); without it
	// the parcel rules know only the parcels whose changes they are told of.
	Parcels ParcelFinder
	// Leading, for a hub of a cluster, tells whether this hub leads (fleet/sqldb DB.Lead):
	// only the leader evaluates the rules, and every hub follows the open alerts of the shared
	// store. Nil for a hub on its own, which always evaluates.
	Leading func() bool
}

// Engine evaluates the health rules and keeps the alerts. Create it with New, subscribe it to
// the hub's events (HandleEvent), call Start, then Run.
type Engine struct {
	cfg      Config
	store    fleet.AlertStore
	devices  DeviceLister
	presence fleet.PresenceService
	parcels  ParcelFinder
	events   fleet.EventPublisher
	audit    fleet.Auditor
	leading  func() bool
	log      *slog.Logger
	metrics  *metrics
	now      func() time.Time
	started  time.Time

	mu    sync.RWMutex // guards units (the map); each unit's state is guarded by its own lock
	units map[string]*lockedUnit
	sched *schedule // when each unit's rules are next due

	evalMu sync.Mutex    // one evaluation at a time
	due    []*lockedUnit // the units an evaluation takes up, reused; guarded by evalMu
	conds  []cond        // scratch space for an evaluation's conditions; guarded by evalMu
	// judging is when this hub began to judge the units (started, or started to lead);
	// guarded by evalMu.
	judging time.Time

	loadMu  sync.Mutex
	changed map[string]bool // parcels told while loadParcels runs: came in (true) or left; nil otherwise
	// parcelFollow is how often a leader of a cluster reads the parcels again.
	parcelFollow time.Duration

	knownMu sync.Mutex
	known   map[int64]fleet.AlertState // open alerts as this hub last knew them, for mirrorChanges
}

// lockedUnit is a unit with its lock; id and registration never change (a new registration of
// the id is a new unit), so they may be read without the lock.
type lockedUnit struct {
	id, registration string
	mu               sync.Mutex
	unit
	// touched: something besides the clock changed since the last evaluation (a message,
	// a presence change, a command, an alert resolved or taken up, the registry).
	touched bool
	// rulesDue is the next deadline of the rules as of the last evaluation, leaving out the
	// heartbeat deadline; seenSince is the connection (or absence) it saw.
	rulesDue, seenSince time.Time

	// Guarded by the schedule's lock.
	due  time.Time // when the unit's rules are next due
	slot int       // the unit's place in the schedule, -1 when not scheduled
}

func newLockedUnit(d *fleet.Device, cfg *Config) *lockedUnit {
	return &lockedUnit{id: d.ID, registration: d.Registration, unit: *newUnit(d, cfg), slot: -1}
}

// New returns an engine for cfg, which must be valid.
func New(cfg Config, store fleet.AlertStore, devices DeviceLister, presence fleet.PresenceService, opts Options) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts.Logger = logs.OrDiscard(opts.Logger)
	opts.Registerer = promreg.OrPrivate(opts.Registerer)
	e := &Engine{cfg: cfg, store: store, devices: devices, presence: presence, parcels: opts.Parcels, events: opts.Events, audit: opts.Audit,
		leading: opts.Leading, known: make(map[int64]fleet.AlertState), log: opts.Logger, now: time.Now, units: make(map[string]*lockedUnit),
		sched: newSchedule(), parcelFollow: parcelFollowInterval}
	var err error
	if e.metrics, err = newMetrics(opts.Registerer, e.cfg.Rules, e.firing); err != nil {
		return nil, fmt.Errorf("register alert metrics: %w", err)
	}
	return e, nil
}

// firing counts the open alerts of each rule.
func (e *Engine) firing() map[string]int {
	n := make(map[string]int)
	for _, u := range e.watched() {
		u.mu.Lock()
		for k, t := range u.trackers {
			if t.firing {
				n[k.rule]++
			}
		}
		u.mu.Unlock()
	}
	return n
}

// Config returns the configuration the engine runs with.
func (e *Engine) Config() *Config { return &e.cfg }

// Start loads the registry and the parcels inside the units, and takes up the alerts that
// were open when the hub stopped.
func (e *Engine) Start(ctx context.Context) error {
	e.started = e.now()
	e.judging = e.started
	if err := e.Sync(ctx); err != nil {
		return err
	}
	if err := e.loadParcels(ctx); err != nil {
		return err
	}
	return e.restore(ctx)
}

// Run evaluates the units whose rules are due, as they fall due, until ctx is done: it sleeps
// until the earliest deadline, or until a message makes a unit due sooner. In a cluster it
// evaluates only while this hub leads, and looks at its leadership every tick: it follows the
// store's open alerts every followInterval and before it starts to lead, so that it neither
// fires again what the last leader fired nor keeps what was resolved elsewhere, and evaluates
// every unit once when it starts to lead.
func (e *Engine) Run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var led bool
	var followed, parcelsRead time.Time
	for {
		wait := time.Duration(1<<63 - 1)
		if next, ok := e.sched.next(); ok {
			wait = next.Sub(e.now())
		}
		if e.leading != nil {
			wait = min(wait, e.cfg.Tick)
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-e.sched.wake: // Reset discards whatever the timer held (Go 1.23 timers)
		}
		if e.leading == nil {
			e.Evaluate(ctx)
			continue
		}
		leading := e.leading()
		if leading && !led || time.Since(followed) >= followInterval {
			if err := e.follow(ctx); err != nil {
				e.log.Error("alerts: open alerts not read from the store", "error", err)
				continue // not leading on a view of the alerts that may be stale
			}
			followed = time.Now()
			if leading && !led {
				if err := e.loadParcels(ctx); err != nil {
					e.log.Error("alerts: parcels not read; not leading yet", "error", err)
					continue
				}
				parcelsRead = time.Now()
				e.log.Info("leading the health rules of the cluster")
				e.evalMu.Lock()
				e.judging = e.now()
				e.evalMu.Unlock()
				e.allDue()
			}
		}
		if leading && led && time.Since(parcelsRead) >= e.parcelFollow {
			// Parcels changed through other hubs: their events reach only those hubs' buses.
			if err := e.loadParcels(ctx); err != nil {
				e.log.Error("alerts: parcels not read", "error", err)
			}
			parcelsRead = time.Now()
		}
		led = leading
		if leading {
			e.Evaluate(ctx)
		} else {
			e.idle(e.now())
		}
	}
}

// allDue makes every unit due now: a hub that starts to lead has not judged them.
func (e *Engine) allDue() {
	now := e.now()
	for _, u := range e.watched() {
		u.mu.Lock()
		e.touch(u, now)
		u.mu.Unlock()
	}
}

// Sync follows the registry: new and changed devices are watched, and the open alerts of
// devices that were disabled or removed (or removed and registered again: the new registration
// is watched as a new unit) are resolved. Call it when the registry changes.
func (e *Engine) Sync(ctx context.Context) error {
	devs, err := e.devices.FindDevices(ctx, fleet.DeviceFilter{})
	if err != nil {
		return fmt.Errorf("alerts: list devices: %w", err)
	}
	enabled := make(map[string]*fleet.Device, len(devs))
	for _, d := range devs {
		if d.Enabled {
			enabled[d.ID] = d
		}
	}
	var gone []*fleet.Alert
	now := e.now()
	e.mu.Lock()
	for id, u := range e.units {
		if d := enabled[id]; d == nil || d.Registration != u.registration {
			delete(e.units, id)
			e.sched.remove(u)
			gone = append(gone, u.openAlerts()...)
		}
	}
	for id, d := range enabled {
		// Only a new unit or one whose rules may now say otherwise is evaluated: a registry
		// change elsewhere in the fleet costs this unit nothing.
		u := e.units[id]
		if u == nil {
			u = newLockedUnit(d, &e.cfg)
			e.units[id] = u
		} else if sameAttributes(u.dev, d) {
			continue
		}
		u.mu.Lock()
		u.setDevice(d, &e.cfg)
		e.touch(u, now)
		u.mu.Unlock()
	}
	e.mu.Unlock()
	for _, a := range gone {
		e.resolveStored(ctx, a.ID, "device disabled or removed from the registry")
	}
	return nil
}

// sameAttributes reports whether a and b, registrations of one device, agree on everything the
// rules and alerts look at.
func sameAttributes(a, b *fleet.Device) bool {
	return a.Kind == b.Kind && a.Site == b.Site && a.Doors == b.Doors && maps.Equal(a.Labels, b.Labels)
}

// openAlerts returns the stored ids of the unit's firing trackers, as alerts with only ID set.
func (u *lockedUnit) openAlerts() []*fleet.Alert {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []*fleet.Alert
	for _, t := range u.trackers {
		if t.firing && t.alertID != 0 {
			out = append(out, &fleet.Alert{ID: t.alertID})
		}
	}
	return out
}

func (e *Engine) rule(name string) *Rule {
	for i := range e.cfg.Rules {
		if e.cfg.Rules[i].Name == name {
			return &e.cfg.Rules[i]
		}
	}
	return nil
}

// watched returns the units being watched now, so that they can be gone through without
// holding the map's lock.
func (e *Engine) watched() []*lockedUnit {
	e.mu.RLock()
	defer e.mu.RUnlock()
	units := make([]*lockedUnit, 0, len(e.units))
	for _, u := range e.units {
		units = append(units, u)
	}
	return units
}

func (e *Engine) unit(id string) *lockedUnit {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.units[id]
}

// HandleEvent follows the hub's events: stored telemetry snapshots, door and keypad events,
// and delivered command results (which only count for the lost messages they show), unlock
// commands as they are sent and when their results come, and parcels as they change. It
// implements fleet.EventHandler.
func (e *Engine) HandleEvent(ev fleet.Event) {
	switch ev.Kind {
	case fleet.EventTelemetryStored, fleet.EventDoorChanged, fleet.EventKeypadEntered, fleet.EventResultReceived:
		e.message(ev.Device, ev.Message, ev.Lost)
	case fleet.EventParcelChanged:
		e.parcelChanged(ev.Parcel)
	case fleet.EventPresenceChanged:
		e.presenceChanged(ev.Presence.DeviceID)
	case fleet.EventCommandSeen:
		e.command(ev.Command)
	case fleet.EventCommandChanged:
		if ev.Command.Status == fleet.CommandCreated && e.leading != nil {
			// In a cluster every hub's commands come as they are delivered (EventCommandSeen),
			// this hub's own included: told twice, one unlock would let the door open twice.
			return
		}
		e.command(ev.Command)
	}
}

// message takes a device's message. A message of another registration than the watched
// unit's (the id was registered again, and Sync has not run yet, or the message was on its
// way when it did) is not the unit's, and is left out.
func (e *Engine) message(d *fleet.Device, msg wire.Message, lost uint64) {
	u := e.unit(d.ID)
	if u == nil {
		if !d.Enabled {
			return
		}
		// A device added since the last Sync: start watching it now rather than miss its
		// first messages.
		e.mu.Lock()
		if u = e.units[d.ID]; u == nil {
			u = newLockedUnit(d, &e.cfg)
			e.units[d.ID] = u
		}
		e.mu.Unlock()
	}
	if u.registration != d.Registration {
		return
	}
	now := e.now()
	u.mu.Lock()
	u.observe(msg, lost, now)
	if ev, ok := msg.(wire.Event); ok && ev.Kind == wire.EventDoor && ev.Cause == wire.CauseCode && ev.Open {
		// Its pickup code opened the door: the parcel is out, whichever hub's parcel service
		// records it.
		e.parcelLeft(u, ev.Parcel)
	}
	e.touch(u, now)
	u.mu.Unlock()
}

// touch makes u due by t, for something besides the clock that changed it. The caller holds
// u.mu.
func (e *Engine) touch(u *lockedUnit, t time.Time) {
	u.touched = true
	e.sched.dueBy(u, t)
}

// presenceChanged makes a unit that connected or disconnected due at once: whether it is
// online is read from the presence service when its rules are evaluated.
func (e *Engine) presenceChanged(id string) {
	u := e.unit(id)
	if u == nil {
		return
	}
	// Under the unit's lock: an evaluation in progress either reads the new presence or is
	// followed by another.
	u.mu.Lock()
	e.touch(u, e.now())
	u.mu.Unlock()
}

// command takes an unlock command as it is sent and when its result comes.
func (e *Engine) command(c fleet.Command) {
	if c.Type != wire.CommandUnlock || c.Door < 1 {
		return
	}
	u := e.unit(c.DeviceID)
	if u == nil {
		return
	}
	now := e.now()
	u.mu.Lock()
	defer u.mu.Unlock()
	d := u.door(c.Door)
	switch {
	case c.Status == fleet.CommandCreated:
		d.unlocks = appendBounded(d.unlocks, now, maxUnlocks)
	case c.Outcome == wire.OutcomeJammed || c.Outcome == wire.OutcomeFailed:
		d.failures = appendBounded(d.failures, now, maxFailures)
	case c.Outcome == wire.OutcomeOpened:
		d.failures = nil
	}
	e.touch(u, now)
}

// Health returns the health of d's registration; false if it is not watched (unknown,
// disabled, or registered since the last Sync).
func (e *Engine) Health(d *fleet.Device) (fleet.Health, bool) {
	u := e.unit(d.ID)
	if u == nil || u.registration != d.Registration {
		return "", false
	}
	h, _ := e.health(u, e.now())
	return h, true
}

func (e *Engine) health(u *lockedUnit, now time.Time) (fleet.Health, int) {
	online, _, _ := e.online(u.id, now)
	u.mu.Lock()
	var sev []fleet.Severity
	for k, t := range u.trackers {
		if t.firing {
			if r := e.rule(k.rule); r != nil {
				sev = append(sev, r.Severity)
			}
		}
	}
	u.mu.Unlock()
	return fleet.HealthOf(online, sev), len(sev)
}

// Summary counts the watched units of each site by health, for the sites inScope accepts,
// ordered by site.
func (e *Engine) Summary(inScope func(site string) bool) []fleet.SiteHealth {
	now := e.now()
	units := e.watched()
	bySite := make(map[string]*fleet.SiteHealth)
	for _, u := range units {
		u.mu.Lock()
		site := u.dev.Site
		u.mu.Unlock()
		if !inScope(site) {
			continue
		}
		s := bySite[site]
		if s == nil {
			s = &fleet.SiteHealth{Site: site}
			bySite[site] = s
		}
		s.Add(e.health(u, now))
	}
	out := make([]fleet.SiteHealth, 0, len(bySite))
	for _, s := range bySite {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b fleet.SiteHealth) int { return cmp.Compare(a.Site, b.Site) })
	return out
}
