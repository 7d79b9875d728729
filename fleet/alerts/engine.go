// Package alerts watches the fleet's health: it evaluates the health rules (configs/alerts.yaml)
// on the live stream of every unit and keeps each alert's lifecycle, firing -> acknowledged ->
// resolved, in the alert store.
//
// The stream (telemetry snapshots, door events, command sends and results) only updates a
// small state per unit; the rules run on a tick (alerts.tick, 1 s by default) over that state
// and over presence. Ingesting a message therefore costs the same however many rules there are,
// and the time-based rules (offline for 5 minutes, a door open for 10) need the tick anyway.
// An instant rule fires within one tick.
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
package alerts

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

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
	// Leading, for a hub of a cluster, tells whether this hub leads (fleet/sqldb DB.Lead):
	// only the leader evaluates the rules, and every hub follows the open alerts of the shared
	// store. Nil for a hub on its own, which always evaluates.
	Leading func() bool
}

// followInterval is how often a hub of a cluster takes up the alerts in the shared store:
// what the leader fired and resolved, and what people acknowledged and resolved through
// other hubs.
const followInterval = 2 * time.Second

// Engine evaluates the health rules and keeps the alerts. Create it with New, subscribe it to
// the hub's events (HandleEvent), call Start, then Run.
type Engine struct {
	cfg      Config
	store    fleet.AlertStore
	devices  DeviceLister
	presence fleet.PresenceService
	events   fleet.EventPublisher
	audit    fleet.Auditor
	leading  func() bool
	log      *slog.Logger
	metrics  *metrics
	now      func() time.Time
	started  time.Time

	mu    sync.RWMutex // guards units (the map); each unit's state is guarded by its own lock
	units map[string]*lockedUnit

	evalMu sync.Mutex // one evaluation at a time

	knownMu sync.Mutex
	known   map[int64]fleet.AlertState // open alerts as this hub last knew them, for mirrorChanges
}

// lockedUnit is a unit with its lock; id and registration never change (a new registration of
// the id is a new unit), so they may be read without the lock.
type lockedUnit struct {
	id, registration string
	mu               sync.Mutex
	unit
}

func newLockedUnit(d *fleet.Device, cfg *Config) *lockedUnit {
	return &lockedUnit{id: d.ID, registration: d.Registration, unit: *newUnit(d, cfg)}
}

// New returns an engine for cfg, which must be valid.
func New(cfg Config, store fleet.AlertStore, devices DeviceLister, presence fleet.PresenceService, opts Options) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts.Logger = logs.OrDiscard(opts.Logger)
	opts.Registerer = promreg.OrPrivate(opts.Registerer)
	m, err := newMetrics(opts.Registerer, cfg.Rules)
	if err != nil {
		return nil, fmt.Errorf("register alert metrics: %w", err)
	}
	return &Engine{cfg: cfg, store: store, devices: devices, presence: presence, events: opts.Events, audit: opts.Audit,
		leading: opts.Leading, known: make(map[int64]fleet.AlertState), log: opts.Logger, metrics: m, now: time.Now, units: make(map[string]*lockedUnit)}, nil
}

// Config returns the configuration the engine runs with.
func (e *Engine) Config() *Config { return &e.cfg }

// Start loads the registry and takes up the alerts that were open when the hub stopped.
func (e *Engine) Start(ctx context.Context) error {
	e.started = e.now()
	if err := e.Sync(ctx); err != nil {
		return err
	}
	return e.restore(ctx)
}

// Run evaluates the rules every tick until ctx is done. In a cluster it evaluates only while
// this hub leads, and follows the store's open alerts every followInterval and before it
// starts to lead, so that it neither fires again what the last leader fired nor keeps what
// was resolved elsewhere.
func (e *Engine) Run(ctx context.Context) {
	tick := time.NewTicker(e.cfg.Tick)
	defer tick.Stop()
	var led bool
	var followed time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
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
				e.log.Info("leading the health rules of the cluster")
			}
		}
		led = leading
		if leading {
			e.Evaluate(ctx)
		} else {
			e.idle(e.now())
		}
	}
}

// idle keeps a follower's state bounded without judging anything: door openings are the
// leader's to judge, and those older than followInterval it has judged, firing what it found
// into the store, which this hub takes up before it ever leads. Younger ones are kept, for a
// leader that died before judging them.
func (e *Engine) idle(now time.Time) {
	for _, u := range e.watched() {
		u.mu.Lock()
		for _, d := range u.doors {
			d.openings = slices.DeleteFunc(d.openings, func(o opening) bool { return now.Sub(o.at) > followInterval })
			d.prune(now, e.cfg.AuthorizeWindow)
		}
		u.mu.Unlock()
	}
}

// follow makes the trackers agree with the open alerts in the store: alerts no longer open
// are forgotten as if resolved here, and open alerts this hub does not track are taken up.
func (e *Engine) follow(ctx context.Context) error {
	open, err := e.openAlerts(ctx)
	if err != nil {
		return err
	}
	ids := make(map[int64]bool, len(open))
	for _, a := range open {
		ids[a.ID] = true
	}
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	var gone []*fleet.Alert
	tracked := make(map[int64]bool)
	for _, u := range e.watched() {
		u.mu.Lock()
		for k, t := range u.trackers {
			switch {
			case !t.firing || t.alertID == 0:
			case ids[t.alertID]:
				tracked[t.alertID] = true
			default:
				gone = append(gone, &fleet.Alert{ID: t.alertID, Rule: k.rule, DeviceID: u.id, Door: k.door})
			}
		}
		u.mu.Unlock()
	}
	for _, a := range gone {
		e.forget(a)
	}
	leading := e.leading != nil && e.leading()
	for _, a := range open {
		if tracked[a.ID] {
			continue
		}
		// An alert no hub can take up (its rule or its device is gone) is the leader's to
		// resolve, as restore does on a hub of its own.
		if why := e.adopt(a); why != "" && leading {
			e.resolveStored(ctx, a.ID, why)
		}
	}
	e.mirrorChanges(ctx, open)
	return nil
}

// mirrorChanges publishes how the open alerts differ from what this hub last knew: the changes
// other hubs made, marked Mirrored.
func (e *Engine) mirrorChanges(ctx context.Context, open []*fleet.Alert) {
	if e.events == nil {
		return
	}
	var events []fleet.AlertEvent
	var closed []int64
	e.knownMu.Lock()
	now := make(map[int64]fleet.AlertState, len(open))
	for _, a := range open {
		now[a.ID] = a.State
		switch was, ok := e.known[a.ID]; {
		case !ok && a.State == fleet.AlertFiring:
			events = append(events, fleet.AlertEvent{Kind: fleet.AlertEventFired, Alert: *a})
		case (!ok || was == fleet.AlertFiring) && a.State == fleet.AlertAcknowledged:
			events = append(events, fleet.AlertEvent{Kind: fleet.AlertEventAcknowledged, Alert: *a})
		}
	}
	for id := range e.known {
		if _, ok := now[id]; !ok {
			closed = append(closed, id)
		}
	}
	e.known = now
	e.knownMu.Unlock()
	for _, id := range closed {
		if a, err := e.store.FindAlertByID(ctx, id); err == nil && a.State == fleet.AlertResolved {
			events = append(events, fleet.AlertEvent{Kind: fleet.AlertEventResolved, Alert: *a})
		}
	}
	for _, ev := range events {
		e.events.Publish(fleet.Event{Kind: fleet.EventAlertChanged, Alert: ev, Mirrored: true})
	}
}

// remember records an alert as this hub changed or found it, so that only what others change
// is published as mirrored.
func (e *Engine) remember(a *fleet.Alert) {
	e.knownMu.Lock()
	defer e.knownMu.Unlock()
	if a.State.Open() {
		e.known[a.ID] = a.State
	} else {
		delete(e.known, a.ID)
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
	e.mu.Lock()
	for id, u := range e.units {
		if d := enabled[id]; d == nil || d.Registration != u.registration {
			delete(e.units, id)
			gone = append(gone, u.openAlerts()...)
		}
	}
	for id, d := range enabled {
		if u := e.units[id]; u != nil {
			u.mu.Lock()
			u.setDevice(d, &e.cfg)
			u.mu.Unlock()
		} else {
			e.units[id] = newLockedUnit(d, &e.cfg)
		}
	}
	e.mu.Unlock()
	for _, a := range gone {
		e.resolveStored(ctx, a.ID, "device disabled or removed from the registry")
	}
	return nil
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

// restore takes up the open alerts in the store: their trackers start out firing, so that a
// condition that still holds does not raise a second alert, and one that cleared while the hub
// was down resolves. Alerts of rules no longer configured, or of registrations no longer
// watched (devices disabled, removed, or removed and registered again), are resolved.
func (e *Engine) restore(ctx context.Context) error {
	open, err := e.openAlerts(ctx)
	if err != nil {
		return fmt.Errorf("alerts: restore open alerts: %w", err)
	}
	for _, a := range open {
		e.remember(a)
		if why := e.adopt(a); why != "" && (e.leading == nil || e.leading()) {
			e.resolveStored(ctx, a.ID, why)
		}
	}
	return nil
}

// openAlerts returns every open alert in the store.
func (e *Engine) openAlerts(ctx context.Context) ([]*fleet.Alert, error) {
	var all []*fleet.Alert
	f := fleet.AlertFilter{Open: true, Limit: 1000}
	for {
		page, err := e.store.FindAlerts(ctx, f)
		if err != nil {
			return nil, err
		}
		all = append(all, page...)
		if len(page) < f.Limit {
			return all, nil
		}
		f.BeforeID = page[len(page)-1].ID
	}
}

// adopt gives an open alert from the store to its tracker, or says why it cannot.
func (e *Engine) adopt(a *fleet.Alert) string {
	r := e.rule(a.Rule)
	if r == nil {
		return "rule " + a.Rule + " is no longer configured"
	}
	u := e.unit(a.DeviceID)
	if u == nil || u.registration != a.Registration {
		return "device disabled or removed from the registry"
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if !r.AppliesTo(u.dev) {
		return "rule " + a.Rule + " no longer applies to the device"
	}
	t := &tracker{firing: true, alertID: a.ID}
	u.trackers[trackerKey{rule: a.Rule, door: a.Door}] = t
	if r.Kind == KindUnlockFailed {
		// The failures behind it are gone with the old process; the alert stands until
		// the door opens again, as it would have, and counts on from what it said.
		n := 1
		if a.Value != nil {
			n = min(max(int(*a.Value), 1), maxFailures)
		}
		d := u.door(a.Door)
		for range n {
			d.failures = append(d.failures, a.FiredAt)
		}
		t.shown = float64(n)
	}
	return ""
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

// HandleEvent follows the hub's events: stored telemetry snapshots and door events, and
// delivered command results (which only count for the lost messages they show), and unlock
// commands as they are sent and when their results come. It implements fleet.EventHandler.
func (e *Engine) HandleEvent(ev fleet.Event) {
	switch ev.Kind {
	case fleet.EventTelemetryStored, fleet.EventDoorChanged, fleet.EventResultReceived:
		e.message(ev.Device, ev.Message, ev.Lost)
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
}

// transition is an alert to fire or resolve, found by an evaluation.
type transition struct {
	u       *lockedUnit
	key     trackerKey
	rule    *Rule
	fire    bool
	restate bool // a firing alert's count grew: its summary and value are replaced
	cond    cond
	alertID int64 // resolve, restate: the stored alert
}

// Evaluate runs every rule on every unit once, at the engine's clock, and stores and notifies
// what fired and resolved.
func (e *Engine) Evaluate(ctx context.Context) {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	start := time.Now()
	now := e.now()
	units := e.watched()

	var changes []transition
	var buf []cond
	firing := make(map[string]int)
	for _, u := range units {
		online, since := e.online(u.id, now)
		u.mu.Lock()
		changes = u.evaluate(env{now: now, online: online, since: since, cfg: &e.cfg, buf: &buf}, changes)
		for k, t := range u.trackers {
			if t.firing {
				firing[k.rule]++
			}
		}
		u.mu.Unlock()
	}
	for _, c := range changes {
		switch {
		case c.fire:
			e.fire(ctx, c, now)
		case c.restate:
			e.restate(ctx, c)
		default:
			e.resolveStored(ctx, c.alertID, "clear condition held")
		}
	}
	for i := range e.cfg.Rules {
		r := &e.cfg.Rules[i]
		e.metrics.firing.WithLabelValues(r.Name, string(r.Severity)).Set(float64(firing[r.Name]))
	}
	e.metrics.evaluation.Observe(time.Since(start).Seconds())
}

// online says whether a unit counts as online at now, and since when it is online or offline.
// A connection that has been silent for HeartbeatTimeout counts as offline: the broker may not
// have noticed yet that it is gone. One that pings within its MQTT keepalive (and the grace of
// half of it the protocol gives) is alive by the protocol's own measure, whatever the timeout.
func (e *Engine) online(id string, now time.Time) (bool, time.Time) {
	p, ok := e.presence.Presence(id)
	switch {
	case !ok:
		return false, e.started // not connected since the hub started
	case p.Online && now.Sub(p.LastSeen) <= max(e.cfg.HeartbeatTimeout, p.KeepAlive*3/2):
		return true, p.ConnectedSince
	case p.Online:
		return false, p.LastSeen
	}
	return false, p.DisconnectedAt
}

// evaluate runs the unit's rules at e.now and appends the transitions to out. The caller holds
// u.mu.
func (u *lockedUnit) evaluate(e env, out []transition) []transition {
	if e.online && !e.since.Equal(u.connSince) && u.pulldown.Max > 0 {
		// Came online: it may be starting from warm (installed, a power cut). The pull-down
		// starts from the connection's first snapshot, which may have come already.
		u.connSince = e.since
		if u.snap != nil && !u.snapAt.Before(e.since) {
			u.startPulldown(*u.snap, u.snapAt, true)
		} else {
			u.pulldownDue = true
		}
	}
	for _, d := range u.doors {
		d.authorize(e.cfg.AuthorizeWindow)
		d.prune(e.now, e.cfg.AuthorizeWindow)
	}
	for _, r := range u.rules {
		*e.buf = u.conditions(r, e, (*e.buf)[:0])
		for _, c := range *e.buf {
			k := trackerKey{rule: r.Name, door: c.door}
			t := u.trackers[k]
			if t == nil {
				if c.state != active {
					continue // nothing pending: no tracker needed
				}
				t = &tracker{}
				u.trackers[k] = t
			}
			fire, resolve := t.step(e.now, c, r)
			grew := kinds[r.Kind].counts && c.state == active && c.value != nil && *c.value > t.shown
			if grew {
				t.shown = *c.value
			}
			switch {
			case fire:
				out = append(out, transition{u: u, key: k, rule: r, fire: true, cond: c})
			case grew && t.firing && t.alertID != 0:
				out = append(out, transition{u: u, key: k, rule: r, restate: true, cond: c, alertID: t.alertID})
			case resolve:
				out = append(out, transition{u: u, key: k, rule: r, alertID: t.alertID})
				delete(u.trackers, k)
			case !t.firing && t.held == 0 && c.state != active:
				delete(u.trackers, k)
			}
		}
	}
	u.lost = 0
	return out
}

// fire stores a new alert and notifies it. If the store refuses it, the tracker is set back so
// that the next evaluation tries again.
func (e *Engine) fire(ctx context.Context, c transition, now time.Time) {
	u := c.u
	u.mu.Lock()
	dev := u.dev
	u.mu.Unlock()
	a := &fleet.Alert{Rule: c.rule.Name, Severity: c.rule.Severity, Scope: c.rule.Scope(c.key.door), DeviceID: dev.ID, Site: dev.Site,
		Registration: u.registration, Door: c.key.door, Summary: c.cond.summary, Value: c.cond.value,
		FiredAt: now.UTC().Truncate(time.Millisecond)}
	err := e.store.CreateAlert(ctx, a)
	if fleet.ErrorCode(err) == fleet.ECONFLICT {
		// Already open in the store (written by another process): that one is ours.
		if open, ferr := e.store.FindAlerts(ctx, fleet.AlertFilter{DeviceID: dev.ID, Open: true, Limit: 1000}); ferr == nil {
			for _, o := range open {
				if o.Key() == a.Key() {
					e.setAlertID(c, o.ID)
					return
				}
			}
		}
	}
	if err != nil {
		e.log.Error("alert not stored; trying again", "rule", a.Rule, "device", a.DeviceID, "door", a.Door, "error", err)
		u.mu.Lock()
		if t := u.trackers[c.key]; t != nil {
			t.firing = false
		}
		u.mu.Unlock()
		return
	}
	e.setAlertID(c, a.ID)
	e.announce(fleet.NewContextWithActor(ctx, fleet.Hub), fleet.AlertEventFired, a, "")
}

// restate replaces the summary and value of a firing alert whose count grew. A failure is
// logged: the alert stands, saying less than it could.
func (e *Engine) restate(ctx context.Context, c transition) {
	_, err := e.store.RestateAlert(ctx, c.alertID, c.cond.summary, c.cond.value)
	if err != nil && fleet.ErrorCode(err) != fleet.ECONFLICT && fleet.ErrorCode(err) != fleet.ENOTFOUND {
		e.log.Error("alert summary not updated", "alert", c.alertID, "rule", c.rule.Name, "error", err)
	}
}

func (e *Engine) setAlertID(c transition, id int64) {
	c.u.mu.Lock()
	defer c.u.mu.Unlock()
	if t := c.u.trackers[c.key]; t != nil && t.firing {
		t.alertID = id
	}
}

// resolveStored resolves a stored alert as the hub, and notifies it. An alert a person
// resolved in the meantime is left as they left it.
func (e *Engine) resolveStored(ctx context.Context, id int64, note string) {
	if id == 0 {
		return
	}
	a, err := e.store.ResolveAlert(ctx, id, fleet.Hub, note, e.now().UTC().Truncate(time.Millisecond))
	switch {
	case fleet.ErrorCode(err) == fleet.ECONFLICT || fleet.ErrorCode(err) == fleet.ENOTFOUND:
		return
	case err != nil:
		e.log.Error("alert not resolved in the store", "alert", id, "error", err)
		return
	}
	e.announce(fleet.NewContextWithActor(ctx, fleet.Hub), fleet.AlertEventResolved, a, note)
}

// auditActions are the audit trail's names for what people do to alerts.
var auditActions = map[fleet.AlertEventKind]fleet.AuditAction{
	fleet.AlertEventAcknowledged: fleet.AuditAlertAck,
	fleet.AlertEventResolved:     fleet.AuditAlertResolve,
}

// announce makes a lifecycle change that the actor in ctx made known: metrics, the log, the
// notifiers and, for what a person did, the audit trail (a failure to record is logged loudly
// but does not undo it).
func (e *Engine) announce(ctx context.Context, kind fleet.AlertEventKind, a *fleet.Alert, note string) {
	actor := fleet.ActorFromContext(ctx)
	e.remember(a)
	e.metrics.transitions.WithLabelValues(a.Rule, string(kind)).Inc()
	attrs := []any{"alert", a.ID, "rule", a.Rule, "severity", a.Severity, "device", a.DeviceID, "door", a.Door, "by", actor.ID}
	if kind == fleet.AlertEventFired {
		e.log.Warn("alert fired", append(attrs, "summary", a.Summary)...)
	} else {
		e.log.Info("alert "+string(kind), append(attrs, "note", note)...)
	}
	if e.events != nil {
		e.events.Publish(fleet.Event{Kind: fleet.EventAlertChanged, Alert: fleet.AlertEvent{Kind: kind, Alert: *a}})
	}
	if actor.ID == fleet.ActorHub || e.audit == nil {
		return
	}
	detail := map[string]any{"alert": a.ID, "rule": a.Rule, "severity": string(a.Severity)}
	if a.Door != 0 {
		detail["door"] = a.Door
	}
	if note != "" {
		detail["note"] = note
	}
	entry, err := fleet.NewAuditEntry(ctx, auditActions[kind], a.DeviceID, detail)
	if err == nil {
		err = e.audit.Append(ctx, entry)
	}
	if err != nil {
		e.log.Error("audit trail: alert action not recorded", "alert", a.ID, "action", auditActions[kind], "error", err)
	}
}

// Alert returns one alert.
func (e *Engine) Alert(ctx context.Context, id int64) (*fleet.Alert, error) {
	return e.store.FindAlertByID(ctx, id)
}

// Alerts returns the alerts matching f, newest first.
func (e *Engine) Alerts(ctx context.Context, f fleet.AlertFilter) ([]*fleet.Alert, error) {
	return e.store.FindAlerts(ctx, f)
}

// Ack acknowledges a firing alert on behalf of the actor in ctx: someone is on it. Errors:
// ENOTFOUND, ECONFLICT when it is not firing, EINVALID for a note that is too long, EINTERNAL
// without an actor.
func (e *Engine) Ack(ctx context.Context, id int64, note string) (*fleet.Alert, error) {
	if err := validNote(note); err != nil {
		return nil, err
	}
	actor, err := fleet.ActorRequired(ctx, "alert ack")
	if err != nil {
		return nil, err
	}
	a, err := e.store.AckAlert(ctx, id, actor, note, e.now().UTC().Truncate(time.Millisecond))
	if err != nil {
		return nil, err
	}
	e.announce(ctx, fleet.AlertEventAcknowledged, a, note)
	return a, nil
}

// Resolve resolves an open alert on behalf of the actor in ctx, such as after a repair. The
// rule starts over: if its condition still holds, a new alert fires after the rule's duration.
// Errors: ENOTFOUND, ECONFLICT when it is resolved already, EINVALID for a note that is too
// long, EINTERNAL without an actor.
func (e *Engine) Resolve(ctx context.Context, id int64, note string) (*fleet.Alert, error) {
	if err := validNote(note); err != nil {
		return nil, err
	}
	actor, err := fleet.ActorRequired(ctx, "alert resolve")
	if err != nil {
		return nil, err
	}
	e.evalMu.Lock() // not between an evaluation's decision and its store write
	a, err := e.store.ResolveAlert(ctx, id, actor, note, e.now().UTC().Truncate(time.Millisecond))
	if err == nil {
		e.forget(a)
	}
	e.evalMu.Unlock()
	if err != nil {
		return nil, err
	}
	e.announce(ctx, fleet.AlertEventResolved, a, note)
	return a, nil
}

// forget resets the tracker of an alert resolved by a person, and the events behind it.
func (e *Engine) forget(a *fleet.Alert) {
	u := e.unit(a.DeviceID)
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	k := trackerKey{rule: a.Rule, door: a.Door}
	if t := u.trackers[k]; t != nil && t.alertID == a.ID {
		delete(u.trackers, k)
	}
	if d := u.doors[a.Door]; d != nil {
		switch r := e.rule(a.Rule); {
		case r == nil:
		case r.Kind == KindForcedEntry:
			d.forced = nil
		case r.Kind == KindUnlockFailed:
			d.failures = nil
		}
	}
}

func validNote(note string) error {
	if len(note) > fleet.MaxAlertNoteLen || !utf8.ValidString(note) {
		return fleet.Errorf(fleet.EINVALID, "note: at most %d bytes of UTF-8", fleet.MaxAlertNoteLen)
	}
	return nil
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
	online, _ := e.online(u.id, now)
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
